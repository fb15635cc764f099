"""One blocking query that follows everything under the group's key prefix, so that the hot
path of a pass reads only what its rules need fresh (the leader key).

Control state (requests, maintenance, pause) and who holds which candidate key change rarely;
polling them cost every agent a recursive read per pass. The watch holds the last answer and
its age; the observer uses it while it is fresh and reads directly otherwise, so a broken watch
costs requests, never a stale decision for longer than `max_age`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from consulha.consul_store import ConsulRefused, ConsulStore, ConsulUnavailable
from consulha.control import ControlKeys, ControlState, control_state

log = logging.getLogger("consulha.watch")

WATCH_WAIT = 60.0  # longest blocking wait (Consul adds up to 1/16 of jitter)


@dataclass(frozen=True)
class GroupView:
    control: ControlState
    candidate_holders: dict[str, str | None]  # site -> session holding its candidate key
    answered_at: float                         # monotonic time of the answer


class PrefixWatch:
    def __init__(self, store: ConsulStore, key_prefix: str, control_keys: ControlKeys,
                 candidates_prefix: str, clock: Callable[[], float] = time.monotonic,
                 wait: float = WATCH_WAIT):
        self._store = store
        self._prefix = f"{key_prefix}/"
        self._control_keys = control_keys
        self._candidates = candidates_prefix
        self._clock = clock
        self._wait = wait
        self._view: GroupView | None = None
        self._lock = threading.Lock()

    @property
    def max_age(self) -> float:
        """An answer older than this means the watch is not getting through: read directly."""
        return 2 * self._wait

    def view(self) -> GroupView | None:
        """The last answer, if it is recent enough to stand for the present."""
        with self._lock:
            view = self._view
        if view is None or self._clock() - view.answered_at > self.max_age:
            return None
        return view

    def run(self, stop: threading.Event) -> None:
        index = 0
        while not stop.is_set():
            try:
                found, entries = self._store.get_prefix(self._prefix, index=index or None,
                                                        wait=self._wait)
            except (ConsulUnavailable, ConsulRefused) as error:
                log.debug("watch of %s failed (%s); retrying", self._prefix, error)
                stop.wait(1.0)
                continue
            holders = {e.key.removeprefix(self._candidates): e.session
                       for e in entries if e.key.startswith(self._candidates)}
            view = GroupView(control_state(entries, self._control_keys), holders, self._clock())
            with self._lock:
                self._view = view
            # A smaller index means Consul's state was reset (restored or rebuilt): start over.
            index = found if found >= index else 0
            if not index:
                stop.wait(0.1)  # no index to block on: do not spin
