"""The margin rule of `validate --connect`: measured round trips against the configured
intervals (pure)."""

from consulha.config.model import SessionConfig
from consulha.core.margins import RoundTrips, Timeouts, margin_warnings
from consulha.core.timing import Timing


def timeouts(lock_delay=1.0, ttl=10.0, heartbeat_ttl=3.0, dns_timeout=2.0, checks=(("api", 1.0),)):
    timing = Timing.of(SessionConfig(ttl=ttl, lock_delay=lock_delay, heartbeat_ttl=heartbeat_ttl))
    return Timeouts(timing=timing, dns_timeout=dns_timeout, check_timeouts=checks)


def settings(warnings):
    return [warning.setting for warning in warnings]


def test_a_lan_leaves_every_margin():
    measured = RoundTrips(consul_read=0.004, local_agent=0.001, dns_primary=0.001,
                          check_targets=(("api", 0.001),))
    assert margin_warnings(timeouts(), measured) == []


def test_a_slow_consistent_read_names_lock_delay_with_the_numbers_and_what_to_set():
    # lock_delay 1 s: lease 0.8 s, confirm every 0.2 s, a read may take at most 0.1 s
    (warning,) = margin_warnings(timeouts(), RoundTrips(consul_read=0.150, local_agent=0.001))
    assert warning.setting == "session.lock_delay"
    assert warning.configured == "1s"
    text = str(warning)
    assert "800 ms" in text and "200 ms" in text and "150 ms" in text and "100 ms" in text
    assert "at least 1.5s" in text          # 10 x the read


def test_the_bound_is_inclusive_and_a_longer_lock_delay_clears_it():
    assert margin_warnings(timeouts(lock_delay=1.0), RoundTrips(consul_read=0.100, local_agent=None)) == []
    assert settings(margin_warnings(timeouts(lock_delay=1.0), RoundTrips(0.101, None))) == ["session.lock_delay"]
    assert margin_warnings(timeouts(lock_delay=2.0), RoundTrips(consul_read=0.150, local_agent=None)) == []


def test_the_shorter_of_ttl_and_lock_delay_is_the_one_named():
    # ttl 10 s under lock_delay 30 s: the lease is 8 s, confirmed every 2 s, a read may take 1 s
    lease, timeout = margin_warnings(timeouts(lock_delay=30.0, ttl=10.0), RoundTrips(1.2, None))
    assert lease.setting == "session.ttl" and "set ttl to at least 12s" in str(lease)
    assert timeout.setting == "consulha request timeout"


def test_reads_slower_than_a_quarter_of_the_request_timeout_are_named():
    found = settings(margin_warnings(timeouts(lock_delay=60.0, ttl=60.0), RoundTrips(0.6, None)))
    assert found == ["consulha request timeout"]


def test_a_slow_local_agent_names_heartbeat_ttl():
    (warning,) = margin_warnings(timeouts(heartbeat_ttl=3.0), RoundTrips(None, local_agent=0.300))
    assert warning.setting == "session.heartbeat_ttl"
    assert "1000 ms" in str(warning) and "300 ms" in str(warning) and "at least 3.6s" in str(warning)


def test_dns_and_check_timeouts_need_four_round_trips_to_their_targets():
    measured = RoundTrips(None, None, dns_primary=0.6, check_targets=(("api", 0.3), ("db", 0.1)))
    warnings = margin_warnings(timeouts(checks=(("api", 1.0), ("db", 1.0))), measured)
    assert settings(warnings) == ["dns.timeout", "services[api].check.timeout"]
    assert "at least 2.4s" in str(warnings[0]) and "at least 1.2s" in str(warnings[1])


def test_nothing_measured_warns_about_nothing():
    assert margin_warnings(timeouts(), RoundTrips(None, None)) == []
