"""What every DNS provider offers the publisher, and the errors it raises.

Each zone with managed records has a fence: the TXT `_consulha.<its alphabetically first name>`
holding `"epoch=<n> site=<name>"` of the leader that wrote the zone last. A provider writes a
zone's records and its fence together and refuses to write when any fence holds a newer epoch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from consulha.config import DnsConfig
    from consulha.dns.verify import Verifier

EPOCH_PATTERN = re.compile(r"\bepoch=(\d+)\b")
SITE_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")

RecordKey = tuple[str, str]  # (absolute name, type), e.g. ("app.example.test.", "A")


@dataclass(frozen=True)
class DnsState:
    """What the primary (or the command's back end) holds now."""

    values: dict[RecordKey, tuple[str, ...]]  # each record's rdata as text, sorted; () if absent
    epochs: dict[str, int | None]  # fence name -> its epoch; None if absent or unparseable
    fence_txt: dict[str, tuple[str, ...]]  # fence name -> its TXT rdata exactly as read

    @property
    def epoch(self) -> int | None:
        """The highest epoch of any fence: fencing must err towards "stale"."""
        return max((epoch for epoch in self.epochs.values() if epoch is not None), default=None)


@dataclass(frozen=True)
class PublishResult:
    changed: bool
    before: DnsState
    epoch: int
    written: tuple[str, ...] = ()  # the zones written, in order (all of them for the command provider)


class DnsError(Exception):
    """A DNS read or update failed: rcode, TSIG error, timeout, network or command error.
    The message names the server (or command) and the reason, never a secret."""


class StaleEpochError(DnsError):
    """DNS already holds a newer epoch than ours: we must not write."""

    def __init__(self, ours: int, stored: int, where: str = "") -> None:
        super().__init__(f"stale epoch {ours}: {where or 'DNS'} is already fenced at epoch {stored}")
        self.ours = ours
        self.stored = stored


class DnsProvider(Protocol):
    cfg: DnsConfig
    verifier: Verifier  # what the verify servers answer
    wanted: dict[RecordKey, tuple[str, ...]]  # each record's value as DNS answers it

    def read_state(self) -> DnsState:
        """The current values and fences; raises DnsError."""

    def publish(self, epoch: int) -> PublishResult:
        """Make every configured record hold its value, fenced at `epoch`. Raises
        StaleEpochError (without writing) if a fence holds a newer epoch, DnsError otherwise."""

    def probe_auth(self) -> None:
        """Prove the credentials without changing anything; raises DnsError."""

    def answers(self) -> dict[str, tuple[str, ...] | str]:
        """Each verify server's answer for the first record (the site's address)."""


def parse_epoch(fence_txt: tuple[str, ...]) -> int | None:
    """The epoch written in the fence TXT rdata, or None. If several rdata
    carry one, the highest wins: fencing must err towards "stale"."""
    epochs = [int(m.group(1)) for txt in fence_txt for m in EPOCH_PATTERN.finditer(txt)]
    return max(epochs, default=None)


def fence_text(epoch: int, site: str) -> str:
    """The fence TXT's content (without the quotes of its presentation form)."""
    return f"epoch={epoch} site={site}"


def check_site_name(site: str) -> None:
    """Raises ValueError for a site name that cannot go into the fence TXT."""
    if not SITE_PATTERN.match(site):
        raise ValueError(f"site name {site!r} must match {SITE_PATTERN.pattern}")
