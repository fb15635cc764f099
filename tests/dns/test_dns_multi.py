"""Several records in two zones on a real BIND primary that NOTIFYs a real BIND secondary."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from consulha.agent.status import dns_status
from consulha.config import RecordConfig
from consulha.dns import Rfc2136Provider, StaleEpochError
from lab.named import NamedSecondary, random_secret
from lab.pair import SitePair, wait_until
from lab.ports import free_port
from lab.records import ZONES, answers_of, mixed_zones, multi_record_config, records_of, server_answers
from tests.conftest_named import dns_config_for
from tests.dns.publishing import running_publisher

pytestmark = pytest.mark.integration

FENCES = {"example.test.": "_consulha.app.example.test.", "other.test.": "_consulha.api.other.test."}


def provider_for(server, site: str, **changes) -> Rfc2136Provider:
    """Site a or b's provider for the four records of lab.records."""
    records = tuple(RecordConfig(r["record"], r["type"], r["value"], r.get("zone", "example.test."))
                    for r in records_of(site))
    return Rfc2136Provider(dns_config_for(server, records=records, **changes), site)


def serials(server) -> dict[str, int]:
    return {zone: server.soa_serial(zone) for zone in ZONES}


@pytest.fixture
def pair(primary_and_secondary):
    primary, secondary = primary_and_secondary
    verify = (primary.address, secondary.address)
    return primary, secondary, provider_for(primary, "a", verify=verify), provider_for(primary, "b", verify=verify)


def test_every_record_of_a_zone_moves_in_one_update_and_zones_in_a_fixed_order(pair):
    primary, _, site_a, site_b = pair
    site_a.publish(5)
    before = serials(primary)

    result = site_b.publish(7)

    assert result.written == ZONES
    # One UPDATE per zone: the serial went up by exactly one in each.
    assert serials(primary) == {zone: serial + 1 for zone, serial in before.items()}
    assert site_b.read_state().values == site_b.wanted
    assert site_b.read_state().epochs == {FENCES[zone]: 7 for zone in ZONES}


def test_a_newer_fence_in_any_zone_refuses_the_whole_write(pair, primary_and_secondary):
    primary, _, site_a, site_b = pair
    site_a.publish(5)
    # A newer leader got as far as the second zone only (its first zone's update was lost).
    only_other = dataclasses.replace(site_b.cfg, records=site_b.cfg.records_in("other.test."))
    Rfc2136Provider(only_other, "b").publish(9)
    before = serials(primary)

    with pytest.raises(StaleEpochError) as caught:
        site_a.publish(6)

    assert caught.value.stored == 9 and "_consulha.api.other.test." in str(caught.value)
    assert serials(primary) == before
    assert site_a.read_state().values[("app.example.test.", "A")] == ("192.0.2.1",)


def test_drift_in_one_zone_is_repaired_by_one_update_of_that_zone_only(pair):
    primary, _, site_a, _ = pair
    site_a.publish(5)
    drifted = dataclasses.replace(site_a.cfg, fencing=False,
                                  records=(RecordConfig("ws.example.test.", "A", "198.51.100.9", "example.test."),))
    Rfc2136Provider(drifted, "intruder").publish(0)
    before = serials(primary)

    result = site_a.publish(5)

    assert result.written == ("example.test.",)
    assert serials(primary) == {"example.test.": before["example.test."] + 1, "other.test.": before["other.test."]}
    assert site_a.read_state().values == site_a.wanted


def test_the_secondary_follows_by_notify_and_ixfr(pair):
    primary, secondary, site_a, site_b = pair
    site_a.publish(5)
    site_b.publish(7)

    # No timing asserted: only that it converges (NOTIFY + IXFR) with values, epoch and serial.
    wait_until(lambda: not site_b.verifier.laggards(7), 20, what="the secondary to converge")
    views = site_b.verifier.views()
    assert views[f"127.0.0.1:{secondary.port}"].serials == serials(primary)
    assert views[f"127.0.0.1:{secondary.port}"].values == site_b.wanted
    assert "IXFR" in secondary.log_tail(200) or "transfer of" in secondary.log_tail(200)


