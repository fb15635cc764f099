"""A service that cannot make up its mind: breaks and repairs a toy service on a schedule, in a
thread of its own, for a bounded time (the flapping chaos scenarios and bench/flapping.py)."""

from __future__ import annotations

import itertools
import random
import threading
import time
from typing import Iterator

from lab.toy import ToyService


def periodic(down: float, up: float) -> Iterator[tuple[float, float]]:
    """Down for `down` seconds, up for `up`, again and again."""
    return itertools.repeat((down, up))


def irregular(seed: int, shortest: float = 0.2, longest: float = 5.0) -> Iterator[tuple[float, float]]:
    """Down and up phases of random lengths between `shortest` and `longest` (seeded: a run
    can be repeated)."""
    rng = random.Random(seed)
    while True:
        yield rng.uniform(shortest, longest), rng.uniform(shortest, longest)


class Flapper:
    """Runs `schedule` ((down, up) phases) on `toy` for `duration` seconds, then leaves it
    healthy. `phases` lists (monotonic time, healthy) of every change it made."""

    def __init__(self, toy: ToyService, schedule: Iterator[tuple[float, float]], duration: float):
        self.toy = toy
        self.schedule = schedule
        self.duration = duration
        self.phases: list[tuple[float, bool]] = []
        self._thread = threading.Thread(target=self._run, name=f"flap-{toy.name}", daemon=True)

    @property
    def failures(self) -> int:
        return sum(1 for _, healthy in self.phases if not healthy)

    def start(self) -> "Flapper":
        self._thread.start()
        return self

    def wait(self) -> None:
        """Until the schedule has run for its whole duration."""
        self._thread.join(self.duration + 10)

    def _set(self, healthy: bool) -> None:
        (self.toy.recover if healthy else self.toy.fail)()
        self.phases.append((time.monotonic(), healthy))

    def _run(self) -> None:
        deadline = time.monotonic() + self.duration
        try:
            for down, up in self.schedule:
                for healthy, seconds in ((False, down), (True, up)):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    self._set(healthy)
                    time.sleep(min(seconds, left))
        finally:
            if not self.toy.healthy:
                self._set(True)
