"""What every DNS provider offers the publisher (errors in consulha.dns.errors, the fence's
format in consulha.dns.fence).

A provider writes a zone's records and its fence together and refuses to write when any fence
holds a newer epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from consulha.config import DnsConfig
    from consulha.dns.verify import Verifier

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
