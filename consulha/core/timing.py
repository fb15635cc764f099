"""Every interval the agent uses, derived from the session settings in one place, with the
relations between them checked when it is built (a config that breaks one never starts).

    lease            min(ttl, lock_delay) less 20 % (at least 100 ms): how long a leader may act
                     after the send time of its last confirming read, with no word from Consul
    confirm          lease / 4: a leader re-reads the lock this often, so one or two lost
                     reads still leave lease time
    renew            ttl / 4: session renewals
    standby_wait     longest blocking read of the leader key (a standby must renew in time)
    acquire_retry    retry timer while lock-delay keeps a free key from us (a blocking read
                     would not wake when the delay ends)
    request_timeout  every non-blocking Consul request; short so a partitioned leader fences
                     itself on its lease rather than on Consul's error (which comes after ~8 s)
    stall_limit      how long the main loop may go without a pass before the heartbeat stops
                     vouching for it (one blocking read plus two slow requests, plus the
                     heartbeat TTL)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the core reads config values, it never loads them
    from consulha.config.model import SessionConfig


def lease_duration(ttl: float, lock_delay: float) -> float:
    """min(ttl, lock_delay) less a margin of 20 % (at least 100 ms) for clock-rate drift and
    the time between our decision to write and the write leaving the host."""
    grace = min(ttl, lock_delay)
    return grace - max(0.1, 0.2 * grace)


@dataclass(frozen=True)
class Timing:
    ttl: float
    lock_delay: float
    heartbeat_ttl: float
    lease: float
    confirm: float
    renew: float
    standby_wait: float
    acquire_retry: float
    request_timeout: float = 2.0
    dns_poll: float = 0.05            # after a DNS write, poll the verify servers this often
    dns_converge_limit: float = 10.0  # ... for at most this long

    def __post_init__(self) -> None:
        relations = [
            (0 < self.confirm < self.lease, "confirm < lease"),
            (self.lease < self.lock_delay, "lease < lock_delay: a fenced leader stops before "
                                           "anyone else may take the lock"),
            (self.lease < self.ttl, "lease < ttl"),
            (self.renew < self.ttl / 2, "renew < ttl / 2: one lost renewal is survivable"),
            (self.standby_wait <= self.renew, "standby_wait <= renew"),
            (0 < self.acquire_retry < self.lock_delay, "acquire_retry < lock_delay"),
            (self.heartbeat_ttl <= self.ttl, "heartbeat_ttl <= ttl"),
        ]
        broken = [text for holds, text in relations if not holds]
        if broken:
            raise ValueError(f"inconsistent timing ({self}): {'; '.join(broken)}")

    @classmethod
    def of(cls, session: SessionConfig) -> "Timing":
        lease = lease_duration(session.ttl, session.lock_delay)
        renew = session.ttl / 4
        return cls(ttl=session.ttl, lock_delay=session.lock_delay,
                   heartbeat_ttl=session.heartbeat_ttl, lease=lease, confirm=lease / 4,
                   renew=renew, standby_wait=min(renew, 5.0),
                   acquire_retry=min(0.25, max(0.05, session.lock_delay / 10)))

    @property
    def stall_limit(self) -> float:
        return self.standby_wait * 17 / 16 + 2 * self.request_timeout + self.heartbeat_ttl
