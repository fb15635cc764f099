"""Typed values stored under the key prefix, each encoded and decoded in one place.

    <prefix>/leader             LeaderRecord, held (locked) by the leader's session
    <prefix>/candidates/<site>  CandidateRecord, held by that site's session while it competes
    <prefix>/sites/<site>       SiteReport, what that site's agent last said about itself

Operator intent and history (handover requests, maintenance marks, history entries) are in
consulha.core.control. A value that cannot be decoded reads as absent: a foreign or broken value must
never crash an agent, and "absent" is always the cautious reading here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from consulha.core.reasons import Reason


@dataclass(frozen=True)
class KvEntry:
    key: str
    value: bytes | None
    session: str | None
    modify_index: int
    lock_index: int

    def json(self) -> dict[str, Any] | None:
        """The value decoded as a JSON object, or None when absent or not JSON."""
        try:
            decoded = json.loads(self.value or b"")
        except ValueError:
            return None
        return decoded if isinstance(decoded, dict) else None


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _site_object(entry: KvEntry | None) -> dict | None:
    """The entry's JSON object when it names a site (every record here does), else None."""
    data = entry.json() if entry is not None else None
    return data if isinstance(data, dict) and isinstance(data.get("site"), str) else None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class LeaderRecord:
    """What the holder of the lock wrote into the leader key.

    epoch: the key's ModifyIndex at the winning acquire, written back with check-and-set; None
    only between the acquire and that write. released: set by a holder that gave the lock up on
    purpose (graceful stop, handover); the next leader's history cause, and the sign that the
    old leader demoted before the key became free.
    """
    site: str
    address: str | None = None
    epoch: int | None = None
    session: str | None = None
    acquired_at: str = field(default_factory=iso_now)
    released: Reason | None = None

    def encode(self) -> bytes:
        data = asdict(self)
        data["released"] = self.released.to_json() if self.released else None
        return json.dumps(data).encode()

    def with_release(self, reason: Reason) -> "LeaderRecord":
        return replace(self, released=reason)

    @classmethod
    def decode(cls, entry: KvEntry | None) -> "LeaderRecord | None":
        data = _site_object(entry)
        if data is None:
            return None
        return cls(site=data["site"], address=data.get("address"), epoch=_int_or_none(data.get("epoch")),
                   session=data.get("session"), acquired_at=str(data.get("acquired_at") or ""),
                   released=Reason.from_json(data.get("released")))


@dataclass(frozen=True)
class LeaderKey:
    """The leader key as read: who holds the lock now (the entry's session, None when free) and
    what its last holder wrote. `exists` False: the key is absent (never written, or deleted)."""
    exists: bool
    holder: str | None = None
    record: LeaderRecord | None = None
    modify_index: int = 0

    @classmethod
    def of(cls, entry: KvEntry | None) -> "LeaderKey":
        if entry is None:
            return cls(exists=False)
        return cls(True, entry.session, LeaderRecord.decode(entry), entry.modify_index)

    @property
    def held(self) -> bool:
        return self.holder is not None

    @property
    def holder_site(self) -> str | None:
        """The site of the current holder, None when the lock is free."""
        return self.record.site if self.held and self.record else None


@dataclass(frozen=True)
class CandidateRecord:
    site: str
    session: str
    address: str | None = None
    since: str = field(default_factory=iso_now)

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, entry: KvEntry | None) -> "CandidateRecord | None":
        data = _site_object(entry)
        if data is None:
            return None
        return cls(site=data["site"], session=str(data.get("session") or ""),
                   address=data.get("address"), since=str(data.get("since") or ""))


@dataclass(frozen=True)
class SiteReport:
    """An agent's own account of itself, for `consulha status` and the UI."""
    site: str
    role: str
    reason: str
    cause: str | None = None
    epoch: int | None = None
    dns: dict | None = None
    dns_error: str | None = None  # why this leader's DNS update keeps failing, None once it succeeds
    updated_at: str = ""

    def encode(self) -> bytes:
        return json.dumps({**asdict(self), "updated_at": self.updated_at or iso_now()}).encode()

    def same_as(self, other: "SiteReport | None") -> bool:
        """Equal apart from the time of writing: no need to write it again."""
        return other is not None and replace(other, updated_at="") == replace(self, updated_at="")

    @classmethod
    def decode(cls, entry: KvEntry | None) -> "SiteReport | None":
        data = _site_object(entry)
        if data is None:
            return None
        return cls(site=data["site"], role=str(data.get("role") or "?"),
                   reason=str(data.get("reason") or ""), cause=data.get("cause"),
                   epoch=_int_or_none(data.get("epoch")), dns=data.get("dns"),
                   dns_error=str(data["dns_error"]) if data.get("dns_error") else None,
                   updated_at=str(data.get("updated_at") or ""))
