"""What bench/wan.py concludes from what it observed: pure functions, no I/O.

Inputs: `Poll`s (every ~50 ms, per system: the sites that believe they are active, and the site
the record points at on each verify server) and the systems' `events()` ({t, site, event:
active|standby|dns_write}, CLOCK_MONOTONIC). The same functions judge both systems, so their
figures are comparable: failover time, late or missed failovers, leadership moves without a
fault (false failovers), two sites leading at once, and DNS written by a site while another
one leads (two sites writing DNS).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

from bench.failover import percentile, summarise
from lab.invariants import TransitionRecord, leader_intervals, overlaps

LATE_S = 30.0   # issue 17: a fault not followed within 30 s is a late (or missed) failover


@dataclass(frozen=True)
class Poll:
    t: float
    active: tuple[str, ...]
    dns: tuple[str | None, ...]   # per verify server; None: unreadable or not a site's value


@dataclass
class FaultRun:
    """One fault, one system."""

    seconds: float | None          # fault -> every verify server answers the new site
    moves: int                     # leadership moves between fault and end of the run
    dns_moves: int                 # changes of the DNS answers in the same window
    two_leaders_s: list[float] = field(default_factory=list)
    stale_writes: int = 0          # DNS writes by a site while another one led
    violations: list[str] = field(default_factory=list)   # invariants (consulha: lab.invariants)

    @property
    def late(self) -> bool:
        return self.seconds is not None and self.seconds > LATE_S

    @property
    def missed(self) -> bool:
        return self.seconds is None


def converged_at(polls: Sequence[Poll], since: float, site: str) -> float | None:
    """Seconds from `since` until every verify server answers `site` (None: never)."""
    for poll in polls:
        if poll.t >= since and poll.dns and all(answer == site for answer in poll.dns):
            return poll.t - since
    return None


def dns_moves(polls: Sequence[Poll], since: float = -math.inf, until: float = math.inf) -> int:
    """Changes of the answers between fully readable polls in [since, until]."""
    moves, previous = 0, None
    for poll in polls:
        if None in poll.dns or not poll.dns:
            continue
        if previous is not None and poll.dns != previous and since <= poll.t <= until:
            moves += 1
        previous = poll.dns
    return moves


def leadership_moves(events: Sequence[Mapping], since: float = -math.inf,
                     until: float = math.inf) -> int:
    """Sites becoming active in [since, until] other than the one active before: a self-fenced
    leader that resumes is no move (nobody else led meanwhile)."""
    moves, last = 0, None
    for event in sorted(events, key=lambda e: e["t"]):
        if event["event"] != "active":
            continue
        if since <= event["t"] <= until and last is not None and event["site"] != last:
            moves += 1
        last = event["site"]
    return moves


def as_transitions(events: Sequence[Mapping]) -> list[TransitionRecord]:
    """Active/standby events as the transition records lab.invariants reads."""
    return [TransitionRecord(site=e["site"], monotonic=e["t"],
                             role="leader" if e["event"] == "active" else "standby", old="")
            for e in events if e["event"] in ("active", "standby")]


def two_leaders(events: Sequence[Mapping], process_ends: Mapping[str, list[float]]) -> list[float]:
    """Seconds of every overlap of two sites' active periods (a killed agent's ends at its kill)."""
    return overlaps(leader_intervals(as_transitions(events), process_ends))


def stale_writes(events: Sequence[Mapping], process_ends: Mapping[str, list[float]],
                 since: float = -math.inf, until: float = math.inf) -> int:
    """DNS writes in [since, until] by a site while another site became active after it and
    still was: the moments two sites were writing DNS."""
    intervals = leader_intervals(as_transitions(events), process_ends)
    count = 0
    for write in (e for e in events if e["event"] == "dns_write" and since <= e["t"] <= until):
        own = [i.start for i in intervals if i.site == write["site"] and i.start <= write["t"]]
        newer = [i for i in intervals if i.site != write["site"] and i.start <= write["t"] < i.end
                 and (not own or i.start > max(own))]
        count += bool(newer)
    return count


def judge_run(polls: Sequence[Poll], events: Sequence[Mapping], fault_at: float, end_at: float,
              new_site: str, process_ends: Mapping[str, list[float]],
              violations: Sequence[str] = ()) -> FaultRun:
    window = [p for p in polls if fault_at <= p.t <= end_at]
    return FaultRun(seconds=converged_at(window, fault_at, new_site),
                    moves=leadership_moves(events, fault_at, end_at),
                    dns_moves=dns_moves(polls, fault_at, end_at),
                    two_leaders_s=two_leaders(events, process_ends),
                    stale_writes=stale_writes(events, process_ends, fault_at, end_at),
                    violations=list(violations))


def summarise_runs(runs: Sequence[FaultRun]) -> dict:
    """bench.failover's median / p95 / max of the failovers, with what went wrong counted."""
    seconds = [r.seconds for r in runs if r.seconds is not None]
    missed = [f"run {i + 1}: no failover within the run's bound" for i, r in enumerate(runs) if r.missed]
    row = summarise(seconds, missed)
    row.update({
        "of": len(runs),
        "late": sum(r.late for r in runs), "missed": sum(r.missed for r in runs),
        # One move per fault is the failover; every further one is a failover nobody asked for.
        "extra_moves": sum(max(0, r.moves - 1) for r in runs),
        "extra_dns_moves": sum(max(0, r.dns_moves - 1) for r in runs),
        "two_leaders": sum(bool(r.two_leaders_s) for r in runs),
        "two_writers": sum(r.stale_writes for r in runs),
        "invariant_violations": sum(len(r.violations) for r in runs),
        "violations": [v for r in runs for v in r.violations][:20],
        "detail": [asdict(r) for r in runs],
    })
    return row


