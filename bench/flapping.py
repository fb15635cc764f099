#!/usr/bin/env python3
"""Flapping leader: site a's service goes down and up again and again while site b stays
healthy, with flap damping off (today's rules: `election.damping.enabled: false`) and on, in
one run: one Consul, one BIND, two agent processes (fresh, in a group of their own, per run).

Per run, from the fault on: leadership changes (a new leadership on any site; a resume at
the same epoch after a self-fence is none), moves of the lead to another site, a's re-entries
into the leader role, DNS answer changes and DNS writes (fence epoch changes, DNS polled every
20 ms), the hooks' calls; each also per minute of flapping. Schedules: periodic down/up phases
from sub-second to several seconds, and irregular ones. The race a flapping site can win is
decided when lock-delay ends, between the flapping site, back by then or not, and the standby;
`--standby-busy S` stops b's agent for S seconds at the fault (a loaded host, or a standby
whose requests cross a slower link), the race today's rules give to the flapping site.
Writes bench/results/flapping.json (merged by condition) and prints a markdown table.

Usage: bench/flapping.py [--seconds 30] [--runs 3] [--schedules 0.4,1.5,4,irregular]
                         [--lock-delays 1s,3s] [--standby-busy 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.consul import ConsulDev  # noqa: E402
from lab.flap import Flapper, irregular, periodic  # noqa: E402
from lab.hooklog import hook_calls, recording_hooks  # noqa: E402
from lab.named import NamedServer  # noqa: E402
from lab.pair import SitePair  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SETTLE = 6.0          # after the flapping: the last failover, DNS and the hooks have happened
POLL = 0.02
SCHEDULES = {
    "0.4": ("0.4 s down / 0.4 s up", lambda run: periodic(0.4, 0.4)),
    "1.5": ("1.5 s down / 1.5 s up", lambda run: periodic(1.5, 1.5)),
    "4": ("4 s down / 4 s up", lambda run: periodic(4.0, 4.0)),
    "irregular": ("irregular, 0.2 to 5 s", lambda run: irregular(seed=run)),
}
MODES = {"off": False, "on": True}


class DnsPoller:
    """The record's answer and its fence, every POLL seconds, in a thread."""

    def __init__(self, pair: SitePair):
        self.pair = pair
        self.seen: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            try:
                state = (self.pair.dns_answer(), self.pair.named_fence())
            except OSError:
                continue
            if not self.seen or self.seen[-1] != state:
                self.seen.append(state)

    def start(self) -> "DnsPoller":
        self._thread.start()
        return self

    def stop(self) -> tuple[int, int]:
        """(answer changes, fence changes) since start."""
        self._stop.set()
        self._thread.join(5)
        answers = sum(1 for before, after in zip(self.seen, self.seen[1:]) if before[0] != after[0])
        fences = sum(1 for before, after in zip(self.seen, self.seen[1:]) if before[1] != after[1])
        return answers, fences