def test_a_lagging_secondary_shows_with_its_serial_and_does_not_block_the_write(tmp_path, primary_and_secondary):
    primary, _ = primary_and_secondary
    # A second secondary that the primary never NOTIFYs: it keeps the zones as transferred at start.
    with NamedSecondary(tmp_path / "lagging", primary) as lagging:
        site_a = provider_for(primary, "a", verify=(primary.address, lagging.address))
        start_serials = serials(lagging)

        assert site_a.publish(5).changed

        laggards = site_a.verifier.laggards(5)
        assert list(laggards) == [f"127.0.0.1:{lagging.port}"]
        assert laggards[f"127.0.0.1:{lagging.port}"].serials == start_serials
        assert laggards[f"127.0.0.1:{lagging.port}"].values[("app.example.test.", "A")] == ()
        status = dns_status(site_a, {"address": "192.0.2.1", "epoch": 5})
        assert status["servers"][f"127.0.0.1:{primary.port}"]["converged"]
        lagging_status = status["servers"][f"127.0.0.1:{lagging.port}"]
        assert (lagging_status["converged"], lagging_status["soa_serials"]) == (False, start_serials)
        assert not status["converged"]


def run_publisher(provider, epoch: int, converge_limit: float) -> dict:
    """Run a DnsPublisher until it reports its write's convergence; return its `last`."""
    with running_publisher(provider, epoch, converge_limit) as publisher:
        wait_until(lambda: publisher.last is not None, 30, what="the publisher to report")
    return publisher.last


def test_publisher_reports_convergence_per_server_secondary_included(pair):
    primary, secondary, site_a, _ = pair

    last = run_publisher(site_a, 5, converge_limit=20)

    assert last["epoch"] == 5 and last["converged_s"] is not None
    servers = last["servers"]
    assert set(servers) == {f"127.0.0.1:{primary.port}", f"127.0.0.1:{secondary.port}"}
    assert all(seconds is not None and seconds <= last["converged_s"] for seconds in servers.values())


def test_a_dead_secondary_never_blocks_the_write_and_is_named_in_the_log(pair, caplog):
    primary, _, site_a, _ = pair
    dead = ("127.0.0.1", free_port())
    provider = provider_for(primary, "a", verify=(primary.address, dead), timeout=0.3)

    with caplog.at_level(logging.INFO, logger="consulha.dns"):
        last = run_publisher(provider, 5, converge_limit=1)

    assert provider.read_state().values == provider.wanted  # written although the secondary is dead
    assert last["converged_s"] is None
    assert last["servers"] == {f"127.0.0.1:{primary.port}": last["servers"][f"127.0.0.1:{primary.port}"],
                               f"127.0.0.1:{dead[1]}": None}
    assert last["servers"][f"127.0.0.1:{primary.port}"] is not None
    assert "DNS not converged after" in caplog.text
    assert f"127.0.0.1:{dead[1]}: no answer within 0.3s" in caplog.text


def test_agents_fail_over_every_record_in_one_update_per_zone(tmp_path, consul_server, primary_and_secondary):
    """End to end: two agents; site a's check fails; both servers move every record to b."""
    primary, secondary = primary_and_secondary
    servers = (primary.address, secondary.address)
    verify = [f"127.0.0.1:{port}" for _, port in servers]
    pair = SitePair(tmp_path, consul_server, primary)
    try:
        pair.start("a", multi_record_config(pair, "a", verify))
        pair.wait_leader("a")
        for server in servers:
            wait_until(lambda server=server: server_answers(server) == answers_of("a"), 20,
                       what="site a on both servers", logs=pair.logs)
        pair.start("b", multi_record_config(pair, "b", verify))
        pair.wait_candidates("a", "b")
        before = serials(primary)

        pair.toy("a").fail()

        def moved() -> bool:
            snapshots = [server_answers(server) for server in servers]
            assert not any(mixed_zones(snapshot) for snapshot in snapshots), snapshots
            return all(snapshot == answers_of("b") for snapshot in snapshots)
        wait_until(moved, 30, what="every record on both servers to name site b", logs=pair.logs)
        assert serials(primary) == {zone: serial + 1 for zone, serial in before.items()}
        assert serials(secondary) == serials(primary)
        wait_until(lambda: (pair.agents["b"].log_text().count("converged on every verify server") >= 1), 20,
                   what="b to report convergence", logs=pair.logs)
    finally:
        pair.close()


def test_a_rejected_key_is_logged_with_server_and_rcode_and_writes_no_zone(pair, caplog):
    primary, _, site_a, _ = pair
    wrong_key = dataclasses.replace(site_a.cfg.tsig, secret=random_secret())
    provider = Rfc2136Provider(dataclasses.replace(site_a.cfg, tsig=wrong_key), "a")
    before = serials(primary)

    with caplog.at_level(logging.WARNING, logger="consulha.dns"), running_publisher(provider, 5) as publisher:
        wait_until(lambda: caplog.text.count("DNS update failed") >= 2, 20, what="two failed tries")

    assert (f"DNS update failed (update of zone example.test. at 127.0.0.1:{primary.port}: NOTAUTH (BADSIG)); "
            "retrying in") in caplog.text
    assert publisher.last is None and serials(primary) == before
