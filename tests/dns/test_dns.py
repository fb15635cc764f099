"""RFC 2136 provider against a real BIND and a real PowerDNS (same tests); no mocks of DNS."""

from __future__ import annotations

import socket
import time

import pytest

from consulha.config import TsigConfig
from consulha.dns import (
    CommandProvider,
    DnsError,
    DnsState,
    Rfc2136Provider,
    StaleEpochError,
    describe_laggards,
    make_provider,
)
from lab.named import NamedServer, random_secret
from lab.pdns import PowerDnsServer
from lab.ports import free_port
from tests.conftest_named import NO_GRANT_KEY, dns_config_for

pytestmark = pytest.mark.integration

EAST_IP = "192.0.2.1"
WEST_IP = "192.0.2.2"
APP = ("app.example.test.", "A")
FENCE = "_consulha.app.example.test."


def state(value: str | None, epoch: int | None, site: str = "") -> DnsState:
    """The DnsState of the one record app.example.test. A."""
    return DnsState(values={APP: (value,) if value else ()}, epochs={FENCE: epoch},
                    fence_txt={FENCE: (f'"epoch={epoch} site={site}"',) if epoch is not None else ()})


@pytest.fixture(params=["bind", "powerdns"])
def named(request, tmp_path):
    """The primary: BIND, then PowerDNS (sqlite3 back end, dnsupdate=yes); both know a key that
    may update nothing (NO_GRANT_KEY)."""
    kind = NamedServer if request.param == "bind" else PowerDnsServer
    with kind(tmp_path / request.param, extra_keys={NO_GRANT_KEY: random_secret()}) as server:
        yield server


@pytest.fixture
def make_dns_config(named):
    return lambda **changes: dns_config_for(named, **changes)


@pytest.fixture
def east(make_dns_config):
    return Rfc2136Provider(make_dns_config(value=EAST_IP), "east")


@pytest.fixture
def west(make_dns_config):
    return Rfc2136Provider(make_dns_config(value=WEST_IP), "west")


def test_publish_on_empty_zone_writes_record_and_fence(east):
    result = east.publish(5)

    assert result.changed
    assert result.before == state(None, None)
    assert east.read_state() == state(EAST_IP, 5, "east")


def test_publish_again_at_same_epoch_writes_nothing(east, named):
    east.publish(5)
    serial = named.soa_serial()

    result = east.publish(5)

    assert not result.changed
    assert named.soa_serial() == serial


def test_newer_epoch_overwrites_in_one_update(east, west, named):
    east.publish(5)
    serial = named.soa_serial()

    result = west.publish(7)

    assert result.changed
    assert result.before.epoch == 5
    assert west.read_state() == state(WEST_IP, 7, "west")
    assert named.soa_serial() == serial + 1


def test_same_leader_repairs_a_drifted_record_at_its_epoch(east, make_dns_config):
    east.publish(5)
    Rfc2136Provider(make_dns_config(value="198.51.100.9", fencing=False), "intruder").publish(0)
    assert east.read_state().values[APP] == ("198.51.100.9",)

    assert east.publish(5).changed
    assert east.read_state() == state(EAST_IP, 5, "east")


def test_stale_epoch_is_refused_without_writing(east, west, named):
    west.publish(7)
    serial = named.soa_serial()

    with pytest.raises(StaleEpochError) as caught:
        east.publish(5)

    assert (caught.value.ours, caught.value.stored) == (5, 7)
    assert east.read_state().values[APP] == (WEST_IP,)
    assert named.soa_serial() == serial


def stale_first_read(monkeypatch, provider, snapshot):
    """Make `provider` see `snapshot` on its next read, as if another writer
    slipped in between its read and its update."""
    real_read = provider.read_state
    reads = iter([snapshot])
    monkeypatch.setattr(provider, "read_state", lambda: next(reads, None) or real_read())


