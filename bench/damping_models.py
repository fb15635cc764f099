#!/usr/bin/env python3
"""Penalty + half-life (what consulha does) against count + window, on the same failure traces.

No servers: both models are pure functions of a site's failure times. The half-life model is
the product's own (consulha.core.damping.Damping); the count + window model is written here
only to compare (Pacemaker's fail count with a failure-timeout window, its hold-down doubling
with every failure in the window as the issue's "growing" asks). Both are set so that one
failure holds a site down for the same time and no hold-down lasts longer than the same
maximum.

For each trace: how many of the site's returns after a failure found it damped (a return is
`RETURN_AFTER` seconds after the failure: the check passes again and the site competes), the
longest hold-down, the hold-down after the last failure (how long a repaired site waits: the
trade-off), and the size of the state each model must keep in KV.

Usage: bench/damping_models.py [--half-life 60] [--max-hold-down 900]
Writes bench/results/damping_models.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.docblocks import ROOT, render  # noqa: E402
from consulha.config import DampingConfig  # noqa: E402
from consulha.core.damping import Damping, Failure, FailureRecord  # noqa: E402
from consulha.core.reasons import Cause, Reason  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DOCS = ROOT / "docs" / "damping.md"
RETURN_AFTER = 2.0  # a flapping service is back this long after its failure (check interval 1 s)


def traces() -> dict[str, list[float]]:
    """Failure times (s) of one site, by name."""
    rng = random.Random(22)
    irregular, t = [], 0.0
    for _ in range(30):
        t += rng.expovariate(1 / 20)
        irregular.append(round(t, 2))
    return {
        "one failure": [0.0],
        "every 2 s for 10 min": [2.0 * i for i in range(300)],
        "every 60 s for 10 min": [60.0 * i for i in range(10)],
        "every 4.8 min for 1 h": [288.0 * i for i in range(13)],   # just inside the window
        "every 5.2 min for 1 h": [312.0 * i for i in range(12)],   # just outside it
        "irregular, mean 20 s (30)": irregular,
        "10 in 20 s, one 30 min later": [2.0 * i for i in range(10)] + [1818.0],
    }


class HalfLife:
    name = "penalty + half-life"

    def __init__(self, half_life: float, max_hold_down: float):
        self.damping = Damping(DampingConfig(half_life=half_life, max_hold_down=max_hold_down))
        self.record: FailureRecord | None = None

    def fail(self, at: float) -> None:
        failure = Failure(epoch=None, at=at, reason=Reason(Cause.CHECK_FAILED, "check failed: api"))
        self.record = self.damping.add("a", self.record, failure)

    def hold_down(self, at: float) -> float:
        return self.record.hold_down(at) if self.record else 0.0

    def record_bytes(self) -> int:
        # The state the rule needs (the agents also keep the last few failures for people).
        record = self.record
        return len(json.dumps({"site": "a", "penalty": round(record.penalty, 4),
                               "as_of": round(record.as_of, 3),
                               "damped_until": round(record.damped_until, 3)})) if record else 0


@dataclass
class CountWindow:
    """Failures in the last `window` seconds count; after each, the hold-down is
    base * 2^(count-1), at most `max_hold_down`; the count forgets a failure `window` after it."""
    base: float
    max_hold_down: float
    window: float
    name: str = "count + window"

    def __post_init__(self) -> None:
        self.times: list[float] = []
        self.until = 0.0

    def fail(self, at: float) -> None:
        self.times = [t for t in self.times if t > at - self.window] + [at]
        self.until = at + min(self.max_hold_down, self.base * 2 ** (len(self.times) - 1))

    def hold_down(self, at: float) -> float:
        return max(0.0, self.until - at)

    def record_bytes(self) -> int:
        # Every failure time in the window must be stored to know when each one ages out.
        return len(json.dumps({"site": "a", "failures": [round(t, 3) for t in self.times],
                               "damped_until": round(self.until, 3)}))


def run(model, failures: list[float]) -> dict:
    passed_over, longest, largest = 0, 0.0, 0
    for at in failures:
        model.fail(at)
        longest = max(longest, model.hold_down(at))
        largest = max(largest, model.record_bytes())
        if model.hold_down(at + RETURN_AFTER) > 0:
            passed_over += 1
    return {"returns": len(failures), "passed_over": passed_over,
            "longest_hold_down_s": round(longest, 1),
            "hold_down_after_last_s": round(model.hold_down(failures[-1]), 1),
            "largest_record_bytes": largest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half-life", type=float, default=DampingConfig.half_life)
    parser.add_argument("--max-hold-down", type=float, default=DampingConfig.max_hold_down)
    args = parser.parse_args()
    results: dict[str, dict] = {}
    for trace, failures in traces().items():
        models = [HalfLife(args.half_life, args.max_hold_down),
                  CountWindow(base=args.half_life, max_hold_down=args.max_hold_down,
                              window=args.max_hold_down)]
        results[trace] = {model.name: run(model, failures) for model in models}
    report = {"what": "hold-downs of one site's failure traces, two damping models",
              "settings": {"half_life_or_base_s": args.half_life,
                           "max_hold_down_or_window_s": args.max_hold_down,
                           "return_after_s": RETURN_AFTER},
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": results}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "damping_models.json").write_text(json.dumps(report, indent=2) + "\n")
    render(DOCS, "damping models", docs_lines(report))
    print("\n".join(table(report)))


def docs_lines(report: dict) -> list[str]:
    """docs/damping.md's block: the table, with where and when it was measured."""
    return [f"`bench/damping_models.py`, `bench/results/damping_models.json` ({report['at']}):", ""] + table(report)


def table(report: dict) -> list[str]:
    lines = ["| trace | model | returns passed over | longest hold-down | after the last failure | record |",
             "|---|---|---|---|---|---|"]
    for trace, models in report["results"].items():
        for name, row in models.items():
            lines.append(f"| {trace} | {name} | {row['passed_over']} of {row['returns']} | "
                         f"{row['longest_hold_down_s']:.0f} s | {row['hold_down_after_last_s']:.0f} s | "
                         f"{row['largest_record_bytes']} B |")
    return lines


if __name__ == "__main__":
    main()
