"""A record of every role transition, one JSON line each: what the fault-injection checker
and the benchmarks read (`consulha agent --transitions-file`)."""

from __future__ import annotations

import json
import os

from consulha.core.election import Transition
from consulha.core.reasons import Reason


class TransitionRecorder:
    """Appends every transition as a JSON line (for the fault-injection checker and the
    benchmarks; `group` tells apart the groups of one host sharing the file)."""

    def __init__(self, path: str, site: str, group: str | None = None):
        self._path = path
        self._site = site
        self._group = {"group": group} if group else {}

    def __call__(self, transition: Transition) -> None:
        line = json.dumps({"site": self._site, **self._group, "monotonic": transition.monotonic,
                           "wall": transition.wall, "role": transition.new.value,
                           "old": transition.old.value, "epoch": transition.epoch,
                           "reason": str(transition.reason), **_cause_fields(transition.reason)})
        with open(self._path, "a") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())


def _cause_fields(reason: Reason) -> dict:
    fields: dict = {"cause": reason.cause.value}
    if reason.seconds is not None:
        fields["seconds"] = reason.seconds
    return fields
