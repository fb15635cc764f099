"""The election state machine: roles, explicit transitions with reasons, and the self-fencing lease.

No I/O happens here. The agent feeds it what it observed (a session, a won lock, a confirmation,
a loss) and reacts to the transitions it emits. The clock is injectable so tests can move time.

Roles:
    starting   -> not yet registered with Consul
    ineligible -> cannot compete (a check is critical, no session, maintenance, Consul down)
    standby    -> holds a healthy session, competes for the lock
    leader     -> holds the lock and a valid lease; the only role allowed to write DNS
    stopped    -> shut down
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import Callable

from consulha.core.reasons import Cause, Reason


class Role(str, Enum):
    STARTING = "starting"
    INELIGIBLE = "ineligible"
    STANDBY = "standby"
    LEADER = "leader"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Transition:
    monotonic: float
    wall: float
    old: Role
    new: Role
    reason: Reason
    epoch: int | None


class Lease:
    """Leadership we may assume on our own clock, with no word from Consul.

    A check-tied session can be invalidated at any moment without us being told; after that only
    `lock_delay` keeps another site from taking the lock. So the lease ends `duration` after the
    *send* time of the last read that proved we held the lock (a read sent earlier than it
    answered proves ownership only from its send time on). `duration` is
    min(ttl, lock_delay) minus a safety margin: see `lease_duration`.
    """

    def __init__(self, duration: float, clock: Callable[[], float]):
        if duration <= 0:
            raise ValueError(f"lease duration must be positive, got {duration}")
        self.duration = duration
        self._clock = clock
        self.expires_at = float("-inf")

    def confirm(self, sent_at: float) -> None:
        """Extend the lease to `sent_at + duration`; an older confirmation never shortens it."""
        self.expires_at = max(self.expires_at, sent_at + self.duration)

    def revoke(self) -> None:
        self.expires_at = float("-inf")

    def valid(self) -> bool:
        return self._clock() < self.expires_at

    def remaining(self) -> float:
        return max(0.0, self.expires_at - self._clock())


Listener = Callable[[Transition], None]


class Election:
    """Thread-safe role holder; every change goes through `_move` with a reason."""

    def __init__(self, lease: Lease, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time):
        self.lease = lease
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self.role = Role.STARTING
        self.reason = Reason(Cause.STARTING)
        self.epoch: int | None = None
        self.since = clock()
        self.history: list[Transition] = []

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` after every transition, in order, from the thread that made it."""
        self._listeners.append(listener)

    # -- transitions ----------------------------------------------------------------------------

    def ineligible(self, reason: Reason) -> None:
        """We cannot compete right now. A leader loses its lease first."""
        with self._lock:
            if self.role != Role.STOPPED:
                self._move(Role.INELIGIBLE, reason)

    def candidate(self, reason: Reason) -> None:
        """A healthy session exists: compete for the lock."""
        with self._lock:
            if self.role in (Role.STARTING, Role.INELIGIBLE):
                self._move(Role.STANDBY, reason)

    def promote(self, epoch: int, confirmed_sent_at: float, reason: Reason) -> bool:
        """We won the lock at `epoch`, proved by a read sent at `confirmed_sent_at`.

        Refused (returns False) unless we are standby and the proof still leaves lease time:
        a promotion that would be fenced at once is no promotion.
        """
        with self._lock:
            if self.role != Role.STANDBY:
                return False
            self.lease.confirm(confirmed_sent_at)
            if not self.lease.valid():
                self.lease.revoke()
                return False
            self.epoch = epoch
            self._move(Role.LEADER, reason)
            return True

    def confirm(self, sent_at: float) -> None:
        """A read sent at `sent_at` showed we still hold the lock."""
        with self._lock:
            if self.role == Role.LEADER:
                self.lease.confirm(sent_at)

    def demote(self, reason: Reason, to: Role = Role.STANDBY) -> bool:
        """Leave the leader role now; returns False when we were not leader."""
        with self._lock:
            if self.role != Role.LEADER:
                return False
            self._move(to, reason)
            return True

    def fence_if_expired(self) -> bool:
        """Self-fencing: demote on our own clock when the lease ran out. True if it did."""
        with self._lock:
            if self.role == Role.LEADER and not self.lease.valid():
                overdue = self._clock() - self.lease.expires_at
                return self.demote(Reason(Cause.SELF_FENCED, f"self-fenced: lease expired "
                                          f"{overdue:.3f}s ago without a confirmation from Consul",
                                          seconds=round(overdue, 3)))
            return False

    def stop(self, reason: Reason) -> None:
        with self._lock:
            if self.role != Role.STOPPED:
                self._move(Role.STOPPED, reason)

    # -- queries --------------------------------------------------------------------------------

    def is_leader(self) -> bool:
        """Leader *and* inside the lease: the only state in which DNS may be written."""
        with self._lock:
            return self.role == Role.LEADER and self.lease.valid()

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "role": self.role.value,
                "reason": str(self.reason),
                "cause": self.reason.cause.value,
                "epoch": self.epoch if self.role == Role.LEADER else None,
                "role_for_s": round(self._clock() - self.since, 3),
                "lease_remaining_s": round(self.lease.remaining(), 3) if self.role == Role.LEADER else None,
            }

    def _move(self, new: Role, reason: Reason) -> None:
        if new == self.role:
            self.reason = reason  # a new reason for the same role is news, not a transition
            return
        if self.role == Role.LEADER and new != Role.LEADER:
            self.lease.revoke()
        transition = Transition(self._clock(), self._wall_clock(), self.role, new, reason,
                                self.epoch)
        self.role, self.reason, self.since = new, reason, transition.monotonic
        if new != Role.LEADER:
            self.epoch = None
        self.history.append(transition)
        del self.history[:-100]
        for listener in self._listeners:
            listener(transition)
