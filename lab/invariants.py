"""Invariant checker for the fault-injection (chaos) suite: pure functions over recorded timelines.

Two timelines are recorded per scenario, both on CLOCK_MONOTONIC (system-wide, so the agents'
clocks and the suite's clock are comparable when everything runs on one machine):

* transitions: JSON lines written by each agent (`--transitions-file`):
  {site, monotonic, wall, role, old, epoch, reason, cause[, seconds]}
* samples: what the suite's sampler saw every ~50 ms: the authoritative DNS answer, the fence TXT
  (`_consulha.<record>` = "epoch=<n> site=<s>") and the leader key (site, epoch, session).

Invariants (see `check`):
1. never two sites in the leader role at overlapping times;
2. every DNS state carries the epoch of a leadership the lock key showed, names that leader's
   site, and fence epochs never go down;
3. after a fault (and after heal) DNS names the lock holder within a stated bound;
4. no flapping: at most N answer changes in a window (one per failover, none on heal).

Nothing here does I/O except `load_transitions` / `load_samples` (reading a file).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

LEADER = "leader"
SELF_FENCED = "self_fenced"  # consulha.core.reasons.Cause.SELF_FENCED: `seconds` = how long ago the lease ran out


@dataclass(frozen=True)
class TransitionRecord:
    site: str
    monotonic: float
    role: str
    old: str
    epoch: int | None = None
    reason: str = ""
    wall: float = 0.0
    cause: str = ""
    seconds: float | None = None

    @classmethod
    def from_json(cls, doc: Mapping) -> "TransitionRecord":
        return cls(site=doc["site"], monotonic=float(doc["monotonic"]), role=doc["role"],
                   old=doc.get("old", ""), epoch=doc.get("epoch"), reason=doc.get("reason", ""),
                   wall=float(doc.get("wall", 0.0)), cause=doc.get("cause", ""),
                   seconds=doc.get("seconds"))


@dataclass(frozen=True)
class Sample:
    """One observation. `dns_ok`/`key_ok` False: that part could not be read this tick."""

    t: float
    dns_ok: bool = True
    dns_values: tuple[str, ...] = ()
    fence_epoch: int | None = None
    fence_site: str | None = None
    key_ok: bool = True
    holder_site: str | None = None    # site in the leader key while a session holds it
    holder_epoch: int | None = None
    holder_session: str | None = None

    @classmethod
    def from_json(cls, doc: Mapping) -> "Sample":
        values = dict(doc)
        values["dns_values"] = tuple(values.get("dns_values") or ())
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass(frozen=True)
class Interval:
    site: str
    epoch: int | None
    start: float
    end: float          # math.inf while still leader at the end of the record
    end_reason: str = ""

    def overlaps(self, other: "Interval", tolerance: float = 0.0) -> bool:
        return self.start < other.end - tolerance and other.start < self.end - tolerance


@dataclass(frozen=True)
class DnsChange:
    t: float
    before: tuple[str, ...]
    after: tuple[str, ...]
    epoch: int | None
    site: str | None


@dataclass(frozen=True)
class Window:
    """A phase of a scenario to check for invariants 3 and 4.

    From `start` on, DNS must name the lock holder (value and epoch) within `bound` seconds
    (skipped when `bound` is None); `expect_site` additionally names who that holder must be
    (None: anyone; "" means: no holder is expected, DNS must just stay put). Between `start` and
    `end` the DNS answer may change at most `max_changes` times (None: unchecked).
    """

    name: str
    start: float
    end: float = math.inf
    bound: float | None = None
    expect_site: str | None = None
    max_changes: int | None = None


@dataclass
class Report:
    violations: list[str] = field(default_factory=list)
    intervals: list[Interval] = field(default_factory=list)
    changes: list[DnsChange] = field(default_factory=list)
    convergence: dict[str, float | None] = field(default_factory=dict)
    overlaps: list[float] = field(default_factory=list)   # seconds of each two-leader overlap

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        lines = [f"violations: {len(self.violations)}"] + [f"  ! {v}" for v in self.violations]
        lines += [f"  leader {i.site} epoch {i.epoch}: {i.start:.3f} .. {i.end:.3f} ({i.end_reason})"
                  for i in self.intervals]
        lines += [f"  dns {c.t:.3f}: {c.before} -> {c.after} (epoch {c.epoch}, site {c.site})"
                  for c in self.changes]
        lines += [f"  converged {name}: {value}" for name, value in self.convergence.items()]
        return "\n".join(lines)


# -- loading ------------------------------------------------------------------------------------

def load_transitions(path: str | Path) -> list[TransitionRecord]:
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            records.append(TransitionRecord.from_json(json.loads(line)))
    return sorted(records, key=lambda r: r.monotonic)


def load_samples(path: str | Path) -> list[Sample]:
    path = Path(path)
    if not path.exists():
        return []
    return [Sample.from_json(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


# -- invariant 1: one leader at a time ----------------------------------------------------------

def effective_end(record: TransitionRecord) -> float:
    """When a demotion took effect. A self-fencing demotion says how long ago the lease ran out
    (e.g. the process was frozen); leadership ended at the expiry, since no leader action (DNS
    write) is allowed without a valid lease."""
    if record.cause == SELF_FENCED and record.seconds is not None:
        return record.monotonic - record.seconds
    return record.monotonic


def leader_intervals(transitions: Iterable[TransitionRecord],
                     process_ends: Mapping[str, Sequence[float] | float] | None = None
                     ) -> list[Interval]:
    """Leader intervals per site. `process_ends` lists when a site's agent process died without
    recording a demotion (SIGKILL): an open interval started before such a time ends there."""
    ends: dict[str, list[float]] = {}
    for site, when in (process_ends or {}).items():
        ends[site] = sorted([when] if isinstance(when, (int, float)) else list(when))
    intervals: list[Interval] = []
    open_: dict[str, tuple[float, int | None]] = {}

    def close_killed(site: str, before: float) -> None:
        if site in open_:
            start, epoch = open_[site]
            deaths = [d for d in ends.get(site, []) if start <= d <= before]
            if deaths:
                intervals.append(Interval(site, epoch, start, deaths[0], "process killed"))
                del open_[site]

    for record in sorted(transitions, key=lambda r: r.monotonic):
        close_killed(record.site, record.monotonic)
        if record.role == LEADER and record.site not in open_:
            open_[record.site] = (record.monotonic, record.epoch)
        elif record.role != LEADER and record.site in open_:
            start, epoch = open_.pop(record.site)
            intervals.append(Interval(record.site, epoch, start,
                                      max(start, effective_end(record)), record.reason))
    for site in list(open_):
        close_killed(site, math.inf)
    for site, (start, epoch) in open_.items():
        intervals.append(Interval(site, epoch, start, math.inf, "still leader"))
    return sorted(intervals, key=lambda i: i.start)


def overlaps(intervals: Sequence[Interval]) -> list[float]:
    """Length in seconds of every overlap between leader intervals of different sites."""
    found = []
    for i, first in enumerate(intervals):
        for second in intervals[i + 1:]:
            if first.site != second.site and first.overlaps(second):
                found.append(min(first.end, second.end) - max(first.start, second.start))
    return found


def overlapping_leaders(intervals: Sequence[Interval], tolerance: float = 0.0) -> list[str]:
    problems = []
    for i, first in enumerate(intervals):
        for second in intervals[i + 1:]:
            if first.site != second.site and first.overlaps(second, tolerance):
                problems.append(
                    f"two leaders: {first.site} (epoch {first.epoch}, {first.start:.3f}..{first.end:.3f}) "
                    f"and {second.site} (epoch {second.epoch}, {second.start:.3f}..{second.end:.3f})")
    return problems


# -- invariant 2: fenced DNS --------------------------------------------------------------------

def dns_changes(samples: Sequence[Sample], start: float = -math.inf,
                end: float = math.inf) -> list[DnsChange]:
    """Changes of the DNS answer (the record's values) between readable samples in [start, end]."""
    changes = []
    previous: Sample | None = None
    for sample in samples:
        if not sample.dns_ok:
            continue
        if previous is not None and sample.dns_values != previous.dns_values and start <= sample.t <= end:
            changes.append(DnsChange(sample.t, previous.dns_values, sample.dns_values,
                                     sample.fence_epoch, sample.fence_site))
        previous = sample
    return changes


def fence_violations(samples: Sequence[Sample], values: Mapping[str, str]) -> list[str]:
    """Every observed DNS state must carry the epoch of a leadership the lock key showed (same
    site), its answer must be that site's value, and fence epochs must never go down."""
    shown = {(s.holder_site, s.holder_epoch) for s in samples
             if s.key_ok and s.holder_site and s.holder_epoch is not None}
    problems: list[str] = []
    seen_states: set[tuple] = set()
    highest: int | None = None
    for sample in samples:
        if not sample.dns_ok:
            continue
        state = (sample.dns_values, sample.fence_epoch, sample.fence_site)
        if highest is not None and (sample.fence_epoch is None or sample.fence_epoch < highest):
            problems.append(f"fence epoch went down at {sample.t:.3f}: {sample.fence_epoch} after {highest}")
        if sample.fence_epoch is not None:
            highest = max(highest or sample.fence_epoch, sample.fence_epoch)
        if state in seen_states:
            continue
        seen_states.add(state)
        if sample.fence_epoch is None and not sample.dns_values and highest is None:
            continue    # never written yet (a fresh zone): nobody to blame
        if (sample.fence_site, sample.fence_epoch) not in shown:
            problems.append(f"DNS at {sample.t:.3f} carries epoch {sample.fence_epoch} of site "
                            f"{sample.fence_site}: the lock key never showed that leadership")
        expected = values.get(sample.fence_site or "")
        if expected is None or sample.dns_values != (expected,):
            problems.append(f"DNS at {sample.t:.3f} answers {sample.dns_values} but its fence names "
                            f"site {sample.fence_site} (value {expected})")
    return problems


# -- invariant 3: convergence -------------------------------------------------------------------

def names_holder(sample: Sample, values: Mapping[str, str]) -> bool:
    return (sample.dns_ok and sample.key_ok and sample.holder_site is not None
            and sample.holder_epoch is not None
            and sample.dns_values == (values.get(sample.holder_site),)
            and sample.fence_epoch == sample.holder_epoch)


def convergence_time(samples: Sequence[Sample], since: float, values: Mapping[str, str],
                     expect_site: str | None = None, until: float = math.inf) -> float | None:
    """Seconds from `since` to the first sample in [since, until] where DNS names the lock holder
    (value and epoch), and that holder is `expect_site` if given; None if never."""
    for sample in samples:
        if since <= sample.t <= until and names_holder(sample, values):
            if expect_site is None or sample.holder_site == expect_site:
                return sample.t - since
    return None


# -- all together -------------------------------------------------------------------------------

def check(transitions: Sequence[TransitionRecord], samples: Sequence[Sample],
          values: Mapping[str, str], windows: Sequence[Window] = (),
          process_ends: Mapping[str, Sequence[float] | float] | None = None,
          overlap_tolerance: float = 0.0) -> Report:
    """All four invariants. `overlap_tolerance` > 0 forgives leader overlaps up to that long
    (only for faults that bypass lock-delay by Consul's design, e.g. an operator deleting the key;
    the overlaps are still listed in `Report.overlaps`)."""
    report = Report()
    report.intervals = leader_intervals(transitions, process_ends)
    report.overlaps = overlaps(report.intervals)
    report.violations += overlapping_leaders(report.intervals, overlap_tolerance)
    report.violations += fence_violations(samples, values)
    report.changes = dns_changes(samples)
    for window in windows:
        if window.bound is not None:
            if window.expect_site == "":
                # No holder expected: DNS must keep answering (whatever it answered at start).
                report.convergence[window.name] = None
            else:
                took = convergence_time(samples, window.start, values, window.expect_site,
                                        until=min(window.end, window.start + window.bound))
                report.convergence[window.name] = took
                if took is None:
                    who = f"site {window.expect_site}" if window.expect_site else "the lock holder"
                    report.violations.append(f"{window.name}: DNS did not name {who} within "
                                             f"{window.bound}s of {window.start:.3f}")
        if window.max_changes is not None:
            changes = dns_changes(samples, window.start, window.end)
            if len(changes) > window.max_changes:
                report.violations.append(
                    f"{window.name}: {len(changes)} DNS answer changes, at most {window.max_changes} "
                    f"allowed: " + ", ".join(f"{c.before}->{c.after}@{c.t:.3f}" for c in changes))
    return report