def latency_summary(milliseconds: Sequence[float], failures: int) -> dict:
    if not milliseconds:
        return {"reads": 0, "failed": failures}
    return {"reads": len(milliseconds), "failed": failures,
            "p50_ms": round(percentile(list(milliseconds), 0.5), 2),
            "p99_ms": round(percentile(list(milliseconds), 0.99), 2),
            "max_ms": round(max(milliseconds), 2)}


def soak_counts(polls: Sequence[Poll], events: Sequence[Mapping], since: float, until: float,
                process_ends: Mapping[str, list[float]]) -> dict:
    """What a system did without a fault: every leadership move is a false failover."""
    return {"false_failovers": leadership_moves(events, since, until),
            "promotions": sum(1 for e in events if e["event"] == "active" and since <= e["t"] <= until),
            "dns_moves": dns_moves(polls, since, until),
            "two_leaders": len(two_leaders([e for e in events if e["t"] <= until], process_ends)),
            "two_writers": stale_writes(events, process_ends, since, until),
            "polls": sum(1 for p in polls if since <= p.t <= until)}


def emulator_verdict(measurements: Sequence[Mapping | None]) -> dict:
    """Valid when every Wan.measure() of the profile was (lab/wanprobe.py judges it: its
    delayers keep up and do not stall, observed delay and loss as configured)."""
    taken = [m for m in measurements if m]
    reasons = list(dict.fromkeys(r for m in taken for r in m["invalid_reasons"]))
    return {"valid": all(m["valid"] for m in taken), "measurements": len(taken),
            "invalid_reasons": reasons}


def estimate_minutes(report: Mapping, runs: Mapping[str, int], soak_s: float) -> dict:
    """Minutes of a run of every profile in `runs` (runs per fault) with `soak_s` soaks, from the
    times measured in `report`: a profile's own, or the mean of the measured profiles' for one
    not measured. The soaks (each its length plus the setup seen) and the fault runs apart,
    since they can run as two invocations."""
    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else 0.0

    measured = {name: (p["durations_s"], p.get("soak") or {}) for name, p in report["profiles"].items()
                if "durations_s" in p}
    setups = {name: d["soak_s"] - soak.get("seconds", 0) for name, (d, soak) in measured.items() if "soak_s" in d}
    per_run = {name: {k.removesuffix("_run_s"): v for k, v in d.items() if k.endswith("_run_s")}
               for name, (d, _) in measured.items()}
    faults = sorted({fault for times in per_run.values() for fault in times})
    typical = {fault: mean([t[fault] for t in per_run.values() if fault in t]) for fault in faults}
    soaks = sum(soak_s + setups.get(name, mean(list(setups.values()))) for name in runs) / 60
    fault_minutes = sum(count * sum(per_run.get(name, {}).get(f, typical[f]) for f in faults)
                        for name, count in runs.items()) / 60
    return {"soaks": soaks, "faults": fault_minutes, "timed": faults}
