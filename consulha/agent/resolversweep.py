"""After a switch: flush each resolver the operator runs, then ask it until it answers the new value.

The DNS publisher owns it and drives it from its own passes (no thread of its own):
`begin` once every verify server answers the leader's write — a flush before that could let a
resolver cache the old answer again from a secondary that had not caught up — then `step`
does whatever is due for each resolver:
- not flushed yet: flush every managed name; a failure (unreachable, refused, a wrong key) is a
  warning, a metric and a retry after a capped backoff;
- flushed: ask it as a client does; the new value for every record: converged, with the seconds
  since the write; anything else (it cached again from an upstream that is not in dns.verify,
  or it does not answer): flushed again after a backoff.
A resolver never blocks or repeats a DNS write: the publisher writes before it steps, each
request is bounded by `timeout`, and a resolver that stays down is retried every `cap` seconds
while this site leads, its state in `report()` (status) and in the metrics (the alert).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from consulha.config import ResolverConfig
from consulha.core.backoff import Backoff
from consulha.core.records import iso_now
from consulha.dns.resolvers import ResolverError, answer, flush

log = logging.getLogger("consulha.dns")

RecordKey = tuple[str, str]


@dataclass
class Progress:
    """One resolver's sweep since the last switch."""

    flushed: bool = False
    last_flush: str | None = None     # wall time of its last successful flush
    converged_s: float | None = None  # from the write to its first answer of the new values
    error: str | None = None          # why its last flush or question failed
    due: float = 0.0                  # clock time of its next step
    backoff: Backoff = field(default_factory=lambda: Backoff(first=0.2, cap=30.0))

    def as_json(self) -> dict:
        return {"last_flush": self.last_flush, "converged": self.converged_s is not None,
                "converged_s": self.converged_s, "error": self.error}


class ResolverSweep:
    def __init__(self, resolvers: tuple[ResolverConfig, ...], wanted: Callable[[], dict[RecordKey, tuple[str, ...]]],
                 clock: Callable[[], float], observe: Callable[[str, str, float | None], None],
                 timeout: float = 1.0, flush_name: Callable = flush, ask: Callable = answer):
        """`wanted()`: each record's value as DNS answers it, read when a sweep begins;
        `observe(resolver, event, seconds)`: "flushed", "flush_failed", "converged" (with the
        seconds since the write), "pending": for the metrics."""
        self.resolvers = resolvers
        self._wanted_now = wanted
        self.wanted: dict[RecordKey, tuple[str, ...]] = {}
        self._clock = clock
        self._observe = observe
        self.timeout = timeout
        self._flush = flush_name
        self._ask = ask
        self._names: tuple[str, ...] = ()
        self._written_at: float | None = None
        self.progress: dict[str, Progress] = {}

    def begin(self, written_at: float) -> None:
        """Every verify server answers the write made at clock time `written_at`: sweep."""
        self._written_at = written_at
        self.wanted = self._wanted_now()
        self._names = tuple(dict.fromkeys(name for name, _ in self.wanted))
        self.progress = {resolver.name: Progress(due=self._clock()) for resolver in self.resolvers}
        for resolver in self.resolvers:
            self._observe(resolver.name, "pending", None)

    def cancel(self) -> None:
        """No longer leading: stop stepping (the last progress stays for the report)."""
        self._written_at = None

    def step(self) -> float | None:
        """Do what is due; seconds until the next step, None when nothing is pending."""
        if self._written_at is None:
            return None
        now = self._clock()
        for resolver in self.resolvers:
            progress = self.progress[resolver.name]
            if progress.converged_s is None and progress.due <= now:
                self._step_one(resolver, progress)
        pending = [p.due for p in self.progress.values() if p.converged_s is None]
        if not pending:
            self._written_at = None
            return None
        return max(0.0, min(pending) - self._clock())

    def _step_one(self, resolver: ResolverConfig, progress: Progress) -> None:
        try:
            if not progress.flushed:
                for name in self._names:
                    self._flush(resolver, name, self.timeout)
                progress.flushed, progress.last_flush, progress.error = True, iso_now(), None
                self._observe(resolver.name, "flushed", None)
            wrong = self._mismatch(resolver)
        except ResolverError as error:
            if not progress.flushed:
                self._observe(resolver.name, "flush_failed", None)
            progress.error = str(error)
            self._retry(progress, str(error))
            return
        if wrong:
            # Flushed, yet the old value: it asked an upstream that still had it. Again, later.
            progress.flushed, progress.error = False, f"answered {wrong} after a flush"
            self._retry(progress, f"{resolver.name}: {progress.error}")
            return
        progress.converged_s = round(self._clock() - self._written_at, 3)
        progress.error = None
        self._observe(resolver.name, "converged", progress.converged_s)
        log.info("resolver %s answers the new values %.3fs after the write", resolver.name, progress.converged_s)

    def _mismatch(self, resolver: ResolverConfig) -> str:
        """ "" when `resolver` answers every record's wanted value, else what it answered."""
        for (name, rtype), value in self.wanted.items():
            got = self._ask(resolver, name, rtype, self.timeout)
            if got != value:
                return f"{name} {rtype} {','.join(got) or 'nothing'}"
        return ""

    def _retry(self, progress: Progress, message: str) -> None:
        delay = progress.backoff.next()
        progress.due = self._clock() + delay
        log.warning("%s; retrying in %.1fs", message, delay)

    def report(self) -> dict[str, dict]:
        """Per resolver: last flush, converged or not, seconds from the write, last error."""
        return {name: progress.as_json() for name, progress in self.progress.items()}
