"""RFC 2136 provider against a real BIND (see conftest_named.py); no mocks of DNS."""

from __future__ import annotations

import socket
import time

import dns.message
import dns.query
import pytest

from consulha.config import TsigConfig
from consulha.dns import (DnsError, DnsState, Rfc2136Provider, StaleEpochError, describe_laggards,
                          make_provider)
from lab.named import random_secret
from lab.ports import free_port

pytestmark = pytest.mark.integration

EAST_IP = "192.0.2.1"
WEST_IP = "192.0.2.2"


def soa_serial(named) -> int:
    host, port = named.address
    response = dns.query.tcp(dns.message.make_query(named.zone, "SOA"), host, timeout=2, port=port)
    return response.answer[0][0].serial


@pytest.fixture
def east(make_dns_config):
    return Rfc2136Provider(make_dns_config(value=EAST_IP), "east")


@pytest.fixture
def west(make_dns_config):
    return Rfc2136Provider(make_dns_config(value=WEST_IP), "west")


def test_publish_on_empty_zone_writes_record_and_fence(east):
    result = east.publish(EAST_IP, 5)

    assert result.changed
    assert result.before == DnsState(values=(), epoch=None, fence_txt=())
    assert east.read_state() == DnsState(values=(EAST_IP,), epoch=5, fence_txt=('"epoch=5 site=east"',))


def test_publish_again_at_same_epoch_writes_nothing(east, named):
    east.publish(EAST_IP, 5)
    serial = soa_serial(named)

    result = east.publish(EAST_IP, 5)

    assert not result.changed
    assert soa_serial(named) == serial


def test_newer_epoch_overwrites(east, west):
    east.publish(EAST_IP, 5)

    result = west.publish(WEST_IP, 7)

    assert result.changed
    assert result.before.epoch == 5
    assert west.read_state() == DnsState(values=(WEST_IP,), epoch=7, fence_txt=('"epoch=7 site=west"',))


def test_same_leader_repairs_a_drifted_record_at_its_epoch(east, make_dns_config):
    east.publish(EAST_IP, 5)
    Rfc2136Provider(make_dns_config(fencing=False), "intruder").publish("198.51.100.9", 0)

    assert east.publish(EAST_IP, 5).changed
    assert east.read_state().values == (EAST_IP,)


def test_stale_epoch_is_refused_without_writing(east, west, named):
    west.publish(WEST_IP, 7)
    serial = soa_serial(named)

    with pytest.raises(StaleEpochError) as caught:
        east.publish(EAST_IP, 5)

    assert (caught.value.ours, caught.value.stored) == (5, 7)
    assert east.read_state().values == (WEST_IP,)
    assert soa_serial(named) == serial


def stale_first_read(monkeypatch, provider, snapshot):
    """Make `provider` see `snapshot` on its next read, as if another writer
    slipped in between its read and its update."""
    real_read = provider.read_state
    reads = iter([snapshot])
    monkeypatch.setattr(provider, "read_state", lambda: next(reads, None) or real_read())


def test_cas_on_absent_fence_fails_when_a_newer_leader_wrote_in_between(monkeypatch, east, west):
    stale = east.read_state()
    west.publish(WEST_IP, 9)
    stale_first_read(monkeypatch, east, stale)

    with pytest.raises(StaleEpochError) as caught:
        east.publish(EAST_IP, 8)

    assert caught.value.stored == 9
    assert west.read_state().values == (WEST_IP,)


def test_cas_on_present_fence_fails_when_a_newer_leader_wrote_in_between(monkeypatch, east, west):
    east.publish(EAST_IP, 5)
    stale = east.read_state()
    west.publish(WEST_IP, 9)
    stale_first_read(monkeypatch, east, stale)

    with pytest.raises(StaleEpochError):
        east.publish(EAST_IP, 6)

    assert west.read_state() == DnsState(values=(WEST_IP,), epoch=9, fence_txt=('"epoch=9 site=west"',))


def test_cas_lost_to_an_older_writer_asks_for_a_retry(monkeypatch, east, west):
    stale = east.read_state()
    west.publish(WEST_IP, 3)
    stale_first_read(monkeypatch, east, stale)

    with pytest.raises(DnsError, match="lost a race") as caught:
        east.publish(EAST_IP, 8)

    assert not isinstance(caught.value, StaleEpochError)
    assert east.read_state().values == (WEST_IP,)
    assert east.publish(EAST_IP, 8).changed
    assert east.read_state().epoch == 8


