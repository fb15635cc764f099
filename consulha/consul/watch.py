"""One blocking query that follows everything under the group's key prefix, so that the hot
path of a pass reads only what its rules need fresh (the leader key).

Control state (requests, maintenance, pause) and who holds which candidate key change rarely;
polling them cost every agent a recursive read per pass. The watch holds the last answer and
its age; the observer uses it while it is fresh and reads directly otherwise, so a broken watch
costs requests, never a stale decision for longer than `max_age`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

from consulha.consul.store import ConsulRefused, ConsulStore, ConsulUnavailable, next_index
from consulha.core.control import ControlKeys, ControlState, control_state
from consulha.core.records import KvEntry

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

    @property
    def prefix(self) -> str:
        return self._prefix

    def accept(self, entries: list[KvEntry], answered_at: float) -> None:
        """Take an answer that holds (at least) every key under our prefix."""
        entries = [e for e in entries if e.key.startswith(self._prefix)]
        holders = {e.key.removeprefix(self._candidates): e.session
                   for e in entries if e.key.startswith(self._candidates)}
        view = GroupView(control_state(entries, self._control_keys), holders, answered_at)
        with self._lock:
            self._view = view

    def run(self, stop: threading.Event) -> None:
        follow(self._store, self._prefix, self._wait, stop,
               lambda entries: self.accept(entries, self._clock()))


class SharedWatch:
    """One blocking read over the prefix the groups of one process have in common, handing each
    group's PrefixWatch its own keys (consulha.agent.host): one connection to Consul instead of one
    per group. Each answer carries every group's keys, histories included, so after an answer
    the next read waits `min_interval`: in a burst, when every group changes at once, that
    bounds what Consul serializes and we decode, at the price of control state (requests,
    maintenance) up to that much older; the rules that need it fresh read it directly."""

    def __init__(self, store: ConsulStore, prefix: str, clock: Callable[[], float] = time.monotonic,
                 wait: float = WATCH_WAIT, min_interval: float = 0.5):
        self._store = store
        self._prefix = prefix
        self._clock = clock
        self._wait = wait
        self._min_interval = min_interval
        self._watches: dict[str, PrefixWatch] = {}
        self._lock = threading.Lock()

    @property
    def prefix(self) -> str:
        return self._prefix

    def add(self, watch: PrefixWatch) -> None:
        """Serve `watch` from now on (replacing an earlier one of the same prefix)."""
        with self._lock:
            self._watches[watch.prefix] = watch

    def run(self, stop: threading.Event) -> None:
        def hand_out(entries: list[KvEntry]) -> None:
            answered_at = self._clock()
            with self._lock:
                watches = list(self._watches.values())
            for watch in watches:
                watch.accept(entries, answered_at)
            stop.wait(self._min_interval)
        follow(self._store, self._prefix, self._wait, stop, hand_out)


def common_prefix(key_prefixes: list[str]) -> str:
    """The longest whole-segment prefix ("a/b/") of every key prefix; "" when none."""
    shared = os.path.commonprefix([f"{prefix}/" for prefix in key_prefixes])
    return shared[:shared.rfind("/") + 1]


def follow(store: ConsulStore, prefix: str, wait: float, stop: threading.Event,
           on_answer: Callable[[list[KvEntry]], None]) -> None:
    """Blocking reads of everything under `prefix` until `stop`; `on_answer` gets each answer."""
    index = 0
    while not stop.is_set():
        try:
            found, entries = store.get_prefix(prefix, index=index or None, wait=wait)
        except (ConsulUnavailable, ConsulRefused) as error:
            log.debug("watch of %s failed (%s); retrying", prefix, error)
            stop.wait(1.0)
            continue
        on_answer(entries)
        index = next_index(index, found)  # lower (state reset): start over
        if not index:
            stop.wait(0.1)  # no index to block on: do not spin