def one_run(workdir: Path, consul: ConsulDev, named: NamedServer, group: str, schedule: str,
            damping: bool, lock_delay: str, busy: float, seconds: float, run: int) -> dict:
    pair = SitePair(workdir, consul, named)
    pair.group = group
    hooks = {site: workdir / f"hooks-{site}.log" for site in ("a", "b")}

    def config(site: str) -> str:
        return pair.config(site, election={"damping": {"enabled": damping}},
                           hooks=recording_hooks(hooks[site]),
                           session={"ttl": "10s", "lock_delay": lock_delay, "heartbeat_ttl": "3s"})
    try:
        pair.start("a", config("a"))
        pair.wait_leader("a")
        pair.start("b", config("b"))
        pair.wait_candidates("a", "b")
        pair.wait_dns("a")
        time.sleep(1.0)  # b settles into its blocking read
        before = {site: len(hook_calls(path)) for site, path in hooks.items()}
        poller = DnsPoller(pair).start()
        fault = time.monotonic()
        if busy:
            pair.agents["b"].send(signal.SIGSTOP)
        flapper = Flapper(pair.toy("a"), SCHEDULES[schedule][1](run), seconds).start()
        if busy:
            time.sleep(busy)
            pair.agents["b"].send(signal.SIGCONT)
        flapper.wait()
        time.sleep(SETTLE)
        answer_changes, dns_writes = poller.stop()
        # A self-fenced leader that resumes at its epoch (the lock never left it) is no new leadership.
        entered = [t for t in pair.transitions() if t["monotonic"] >= fault and t["role"] == "leader"
                   and t.get("cause") != "lease_restored"]
        leaders = ["a"] + [t["site"] for t in entered]
        moves = sum(1 for before_site, after in zip(leaders, leaders[1:]) if before_site != after)
        calls = sum(len(hook_calls(path)) - before[site] for site, path in hooks.items())
        minutes = seconds / 60
        return {"failures_of_a": flapper.failures, "promotions": len(entered), "moves": moves,
                "reentries_of_a": sum(1 for t in entered if t["site"] == "a"),
                "dns_answer_changes": answer_changes, "dns_writes": dns_writes, "hook_calls": calls,
                "final_leader": (pair.leader() or {}).get("site"),
                "per_minute": {"moves": round(moves / minutes, 2), "promotions": round(len(entered) / minutes, 2),
                               "dns_answer_changes": round(answer_changes / minutes, 2),
                               "dns_writes": round(dns_writes / minutes, 2)}}
    finally:
        if busy:
            pair.agents["b"].send(signal.SIGCONT)
        pair.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="flapping time per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per schedule, lock-delay and mode")
    parser.add_argument("--schedules", default=",".join(SCHEDULES))
    parser.add_argument("--lock-delays", default="1s,3s")
    parser.add_argument("--standby-busy", type=float, default=0.0,
                        help="seconds b's agent is stopped at the fault (0: never)")
    args = parser.parse_args()
    lock_delays = args.lock_delays.split(",")
    schedules = args.schedules.split(",")
    if set(schedules) - set(SCHEDULES) or args.runs < 1:
        parser.error(f"schedules are {', '.join(SCHEDULES)}; --runs at least 1")
    results: dict[str, dict[str, dict[str, list[dict]]]] = {}
    with tempfile.TemporaryDirectory(prefix="consulha-flapping-") as tmp:
        root = Path(tmp)
        with ConsulDev(root / "consul") as consul, NamedServer(root / "named") as named:
            number = 0
            for lock_delay in lock_delays:
                for schedule in schedules:
                    for run in range(args.runs):
                        for mode, damping in MODES.items():   # side by side, run by run
                            number += 1
                            workdir = root / f"run-{number}"
                            workdir.mkdir()
                            row = one_run(workdir, consul, named, f"flap{number}", schedule, damping,
                                          lock_delay, args.standby_busy, args.seconds, run)
                            condition = lock_delay + (f", standby busy {args.standby_busy:g}s at the fault"
                                                      if args.standby_busy else "")
                            results.setdefault(condition, {}).setdefault(schedule, {}).setdefault(
                                mode, []).append(row)
                            print(f"{condition} {SCHEDULES[schedule][0]:24} damping {mode:3} "
                                  f"run {run + 1}: {row}", flush=True)
    report = {"what": "site a's service flapping, site b healthy: changes per minute of flapping",
              "settings": {"flapping_s": args.seconds, "check_interval": "1s", "ttl": "10s",
                           "damping": "off: enabled false; on: the defaults (half_life 1m, suppress 1, "
                                      "max_hold_down 5m)"},
              "schedules": {key: SCHEDULES[key][0] for key in schedules},
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": results}
    out = RESULTS / "flapping.json"
    out.parent.mkdir(exist_ok=True)
    if out.exists():  # keep the other conditions' last figures
        earlier = json.loads(out.read_text())
        report["results"] = {**earlier.get("results", {}), **results}
        report["schedules"] = {**earlier.get("schedules", {}), **report["schedules"]}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n" + "\n".join(table(report)) + f"\n\nwritten to {out}")
    return 0


COUNTS = ("failures_of_a", "promotions", "moves", "reentries_of_a", "dns_answer_changes", "dns_writes",
          "hook_calls")


def table(report: dict) -> list[str]:
    """Markdown: per lock-delay, schedule and mode, the counts summed over the runs, and the
    leadership and DNS changes per minute of flapping."""
    lines = ["| lock_delay, condition | flapping of a's service | damping | runs | failures of a | leadership changes | "
             "a re-entered | DNS answer changes | DNS writes | hook calls | per minute: leadership / DNS changes |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    minutes = report["settings"]["flapping_s"] / 60
    for lock_delay, schedules in report["results"].items():
        for schedule, modes in schedules.items():
            for mode, rows in modes.items():
                total = {key: sum(row[key] for row in rows) for key in COUNTS}
                span = minutes * len(rows)
                lines.append(f"| {lock_delay} | {report['schedules'][schedule]} | {mode} | {len(rows)} | "
                             f"{total['failures_of_a']} | {total['promotions']} | {total['reentries_of_a']} | "
                             f"{total['dns_answer_changes']} | {total['dns_writes']} | {total['hook_calls']} | "
                             f"{total['promotions'] / span:.2f} / {total['dns_answer_changes'] / span:.2f} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
