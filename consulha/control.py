"""Operator intent and the record of what happened, as Consul KV entries under the key prefix.

    <prefix>/control/handover            one pending request to move leadership (JSON)
    <prefix>/control/maintenance/<site>  present while that site is withdrawn from the election
    <prefix>/history                     the last 100 leadership changes (JSON list)

Both the agent and the CLI read and write these through the functions here, so the format lives
in one place. Writes that must not race use check-and-set on the key's ModifyIndex.
"""

from __future__ import annotations

import getpass
import json
import socket
import time
from dataclasses import asdict, dataclass, field

from consulha.consul_store import ConsulStore, KvEntry
from consulha.reasons import Cause, Reason
from consulha.records import iso_now

HISTORY_LIMIT = 100


def operator() -> str:
    """`user@host` of whoever runs this process, for requests and history."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


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
    """An operator's act that moves no lock (pause, resume), in the history beside the
    leadership changes: no from or to, the leader's epoch at that moment."""
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

    def in_maintenance(self, site: str) -> MaintenanceMark | None:
        return self.maintenance.get(site)


class ControlKeys:
    def __init__(self, key_prefix: str):
        self.prefix = f"{key_prefix}/control/"
        self.handover = f"{self.prefix}handover"
        self.maintenance_prefix = f"{self.prefix}maintenance/"
        self.pause = f"{self.prefix}pause"
        self.history = f"{key_prefix}/history"

    def maintenance(self, site: str) -> str:
        return f"{self.maintenance_prefix}{site}"


def read_control(store: ConsulStore, keys: ControlKeys) -> ControlState:
    _, entries = store.get_prefix(keys.prefix)
    return control_state(entries, keys)


def control_state(entries: list[KvEntry], keys: ControlKeys) -> ControlState:
    """The control state in `entries` (others, outside <prefix>/control/, are ignored)."""
    handover = pause = None
    maintenance = {}
    for entry in entries:
        if entry.key == keys.handover:
            handover = HandoverRequest.decode(entry)
        elif entry.key == keys.pause:
            pause = PauseMark.decode(entry)
        elif entry.key.startswith(keys.maintenance_prefix):
            maintenance[entry.key.removeprefix(keys.maintenance_prefix)] = MaintenanceMark.decode(entry)
    return ControlState(handover, maintenance, pause)


def put_request(store: ConsulStore, keys: ControlKeys, request: HandoverRequest) -> bool:
    """Create the request only if none exists (cas=0), or replace exactly the one we read."""
    return store.put(keys.handover, request.encode(), cas=request.modify_index)


def clear_request(store: ConsulStore, keys: ControlKeys, request: HandoverRequest) -> bool:
    return store.delete(keys.handover, cas=request.modify_index)


def read_history(store: ConsulStore, keys: ControlKeys) -> tuple[list[dict], int]:
    _, entry = store.get(keys.history)
    if entry is None:
        return [], 0
    try:
        entries = json.loads(entry.value or b"[]")
    except ValueError:
        entries = []
    return (entries if isinstance(entries, list) else []), entry.modify_index


def append_history(store: ConsulStore, keys: ControlKeys, record: "HistoryEntry | OperatorEvent",
                   attempts: int = 5) -> bool:
    """Append one record with check-and-set, keeping the last HISTORY_LIMIT; False if every
    attempt lost a race (the record is then only in the agent's log)."""
    for _ in range(attempts):
        entries, index = read_history(store, keys)
        entries = (entries + [record.to_json()])[-HISTORY_LIMIT:]
        if store.put(keys.history, json.dumps(entries).encode(), cas=index):
            return True
    return False
