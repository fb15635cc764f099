"""Flap damping: each site's record of the leaderships it lost through its own fault, and the
arithmetic that turns it into a hold-down.

    <prefix>/control/failures/<site>   FailureRecord (JSON), written with check-and-set

A failure is a leadership that ended because of the site itself (a service check, its node,
its agent's heartbeat, local truth, a lost session) rather than an operator's request or a
graceful stop. Each failure adds 1 to the site's penalty, and the penalty halves every
`half_life` (RFC 2439's route flap damping, with the flap as the unit). Once the penalty reaches
`suppress` the site is damped until it has decayed to half of that: one half-life after the
failure that reached it, longer with every further failure (the penalty never exceeds what
takes `max_hold_down` to decay). While damped the site is passed over for a free lock as long as
another healthy candidate exists; it is never banned (consulha.core.decide).

The writer computes `damped_until` from its own config and stores it, so every site and the
operator read the same hold-down from the record, whatever their own clocks and configs say;
readers only compare it with their wall clock. Why a half-life rather than a count in a
window: docs/damping.md (bench/damping_models.py measures both).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from consulha.core.reasons import Cause, Reason
from consulha.core.records import KvEntry

if TYPE_CHECKING:  # the core reads config values, it never loads them
    from consulha.config.model import DampingConfig

RECENT_LIMIT = 10  # failures kept in the record for people to read (the penalty keeps the rest)
# Why a winner took the lock, when that is the old leader's own fault as the catalog shows it
# (or as it said when it stepped down: local truth).
LOSER_FAULTS = frozenset({Cause.CHECK_FAILED, Cause.HEARTBEAT_LOST, Cause.NODE_UNREACHABLE})


def _iso(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, timezone.utc).isoformat(timespec="seconds")


def _seconds(value: float) -> str:
    """A hold-down or an age as people read it: 40 s, 12 min, 1.5 h."""
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


@dataclass(frozen=True)
class Failure:
    """One lost leadership: at which epoch, when (Unix time), and why."""
    epoch: int | None
    at: float
    reason: Reason

    def to_json(self) -> dict:
        return {"epoch": self.epoch, "time": _iso(self.at), "at": round(self.at, 3),
                **self.reason.to_json()}

    @classmethod
    def from_json(cls, data: object) -> "Failure | None":
        if not isinstance(data, dict):
            return None
        reason = Reason.from_json(data)
        epoch = data.get("epoch")
        if reason is None or not (epoch is None or isinstance(epoch, int)):
            return None
        return cls(epoch, _number(data.get("at")), reason)


@dataclass(frozen=True)
class FailureRecord:
    """A site's failures. penalty: as of `as_of` (decays from there); damped_until: Unix time
    the hold-down ends (0: never damped); since/streak: start and length of the current run of
    failures (what the reason quotes); total: failures since the last cleanup."""
    site: str
    penalty: float = 0.0
    as_of: float = 0.0
    damped_until: float = 0.0
    since: float = 0.0
    streak: int = 0
    total: int = 0
    recent: tuple[Failure, ...] = ()
    modify_index: int = 0

    def hold_down(self, wall: float) -> float:
        """Seconds of hold-down left at `wall`; 0 when not damped."""
        return max(0.0, self.damped_until - wall)

    def damped(self, wall: float) -> bool:
        return self.hold_down(wall) > 0

    def has(self, epoch: int | None) -> bool:
        """Whether the loss of leadership `epoch` is recorded (the loser and the winner may
        both report it: it counts once)."""
        return epoch is not None and any(failure.epoch == epoch for failure in self.recent)

    def describe(self, wall: float) -> str:
        """`damped: 3 failures in 60 s, hold-down 40 s left`, or why the site is not damped."""
        age = max(0.0, wall - self.since)
        if self.streak <= 1:
            count = f"1 failure {_seconds(age)} ago" if age >= 1 else "1 failure just now"
        else:
            count = f"{self.streak} failures in {_seconds(age)}"
        if self.damped(wall):
            return f"damped: {count}, hold-down {_seconds(self.hold_down(wall))} left"
        return f"not damped: {self.total} failure{'s' if self.total != 1 else ''} recorded"

    def to_json(self) -> dict:
        return {"site": self.site, "penalty": round(self.penalty, 4), "as_of": round(self.as_of, 3),
                "damped_until": round(self.damped_until, 3),
                "damped_until_time": _iso(self.damped_until) if self.damped_until else None,
                "since": round(self.since, 3), "streak": self.streak, "total": self.total,
                "recent": [failure.to_json() for failure in self.recent]}

    def view(self, wall: float) -> dict:
        """What `status --json` shows: the record, and whether and how long it damps now."""
        return {**self.to_json(), "damped": self.damped(wall), "hold_down_s": round(self.hold_down(wall), 1),
                "summary": self.describe(wall)}

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), indent=1).encode()

    @classmethod
    def decode(cls, entry: KvEntry) -> "FailureRecord | None":
        """The record, or None for a value that is not one (cautious: no failures known)."""
        data = entry.json()
        if data is None or not isinstance(data.get("site"), str):
            return None
        recent = data.get("recent") if isinstance(data.get("recent"), list) else []
        count = {key: int(_number(data.get(key))) for key in ("streak", "total")}
        return cls(site=data["site"], penalty=_number(data.get("penalty")), as_of=_number(data.get("as_of")),
                   damped_until=_number(data.get("damped_until")), since=_number(data.get("since")),
                   recent=tuple(f for f in map(Failure.from_json, recent) if f is not None),
                   modify_index=entry.modify_index, **count)


class Damping:
    """The writer's arithmetic, from the group's `election.damping` config."""

    def __init__(self, cfg: DampingConfig):
        self.cfg = cfg

    @property
    def reuse(self) -> float:
        """A damped site competes again once its penalty has decayed to this."""
        return self.cfg.suppress / 2

    @property
    def ceiling(self) -> float:
        """The highest penalty: the one that takes `max_hold_down` to decay to `reuse`."""
        return self.reuse * 2 ** (self.cfg.max_hold_down / self.cfg.half_life)

    def penalty_at(self, record: FailureRecord | None, wall: float) -> float:
        """The decayed penalty; a clock behind the record's (another writer's host) does not
        make it grow."""
        if record is None:
            return 0.0
        return record.penalty * 2 ** (-max(0.0, wall - record.as_of) / self.cfg.half_life)

    def hold_for(self, penalty: float) -> float:
        """Seconds until `penalty` decays to `reuse`."""
        return self.cfg.half_life * math.log2(penalty / self.reuse) if penalty > self.reuse else 0.0

    def add(self, site: str, record: FailureRecord | None, failure: Failure) -> FailureRecord | None:
        """The record with `failure` counted, or None when it is counted already."""
        if record is not None and record.has(failure.epoch):
            return None
        previous = record or FailureRecord(site=site)
        decayed = self.penalty_at(record, failure.at)
        penalty = min(self.ceiling, decayed + 1.0)
        still_damped = previous.damped(failure.at)
        continuing = still_damped or decayed > self.reuse
        damped = still_damped or penalty >= self.cfg.suppress
        return replace(previous, penalty=penalty, as_of=max(failure.at, previous.as_of),
                       damped_until=(max(previous.damped_until, failure.at + self.hold_for(penalty))
                                     if damped else 0.0),
                       since=previous.since if continuing else failure.at,
                       streak=previous.streak + 1 if continuing else 1, total=previous.total + 1,
                       recent=(*previous.recent, failure)[-RECENT_LIMIT:])
