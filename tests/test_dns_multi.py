"""Several records in two zones on a real BIND primary that NOTIFYs a real BIND secondary."""

from __future__ import annotations

import dataclasses
import logging
import threading

import pytest

from consulha.config import RecordConfig
from consulha.dns import Rfc2136Provider, StaleEpochError
from consulha.publisher import DnsPublisher
from consulha.status import dns_status
from lab.named import NamedSecondary
from lab.pair import wait_until
from lab.ports import free_port
from tests.conftest_named import dns_config_for

pytestmark = pytest.mark.integration

ZONES = ("example.test.", "other.test.")
FENCES = {"example.test.": "_consulha.app.example.test.", "other.test.": "_consulha.api.other.test."}


def records_of(site_ip: str, site: str) -> tuple[RecordConfig, ...]:
    """app (A), www (CNAME), ws (A) in example.test. and api (A) in other.test."""
    return (
        RecordConfig("app.example.test.", "A", site_ip, "example.test."),
        RecordConfig("www.example.test.", "CNAME", f"{site}.example.net.", "example.test."),
        RecordConfig("ws.example.test.", "A", site_ip, "example.test."),
        RecordConfig("api.other.test.", "A", site_ip, "other.test."),
    )


def provider_for(server, site: str, site_ip: str, **changes) -> Rfc2136Provider:
    return Rfc2136Provider(dns_config_for(server, records=records_of(site_ip, site), **changes), site)


def serials(server) -> dict[str, int]:
    return {zone: server.soa_serial(zone) for zone in ZONES}


@pytest.fixture
def pair(primary_and_secondary):
    primary, secondary = primary_and_secondary
    verify = (primary.address, secondary.address)
    east = provider_for(primary, "east", "192.0.2.1", verify=verify)
    west = provider_for(primary, "west", "192.0.2.2", verify=verify)
    return primary, secondary, east, west


def test_every_record_of_a_zone_moves_in_one_update_and_zones_in_a_fixed_order(pair):
    primary, _, east, west = pair
    east.publish(5)
    before = serials(primary)

    result = west.publish(7)

    assert result.written == ZONES
    # One UPDATE per zone: the serial went up by exactly one in each.
    assert serials(primary) == {zone: serial + 1 for zone, serial in before.items()}
    assert west.read_state().values == west.wanted
    assert west.read_state().epochs == {FENCES[zone]: 7 for zone in ZONES}


def test_a_newer_fence_in_any_zone_refuses_the_whole_write(pair, primary_and_secondary):
    primary, _, east, west = pair
    east.publish(5)
    # A newer leader got as far as the second zone only (its first zone's update was lost).
    only_other = dataclasses.replace(west.cfg, records=west.cfg.records_in("other.test."))
    Rfc2136Provider(only_other, "west").publish(9)
    before = serials(primary)

    with pytest.raises(StaleEpochError) as caught:
        east.publish(6)

    assert caught.value.stored == 9 and "_consulha.api.other.test." in str(caught.value)
    assert serials(primary) == before
    assert east.read_state().values[("app.example.test.", "A")] == ("192.0.2.1",)


def test_drift_in_one_zone_is_repaired_by_one_update_of_that_zone_only(pair):
    primary, _, east, _ = pair
    east.publish(5)
    drifted = dataclasses.replace(east.cfg, fencing=False,
                                  records=(RecordConfig("ws.example.test.", "A", "198.51.100.9", "example.test."),))
    Rfc2136Provider(drifted, "intruder").publish(0)
    before = serials(primary)

    result = east.publish(5)

    assert result.written == ("example.test.",)
    assert serials(primary) == {"example.test.": before["example.test."] + 1, "other.test.": before["other.test."]}
    assert east.read_state().values == east.wanted


