"""Operator intent and the record of what happened, as Consul KV entries under the key prefix.

    <prefix>/control/handover            one pending request to move leadership (JSON)
    <prefix>/control/maintenance/<site>  present while that site is withdrawn from the election
    <prefix>/control/failures/<site>     that site's lost leaderships: flap damping (consulha.core.damping)
    <prefix>/history                     the last 100 leadership changes (JSON list)

The values and their encoding live here, in one place; consulha.consul.control reads and writes
them. Writes that must not race use check-and-set on the key's ModifyIndex.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from consulha.core.damping import FailureRecord
from consulha.core.reasons import Cause, Reason
from consulha.core.records import KvEntry, iso_now

HISTORY_LIMIT = 100


@dataclass(frozen=True)
class HandoverRequest:
    """A request to move leadership. `to` None means any healthy candidate.

    kind: handover (planned; the leader releases), takeover (forced; the CLI destroyed the
    leader's session), failback (the preferred site asks for its lead back).
    state: pending -> accepted (the leader released to `to`) | refused (with `reason`).
    """
    to: str | None
    by: str
    kind: str = "handover"
    state: str = "pending"
    reason: str = ""
    from_site: str | None = None
    from_epoch: int | None = None
    requested_at: float = field(default_factory=time.time)
    expires_at: float = 0.0
    modify_index: int = 0

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at

    def live(self, now: float | None = None) -> bool:
        return self.state in ("pending", "accepted") and not self.expired(now)

    def names_other_than(self, site: str, now: float | None = None) -> bool:
        """A live request reserves the lock for `to`: everybody else stands back."""
        return self.live(now) and self.to is not None and self.to != site

    def encode(self) -> bytes:
        data = asdict(self)
        data.pop("modify_index")
        return json.dumps(data).encode()

    @classmethod
    def decode(cls, entry: KvEntry) -> "HandoverRequest | None":
        data = entry.json()
        if not data:
            return None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**known, modify_index=entry.modify_index)
        except TypeError:
            return None

    def with_state(self, state: str, reason: str = "", to: str | None = None) -> "HandoverRequest":
        return HandoverRequest(**{**asdict(self), "state": state, "reason": reason,
                                  "to": to if to is not None else self.to})


@dataclass(frozen=True)
class MaintenanceMark:
    """Present while a site is withdrawn. force: its leader may leave the group leaderless."""
    reason: str = ""
    by: str = ""
    since: float = field(default_factory=time.time)
    force: bool = False

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    def why(self) -> Reason:
        return Reason(Cause.MAINTENANCE, f"maintenance: {self.reason or 'no reason given'}")

    @classmethod
    def decode(cls, entry: KvEntry) -> "MaintenanceMark":
        """Any value marks the site: a mark written by hand, even unreadable, still withdraws it."""
        data = entry.json()
        data = data if isinstance(data, dict) else {}
        return cls(reason=str(data.get("reason") or ""), by=str(data.get("by") or ""),
                   since=_unix_time(data.get("since")), force=bool(data.get("force")))


@dataclass(frozen=True)
class PauseMark:
    """Present while the group's automatic failover is paused: nobody takes a free lock and a
    failing service check does not release it; planned handovers still work."""
    by: str = ""
    reason: str = ""
    since: float = field(default_factory=time.time)

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, entry: KvEntry) -> "PauseMark":
        """Any value pauses the group: a mark written by hand, even unreadable, still counts."""
        data = entry.json()
        data = data if isinstance(data, dict) else {}
        return cls(by=str(data.get("by") or ""), reason=str(data.get("reason") or ""),
                   since=_unix_time(data.get("since")))


def _unix_time(value: object) -> float:
    """A mark's `since` as written by hand may be anything: unknown (0) unless a number."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


@dataclass(frozen=True)
class HistoryEntry:
    """One leadership change: who won at which epoch, from whom, and why."""
    epoch: int | None
    from_site: str | None
    to: str
    cause: Reason
    time: str = field(default_factory=iso_now)

    def to_json(self) -> dict:
        return {"time": self.time, "epoch": self.epoch, "from": self.from_site, "to": self.to,
                "cause": str(self.cause), "kind": self.cause.cause.value}


@dataclass(frozen=True)
class OperatorEvent:
    """An event that moves no lock, in the history beside the leadership changes: an operator's
    act (pause, resume, cleanup) or a site's failure (kind `failure`, at the epoch it lost);
    no from or to."""
    kind: str
    detail: str
    epoch: int | None
    time: str = field(default_factory=iso_now)

    def to_json(self) -> dict:
        return {"time": self.time, "epoch": self.epoch, "from": None, "to": None,
                "cause": self.detail, "kind": self.kind}


@dataclass(frozen=True)
class ControlState:
    """Everything under <prefix>/control/ at one moment."""
    handover: HandoverRequest | None = None
    maintenance: dict[str, MaintenanceMark] = field(default_factory=dict)
    pause: PauseMark | None = None
    failures: dict[str, FailureRecord] = field(default_factory=dict)

    def in_maintenance(self, site: str) -> MaintenanceMark | None:
        return self.maintenance.get(site)


class ControlKeys:
    def __init__(self, key_prefix: str):
        self.prefix = f"{key_prefix}/control/"
        self.handover = f"{self.prefix}handover"
        self.maintenance_prefix = f"{self.prefix}maintenance/"
        self.pause = f"{self.prefix}pause"
        self.failures_prefix = f"{self.prefix}failures/"
        self.history = f"{key_prefix}/history"

    def maintenance(self, site: str) -> str:
        return f"{self.maintenance_prefix}{site}"

    def failures(self, site: str) -> str:
        return f"{self.failures_prefix}{site}"


def control_state(entries: list[KvEntry], keys: ControlKeys) -> ControlState:
    """The control state in `entries` (others, outside <prefix>/control/, are ignored)."""
    handover = pause = None
    maintenance, failures = {}, {}
    for entry in entries:
        if entry.key == keys.handover:
            handover = HandoverRequest.decode(entry)
        elif entry.key == keys.pause:
            pause = PauseMark.decode(entry)
        elif entry.key.startswith(keys.maintenance_prefix):
            maintenance[entry.key.removeprefix(keys.maintenance_prefix)] = MaintenanceMark.decode(entry)
        elif entry.key.startswith(keys.failures_prefix):
            record = FailureRecord.decode(entry)
            if record is not None:  # unreadable: no failures known (never damps on a guess)
                failures[entry.key.removeprefix(keys.failures_prefix)] = record
    return ControlState(handover, maintenance, pause, failures)
