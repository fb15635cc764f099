"""Our session's life: made when every check it is tied to passes (else wait for one of our
node's checks to change), and swapped for one of the other kind when the group is paused or
resumed (a session's checks cannot change)."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from consulha.agent.lock import LockActions
from consulha.agent.observe import SessionMemory
from consulha.consul.store import CheckNotPassing, ConsulStore
from consulha.core.decide import Decision, Snapshot
from consulha.core.election import Election, Role
from consulha.core.reasons import Cause, Reason
from consulha.core.timing import Timing

log = logging.getLogger("consulha.agent")

RETRY_JITTER = 0.1  # spread retries so that many groups on one host do not move in lock step


class Sessions:
    def __init__(self, lock: LockActions, store: ConsulStore, memory: SessionMemory,
                 election: Election, timing: Timing, clock: Callable[[], float],
                 stop: threading.Event):
        self.lock = lock
        self.store = store
        self.memory = memory
        self.election = election
        self.timing = timing
        self._clock = clock
        self._stop = stop
        self._node_name: str | None = None  # of the local Consul agent, read when first needed

    def open(self, paused: bool) -> None:
        try:
            session = self.lock.create_session(paused)
        except CheckNotPassing as error:
            self.election.ineligible(Reason(Cause.NOT_A_CANDIDATE, f"not a candidate: {error}"))
            self._wait_for_check_change()
            return
        self.memory.new_session(session, paused, self._clock(), self.timing.renew)
        self.election.candidate(Reason(Cause.SESSION_CREATED, f"session {session[:8]} created: "
                                       + ("paused, node checks passing" if paused else "every check passing")))

    def swap(self, d: Decision, s: Snapshot) -> None:
        """Pause or resume: a session's checks cannot change, so take a new one. A leader moves
        the lock to it without letting anyone in between (see LockActions.reanchor)."""
        paused = s.control.pause is not None
        log.info("%s", d.reason)
        if s.role != Role.LEADER:
            self.lock.end_session()
            self.open(paused)
            return
        try:
            self.lock.reanchor(paused, s.wall)
        except CheckNotPassing as error:
            # Resumed while one of our checks fails: what the pause held back happens now.
            self.lock.hand_over(Reason(Cause.CHECK_FAILED, f"failover resumed with a failing check: {error}"))

    def _wait_for_check_change(self) -> None:
        """Refused a session: ask again only once one of our node's checks changed (a blocking
        query), not on a timer: in an incident, many ineligible groups polling session creation
        are load on the servers exactly when they are busiest."""
        if self._node_name is None:
            self._node_name = self.store.node_name()
        index = self.memory.checks_index
        self.memory.checks_index = self.store.wait_node_checks(self._node_name, index,
                                                               self.timing.standby_wait)
        if index == 0:  # that answer only gave us an index to block on
            self.memory.checks_index = self.store.wait_node_checks(
                self._node_name, self.memory.checks_index, self.timing.standby_wait)
        self._stop.wait(random.uniform(0, RETRY_JITTER))