@pytest.mark.parametrize(
    ("key_name", "expected"),
    [("consulha-key", r"NOTAUTH \(BADSIG\)"), ("no-such-key", r"NOTAUTH \(BADKEY\)")],
)
def test_wrong_tsig_key_is_rejected_and_the_secret_stays_out_of_the_message(make_dns_config, key_name, expected):
    secret = random_secret()
    provider = Rfc2136Provider(make_dns_config(tsig=TsigConfig(name=key_name, secret=secret)), "east")

    with pytest.raises(DnsError, match=expected) as caught:
        provider.publish(EAST_IP, 5)

    assert secret not in str(caught.value)
    assert secret not in repr(provider)
    assert provider.read_state().values == ()


def test_key_without_grant_is_refused(make_dns_config, named):
    ((key_name, secret),) = named.extra_keys.items()
    provider = Rfc2136Provider(make_dns_config(tsig=TsigConfig(name=key_name, secret=secret)), "east")

    with pytest.raises(DnsError, match="REFUSED"):
        provider.publish(EAST_IP, 5)


def test_record_outside_the_update_policy_is_refused(make_dns_config):
    provider = Rfc2136Provider(make_dns_config(record="other.example.test."), "east")

    with pytest.raises(DnsError, match="REFUSED") as caught:
        provider.publish(EAST_IP, 5)

    assert "127.0.0.1" in str(caught.value)


def test_closed_port_fails_fast(make_dns_config):
    provider = Rfc2136Provider(make_dns_config(server=("127.0.0.1", free_port()), timeout=10), "east")

    started = time.monotonic()
    with pytest.raises(DnsError, match="network error"):
        provider.publish(EAST_IP, 5)
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
            provider.publish(EAST_IP, 5)
        # Bounded by the timeout (plus a margin for a loaded machine), not hung on the silent peer.
        assert time.monotonic() - started < 5


def test_answers_per_verify_server(make_dns_config, named):
    dead = ("127.0.0.1", free_port())
    provider = Rfc2136Provider(make_dns_config(verify=(named.address, dead), timeout=0.3), "east")
    assert provider.answers()[f"127.0.0.1:{named.port}"] == ()

    provider.publish(EAST_IP, 5)
    answers = provider.answers()

    assert answers[f"127.0.0.1:{named.port}"] == (EAST_IP,)
    assert isinstance(answers[f"127.0.0.1:{dead[1]}"], str)


def test_laggards_is_empty_once_every_verify_server_answers_the_value(east):
    assert east.laggards(EAST_IP) != {}

    east.publish(EAST_IP, 5)

    assert east.laggards(EAST_IP) == {}


def test_laggards_names_each_server_that_answers_something_else(make_dns_config, named):
    dead = ("127.0.0.1", free_port())
    provider = Rfc2136Provider(make_dns_config(verify=(named.address, dead), timeout=0.3), "east")
    provider.publish(EAST_IP, 5)

    laggards = provider.laggards(WEST_IP)

    assert laggards[f"127.0.0.1:{named.port}"] == (EAST_IP,)
    assert isinstance(laggards[f"127.0.0.1:{dead[1]}"], str)
    assert describe_laggards(laggards).startswith(f"127.0.0.1:{named.port} answered {EAST_IP}; ")


def test_probe_auth_accepts_the_right_key_and_changes_nothing(east, named):
    serial = soa_serial(named)

    east.probe_auth()

    assert soa_serial(named) == serial
    assert east.read_state().values == ()


def test_probe_auth_rejects_a_wrong_key(make_dns_config):
    provider = Rfc2136Provider(make_dns_config(tsig=TsigConfig(name="consulha-key", secret=random_secret())), "east")

    with pytest.raises(DnsError, match="NOTAUTH"):
        provider.probe_auth()


def test_fencing_off_writes_the_record_without_fence(make_dns_config):
    provider = Rfc2136Provider(make_dns_config(fencing=False), "east")

    assert provider.publish(EAST_IP, 5).changed
    assert provider.read_state() == DnsState(values=(EAST_IP,), epoch=None, fence_txt=())
    assert not provider.publish(EAST_IP, 6).changed


def test_cname_value_is_absolute(make_dns_config):
    provider = Rfc2136Provider(make_dns_config(type="CNAME", value="east.example.net."), "east")

    provider.publish("east.example.net", 5)

    assert provider.read_state().values == ("east.example.net.",)
    # Converged although the configured value has no trailing dot: laggards() compares the canonical form.
    assert provider.laggards("east.example.net") == {}


def test_make_provider_picks_by_name(make_dns_config):
    assert isinstance(make_provider(make_dns_config(), "east"), Rfc2136Provider)
    with pytest.raises(ValueError, match="unknown DNS provider"):
        make_provider(make_dns_config(provider="route53"), "east")