def test_cas_on_absent_fence_fails_when_a_newer_leader_wrote_in_between(monkeypatch, east, west):
    stale = east.read_state()
    west.publish(9)
    stale_first_read(monkeypatch, east, stale)

    with pytest.raises(StaleEpochError) as caught:
        east.publish(8)

    assert caught.value.stored == 9
    assert west.read_state().values[APP] == (WEST_IP,)


def test_cas_on_present_fence_fails_when_a_newer_leader_wrote_in_between(monkeypatch, east, west):
    east.publish(5)
    stale = east.read_state()
    west.publish(9)
    stale_first_read(monkeypatch, east, stale)

    with pytest.raises(StaleEpochError):
        east.publish(6)

    assert west.read_state() == state(WEST_IP, 9, "west")


def test_cas_lost_to_an_older_writer_asks_for_a_retry(monkeypatch, east, west):
    stale = east.read_state()
    west.publish(3)
    stale_first_read(monkeypatch, east, stale)

    with pytest.raises(DnsError, match="lost a race") as caught:
        east.publish(8)

    assert not isinstance(caught.value, StaleEpochError)
    assert east.read_state().values[APP] == (WEST_IP,)
    assert east.publish(8).changed
    assert east.read_state().epoch == 8


# BIND signs its TSIG error replies (NOTAUTH with the TSIG error); PowerDNS answers REFUSED, unsigned.
WRONG_KEY_REPLIES = {
    (NamedServer, "consulha-key"): r"NOTAUTH \(BADSIG\)",
    (NamedServer, "no-such-key"): r"NOTAUTH \(BADKEY\)",
    (PowerDnsServer, "consulha-key"): r"REFUSED \(unsigned reply",
    (PowerDnsServer, "no-such-key"): r"REFUSED \(unsigned reply",
}


@pytest.mark.parametrize("key_name", ["consulha-key", "no-such-key"])
def test_wrong_tsig_key_is_rejected_and_the_secret_stays_out_of_the_message(make_dns_config, named, key_name):
    expected = rf"update of zone example.test. at 127.0.0.1:{named.port}: " + WRONG_KEY_REPLIES[type(named), key_name]
    secret = random_secret()
    provider = Rfc2136Provider(make_dns_config(tsig=TsigConfig(name=key_name, secret=secret)), "east")

    with pytest.raises(DnsError, match=expected) as caught:
        provider.publish(5)

    assert secret not in str(caught.value)
    assert secret not in repr(provider)
    assert provider.read_state().values[APP] == ()


def test_key_without_grant_is_refused(make_dns_config, named):
    ((key_name, secret),) = named.extra_keys.items()
    provider = Rfc2136Provider(make_dns_config(tsig=TsigConfig(name=key_name, secret=secret)), "east")

    with pytest.raises(DnsError, match=rf"update of zone example.test. at 127.0.0.1:{named.port}: REFUSED"):
        provider.publish(5)

    assert provider.read_state().values[APP] == ()


def test_record_outside_the_update_policy_is_refused(make_dns_config, named):
    if isinstance(named, PowerDnsServer):
        pytest.skip("PowerDNS grants a key a whole zone (TSIG-ALLOW-DNSUPDATE), not single names")
    provider = Rfc2136Provider(make_dns_config(record="other.example.test."), "east")

    with pytest.raises(DnsError, match="REFUSED") as caught:
        provider.publish(5)

    assert "127.0.0.1" in str(caught.value)


def test_closed_port_fails_fast(make_dns_config):
    provider = Rfc2136Provider(make_dns_config(server=("127.0.0.1", free_port()), timeout=10), "east")

    started = time.monotonic()
    with pytest.raises(DnsError, match="network error"):
        provider.publish(5)
    # A refusal is reported at once, not after the 10 s timeout (the margin is for a loaded machine).
    assert time.monotonic() - started < 5


