"""Whether the configured intervals leave enough margin for the round trips measured on this
host (`consulha validate --connect`). Pure: measurements in, warnings out.

The rules, each with its reason:

- session.lock_delay (session.ttl when it is the shorter): a leader acts only within its lease
  (min(ttl, lock_delay) less 20 %), counted from the send time of its last confirming
  consistent read, and re-reads every lease / 4. A read that takes more than half of that
  interval leaves one slow read without lease to spare: a healthy leader would fence itself.
  So: slowest read <= lease / 8. (Renewals every ttl / 4 need less: ttl >= lock_delay is the
  usual case, and a ttl under lock_delay is covered by this same rule.)
- session.heartbeat_ttl: the local agent probes us every heartbeat_ttl / 3 with that timeout;
  the probe must answer well within it: local agent round trip <= heartbeat_ttl / 3 / 4.
- a check's timeout, and dns.timeout: at least 4 round trips to the target.
- consulha's own request timeout (fixed, 2 s): at least 4 Consul round trips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from consulha.core.timing import Timing

TIMEOUT_ROUND_TRIPS = 4   # a timeout should cover this many round trips
CONFIRM_SHARE = 2         # a confirming read may take at most confirm / 2


@dataclass(frozen=True)
class RoundTrips:
    """Measured round trips in seconds (None: not measured)."""
    consul_read: float | None             # slowest timed consistent read through the local agent
    local_agent: float | None             # slowest timed request the local agent answers itself
    dns_primary: float | None = None
    check_targets: tuple[tuple[str, float], ...] = ()   # (service, connect time to its target)


@dataclass(frozen=True)
class Timeouts:
    """The configured values the rules look at, named as in the config file."""
    timing: Timing
    dns_timeout: float | None
    check_timeouts: tuple[tuple[str, float], ...]   # (service, check timeout)


@dataclass(frozen=True)
class MarginWarning:
    setting: str      # the config key, e.g. "session.lock_delay"
    configured: str   # its value as the user wrote it (rounded)
    text: str         # what the measurement leaves of it, and what to set

    def __str__(self) -> str:
        return f"{self.setting} {self.configured}: {self.text}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _s(seconds: float) -> str:
    return f"{seconds:g}s"


def _ceil_to(seconds: float, step: float = 0.1) -> float:
    return math.ceil(seconds / step - 1e-9) * step


def margin_warnings(timeouts: Timeouts, measured: RoundTrips) -> list[MarginWarning]:
    timing = timeouts.timing
    warnings: list[MarginWarning] = []
    read = measured.consul_read
    if read is not None:
        allowed = timing.confirm / CONFIRM_SHARE
        if read > allowed:
            # lease = 0.8 * grace for grace >= 0.5 s; confirm = lease / 4; allowed = lease / 8
            needed = _ceil_to(read * 8 / 0.8)
            setting, value = (("session.lock_delay", timing.lock_delay) if timing.lock_delay <= timing.ttl
                              else ("session.ttl", timing.ttl))
            warnings.append(MarginWarning(
                setting, _s(value),
                f"the leader's lease is {_ms(timing.lease)}, confirmed every {_ms(timing.confirm)}, "
                f"but a consistent read took {_ms(read)} (at most {_ms(allowed)} leaves one slow "
                f"read to spare); set {setting.split('.')[1]} to at least {_s(max(needed, 0.5))}"))
        if read * TIMEOUT_ROUND_TRIPS > timing.request_timeout:
            warnings.append(MarginWarning(
                "consulha request timeout", _s(timing.request_timeout),
                f"a consistent read took {_ms(read)}, more than a quarter of the request timeout: "
                f"requests to Consul will time out (the Consul servers are too far away)"))
    local = measured.local_agent
    probe = timing.heartbeat_ttl / 3
    if local is not None and local * TIMEOUT_ROUND_TRIPS > probe:
        warnings.append(MarginWarning(
            "session.heartbeat_ttl", _s(timing.heartbeat_ttl),
            f"the local Consul agent probes the heartbeat with a {_ms(probe)} timeout, but it "
            f"took {_ms(local)} to answer us; set heartbeat_ttl to at least "
            f"{_s(_ceil_to(local * TIMEOUT_ROUND_TRIPS * 3))}"))
    for setting, timeout, rtt in _timeouts_with_round_trips(timeouts, measured):
        if rtt * TIMEOUT_ROUND_TRIPS > timeout:
            warnings.append(MarginWarning(
                setting, _s(timeout),
                f"a round trip to its target took {_ms(rtt)}; a timeout under "
                f"{TIMEOUT_ROUND_TRIPS} round trips fails on one slow answer: set at least "
                f"{_s(_ceil_to(rtt * TIMEOUT_ROUND_TRIPS))}"))
    return warnings


def _timeouts_with_round_trips(timeouts: Timeouts, measured: RoundTrips):
    if timeouts.dns_timeout is not None and measured.dns_primary is not None:
        yield "dns.timeout", timeouts.dns_timeout, measured.dns_primary
    rtts = dict(measured.check_targets)
    for service, timeout in timeouts.check_timeouts:
        if service in rtts:
            yield f"services[{service}].check.timeout", timeout, rtts[service]
