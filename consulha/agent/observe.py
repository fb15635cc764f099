"""Observe: one read of everything a pass decides on, into a `Snapshot`.

Order matters. The leader key is read first (a standby blocks on it with an index, a leader
reads it consistently and notes the send time: the proof its lease rests on), then the control
state. The control state and the candidate keys come from the group's PrefixWatch while its
answer is fresh; a standby that sees the key free reads the control state directly, so a
handover request written while it blocked is seen in the same pass that sees the key free.
A session that is due for renewal is renewed first: Consul tells whether a session is still
alive only through a renewal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from consulha.agent.status import read_peers
from consulha.consul.control import read_control
from consulha.consul.store import ConsulStore, next_index
from consulha.consul.watch import PrefixWatch
from consulha.core.control import ControlKeys, ControlState
from consulha.core.damping import Failure
from consulha.core.decide import Snapshot
from consulha.core.election import Election, Role
from consulha.core.keys import Keys
from consulha.core.records import LeaderKey
from consulha.core.timing import Timing


@dataclass
class SessionMemory:
    """What the agent carries from one pass to the next (everything else is re-read)."""
    session: str | None = None
    session_paused: bool = False        # made while the group was paused: no service checks
    next_renew: float = 0.0
    candidate_key_held: bool = False
    leader_index: int = 0               # blocking-query index of the leader key
    free_seen: tuple[int, float] | None = None  # (ModifyIndex of the free key, first seen at)
    hold_off_until: float = 0.0
    local_failing: tuple[str, ...] = ()  # as of the last read of the local agent's checks
    checks_index: int = 0               # blocking-query index of our node's checks (ineligible)
    lost: Failure | None = None         # our lost leadership, until it is in our failure record

    def new_session(self, session: str, paused: bool, now: float, renew: float) -> None:
        self.session, self.next_renew, self.candidate_key_held = session, now + renew, False
        self.session_paused = paused

    def forget_session(self) -> None:
        self.session, self.leader_index, self.candidate_key_held = None, 0, False


class Observer:
    def __init__(self, store: ConsulStore, keys: Keys, control_keys: ControlKeys, timing: Timing,
                 election: Election, site: str, cfg, clock: Callable[[], float],
                 wall_clock: Callable[[], float] = time.time, watch: PrefixWatch | None = None,
                 own_failing: Callable[[], tuple[str, ...]] = tuple):
        """`own_failing`: our services our own probes find critical (consulha.agent.ownchecks)."""
        self.store = store
        self.keys = keys
        self.control_keys = control_keys
        self.timing = timing
        self.election = election
        self.site = site
        self.cfg = cfg
        self._clock = clock
        self._wall_clock = wall_clock
        self._watch = watch
        self._own_failing = own_failing
        self.local_checks: dict[str, dict] | None = None  # read when the session was renewed or made

    def observe(self, memory: SessionMemory) -> Snapshot:
        self.local_checks = None
        if memory.session is None:
            if self._clock() >= memory.hold_off_until:
                self._read_local_checks(memory)
            return self._snapshot(memory, self._control(memory))
        if not self._renew_if_due(memory):
            return self._snapshot(memory, self._control(memory), session_alive=False)
        sent_at = self._clock()
        if self.election.role == Role.LEADER:
            _, entry = self.store.get(self.keys.leader)
        else:
            # A probe of ours failing: decide withdraws us on this answer, not after a wait.
            since = 0 if self._own_failing() else memory.leader_index
            index, entry = self.store.get(self.keys.leader, index=since, wait=self._standby_wait(memory))
            memory.leader_index = next_index(memory.leader_index, index)  # lower: start over
        leader = LeaderKey.of(entry)
        control = self._control(memory, fresh=not leader.held and self.election.role != Role.LEADER)
        peers, wall = None, self._wall_clock()
        if self.election.role == Role.LEADER and leader.holder == memory.session and (
                control.in_maintenance(self.site) or (control.handover and control.handover.state == "pending")):
            peers = read_peers(self.cfg, self.keys, self.store)
        elif self.election.role != Role.LEADER and not leader.held and self._damped(control, wall):
            peers = read_peers(self.cfg, self.keys, self.store)  # is anyone else there to take it?
        # The wall time the damping was judged at: decide must see it damped exactly when we did.
        return self._snapshot(memory, control, wall=wall, leader=leader, read_sent_at=sent_at,
                              free_since=self._free_since(memory, leader), peers=peers)

    def _snapshot(self, memory: SessionMemory, control: ControlState, wall: float | None = None,
                  **observed) -> Snapshot:
        return Snapshot(now=self._clock(), wall=self._wall_clock() if wall is None else wall,
                        role=self.election.role,
                        role_since=self.election.since, control=control, session=memory.session,
                        session_paused=memory.session_paused, local_failing=memory.local_failing,
                        own_failing=self._own_failing(),
                        hold_off_until=memory.hold_off_until, lost=memory.lost, **observed)

    def _damped(self, control: ControlState, wall: float) -> bool:
        record = control.failures.get(self.site)
        return self.cfg.election.damping.enabled and record is not None and record.damped(wall)

    def _renew_if_due(self, memory: SessionMemory) -> bool:
        """Renew when due; False when Consul no longer has our session."""
        if self._clock() < memory.next_renew:
            return True
        if not self.store.renew_session(memory.session):
            return False
        memory.next_renew = self._clock() + self.timing.renew
        self._read_local_checks(memory)
        if self._watch is None or self._watch.view() is None:
            _, candidate = self.store.get(self.keys.candidate(self.site))
            memory.candidate_key_held = candidate is not None and candidate.session == memory.session
        return True

    def _control(self, memory: SessionMemory, fresh: bool = False) -> ControlState:
        """The control state from the watch while its answer is recent, else read now. The
        watch also tells whether our candidate key is still ours (an operator may delete it)."""
        view = None if fresh or self._watch is None else self._watch.view()
        if view is None:
            return read_control(self.store, self.control_keys)
        if memory.session is not None and view.candidate_holders.get(self.site) != memory.session:
            memory.candidate_key_held = False
        return view.control

    def _read_local_checks(self, memory: SessionMemory) -> None:
        """The local agent is the truth about our own services (no server round trip). A check
        that has never run (critical with no output: just registered) does not count yet."""
        self.local_checks = self.store.local_checks()
        memory.local_failing = tuple(
            service.name for service in self.cfg.services
            for check in [self.local_checks.get(self.keys.check_id(service.name))]
            if check is not None and check.get("Status") == "critical" and check.get("Output"))

    def _standby_wait(self, memory: SessionMemory) -> float:
        return max(0.05, min(self.timing.standby_wait, memory.next_renew - self._clock()))

    def _free_since(self, memory: SessionMemory, leader: LeaderKey) -> float | None:
        """When we first saw the key free in its current state (its ModifyIndex, -1 if absent)."""
        if leader.held:
            memory.free_seen = None
            return None
        free_id = leader.modify_index if leader.exists else -1
        if memory.free_seen is None or memory.free_seen[0] != free_id:
            memory.free_seen = (free_id, self._clock())
        return memory.free_seen[1]