def test_silent_server_times_out_within_the_timeout(make_dns_config):
    with socket.socket() as silent:
        # Listening but never accepting: the kernel completes the handshake, nobody answers.
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        provider = Rfc2136Provider(make_dns_config(server=silent.getsockname(), timeout=0.5), "east")

        started = time.monotonic()
        with pytest.raises(DnsError, match="timeout"):
            provider.publish(5)
        # Bounded by the timeout (plus a margin for a loaded machine), not hung on the silent peer.
        assert time.monotonic() - started < 5


def test_answers_per_verify_server(make_dns_config, named):
    dead = ("127.0.0.1", free_port())
    provider = Rfc2136Provider(make_dns_config(verify=(named.address, dead), timeout=0.3), "east")
    assert provider.answers()[f"127.0.0.1:{named.port}"] == ()

    provider.publish(5)
    answers = provider.answers()

    assert answers[f"127.0.0.1:{named.port}"] == (EAST_IP,)
    assert isinstance(answers[f"127.0.0.1:{dead[1]}"], str)


def test_laggards_is_empty_once_every_verify_server_answers_the_values_and_epoch(east):
    assert east.verifier.laggards(5) != {}

    east.publish(5)

    assert east.verifier.laggards(5) == {}
    # The same values under another epoch have not converged: the fence is part of it.
    assert set(east.verifier.laggards(6)) == {f"127.0.0.1:{east.server[1]}"}


def test_laggards_names_each_server_with_what_it_answers(make_dns_config, named):
    dead = ("127.0.0.1", free_port())
    provider = Rfc2136Provider(make_dns_config(verify=(named.address, dead), timeout=0.3), "east")
    provider.publish(5)
    serial = named.soa_serial()

    laggards = provider.verifier.laggards(6)

    alive = laggards[f"127.0.0.1:{named.port}"]
    assert (alive.values[APP], alive.epochs[FENCE], alive.serials["example.test."]) == ((EAST_IP,), 5, serial)
    down = laggards[f"127.0.0.1:{dead[1]}"]
    assert isinstance(down.values[APP], str) and down.serials["example.test."] == down.values[APP]
    assert describe_laggards(laggards).startswith(
        f"127.0.0.1:{named.port} answered app.example.test. A {EAST_IP}, epoch 5, serial {serial}; ")


def test_probe_auth_accepts_the_right_key_and_changes_nothing(east, named):
    serial = named.soa_serial()

    east.probe_auth()

    assert named.soa_serial() == serial
    assert east.read_state().values[APP] == ()


def test_probe_auth_rejects_a_wrong_key(make_dns_config, named):
    provider = Rfc2136Provider(make_dns_config(tsig=TsigConfig(name="consulha-key", secret=random_secret())), "east")

    with pytest.raises(DnsError, match=WRONG_KEY_REPLIES[type(named), "consulha-key"]):
        provider.probe_auth()


def test_fencing_off_writes_the_record_without_fence(make_dns_config):
    provider = Rfc2136Provider(make_dns_config(fencing=False), "east")

    assert provider.publish(5).changed
    assert provider.read_state() == DnsState(values={APP: (EAST_IP,)}, epochs={}, fence_txt={})
    assert not provider.publish(6).changed
    assert provider.verifier.laggards(6) == {}


def test_cname_value_is_absolute(make_dns_config):
    provider = Rfc2136Provider(make_dns_config(type="CNAME", value="east.example.net"), "east")

    provider.publish(5)

    assert provider.read_state().values[("app.example.test.", "CNAME")] == ("east.example.net.",)
    # Converged although the configured value has no trailing dot: laggards() compares the canonical form.
    assert provider.verifier.laggards(5) == {}


def test_make_provider_picks_by_name(make_dns_config):
    assert isinstance(make_provider(make_dns_config(), "east"), Rfc2136Provider)
    assert isinstance(make_provider(make_dns_config(provider="command", command=("/bin/true",)), "east"),
                      CommandProvider)
    with pytest.raises(ValueError, match="unknown DNS provider"):
        make_provider(make_dns_config(provider="route53"), "east")