def test_the_secondary_follows_by_notify_and_ixfr(pair):
    primary, secondary, east, west = pair
    east.publish(5)
    west.publish(7)

    # No timing asserted: only that it converges (NOTIFY + IXFR) with values, epoch and serial.
    wait_until(lambda: not west.verifier.laggards(7), 20, what="the secondary to converge")
    views = west.verifier.views()
    assert views[f"127.0.0.1:{secondary.port}"].serials == serials(primary)
    assert views[f"127.0.0.1:{secondary.port}"].values == west.wanted
    assert "IXFR" in secondary.log_tail(200) or "transfer of" in secondary.log_tail(200)


def test_a_lagging_secondary_shows_with_its_serial_and_does_not_block_the_write(tmp_path, primary_and_secondary):
    primary, _ = primary_and_secondary
    # A second secondary that the primary never NOTIFYs: it keeps the zones as transferred at start.
    with NamedSecondary(tmp_path / "lagging", primary) as lagging:
        east = provider_for(primary, "east", "192.0.2.1", verify=(primary.address, lagging.address))
        start_serials = serials(lagging)

        assert east.publish(5).changed

        laggards = east.verifier.laggards(5)
        assert list(laggards) == [f"127.0.0.1:{lagging.port}"]
        assert laggards[f"127.0.0.1:{lagging.port}"].serials == start_serials
        assert laggards[f"127.0.0.1:{lagging.port}"].values[("app.example.test.", "A")] == ()
        status = dns_status(east, {"address": "192.0.2.1", "epoch": 5})
        assert status["servers"][f"127.0.0.1:{primary.port}"]["converged"]
        lagging_status = status["servers"][f"127.0.0.1:{lagging.port}"]
        assert (lagging_status["converged"], lagging_status["soa_serials"]) == (False, start_serials)
        assert not status["converged"]


class LeadingElection:
    """The publisher's view of an election we lead at a fixed epoch."""

    def __init__(self, epoch: int):
        self.epoch = epoch
        self.demoted: str | None = None

    def is_leader(self) -> bool:
        return self.demoted is None

    def demote(self, reason: str) -> None:
        self.demoted = reason


def run_publisher(provider, epoch: int, converge_limit: float) -> dict:
    """Run a DnsPublisher until it reports its write's convergence; return its `last`."""
    import time

    publisher = DnsPublisher(provider.cfg, provider, LeadingElection(epoch), time.monotonic, lambda: None,
                             poll=0.02, converge_limit=converge_limit)
    stop = threading.Event()
    thread = threading.Thread(target=publisher.run, args=(stop,), daemon=True)
    thread.start()
    publisher.wake()
    try:
        wait_until(lambda: publisher.last is not None, 30, what="the publisher to report")
    finally:
        stop.set()
        publisher.wake()
        thread.join(5)
    return publisher.last


def test_publisher_reports_convergence_per_server_secondary_included(pair):
    primary, secondary, east, _ = pair

    last = run_publisher(east, 5, converge_limit=20)

    assert last["epoch"] == 5 and last["converged_s"] is not None
    servers = last["servers"]
    assert set(servers) == {f"127.0.0.1:{primary.port}", f"127.0.0.1:{secondary.port}"}
    assert all(seconds is not None and seconds <= last["converged_s"] for seconds in servers.values())


def test_a_dead_secondary_never_blocks_the_write_and_is_named_in_the_log(pair, caplog):
    primary, _, east, _ = pair
    dead = ("127.0.0.1", free_port())
    provider = provider_for(primary, "east", "192.0.2.1", verify=(primary.address, dead), timeout=0.3)

    with caplog.at_level(logging.INFO, logger="consulha.dns"):
        last = run_publisher(provider, 5, converge_limit=1)

    assert provider.read_state().values == provider.wanted  # written although the secondary is dead
    assert last["converged_s"] is None
    assert last["servers"] == {f"127.0.0.1:{primary.port}": last["servers"][f"127.0.0.1:{primary.port}"],
                               f"127.0.0.1:{dead[1]}": None}
    assert last["servers"][f"127.0.0.1:{primary.port}"] is not None
    assert "DNS not converged after" in caplog.text
    assert f"127.0.0.1:{dead[1]} answered timeout" in caplog.text
