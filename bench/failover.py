#!/usr/bin/env python3
"""Failover benchmark on one machine: real Consul, real BIND, two agent processes.

Scenarios (each run starts fresh agents, site a leading, b standing by):
  check   - site a's HTTP check starts failing (1 s interval, lock_delay 1 s), the default
            election.leader_probes
  check-fbc3 - the same with failures_before_critical: 3
  sigkill - site a's agent is SIGKILLed (heartbeat_ttl 3 s, lock_delay 1 s)
  sigstop - site a's agent is frozen (SIGSTOP): Consul's heartbeat probes time out
  stop    - site a's agent gets SIGTERM (graceful handover, no lock-delay)
  handover - `consulha handover --to b` (planned switchover; request recorded, then polled)
Any scenario with a suffix, for the A/B of election.leader_probes in one invocation:
  -own        leader_probes: true on both sites (for check: a's own probe finds the failure
              first and releases the lock)
  -consul-only  leader_probes: false on both sites (for check: Consul's check invalidates a's
              session, b waits out the lock-delay)
Measured: time from the fault to every verify server answering site b (DNS polled every 10 ms).
Prints median / p95 / max and writes bench/results/failover.json.

Usage: bench/failover.py [--runs N] [--scenarios check,sigkill,sigstop,stop,check-own,check-consul-only,...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consulha.agent.operations import Operations  # noqa: E402
from consulha.config import load_config  # noqa: E402
from consulha.dns import make_provider  # noqa: E402
from lab.consul import ConsulDev  # noqa: E402
from lab.named import NamedServer  # noqa: E402
from lab.pair import SITE_VALUES, SitePair, wait_until  # noqa: E402
from lab.site import http_service  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

PROBE_SUFFIXES = {"-own": True, "-consul-only": False}   # election.leader_probes per suffix
FAULTS = {
    "check": lambda pair: pair.toy("a").fail(),
    "check-fbc3": lambda pair: pair.toy("a").fail(),
    "sigkill": lambda pair: pair.agents["a"].kill(),
    "sigstop": lambda pair: pair.agents["a"].send(signal.SIGSTOP),
    "stop": lambda pair: pair.agents["a"].send(15),
    "handover": lambda pair: request_handover(pair),
}


def fault_of(scenario: str) -> str:
    """The fault a scenario injects: its name without a leader_probes suffix."""
    for suffix in PROBE_SUFFIXES:
        if scenario.endswith(suffix):
            return scenario.removesuffix(suffix)
    return scenario


def site_config(pair: SitePair, site: str, scenario: str) -> str | None:
    """The site's config for the scenario; None: the lab's default. check-fbc3*: site a's HTTP
    check has failures_before_critical: 3 (interval 1 s); *-own: own probes, *-consul-only: none."""
    sections = {}
    for suffix, leader_probes in PROBE_SUFFIXES.items():
        if scenario.endswith(suffix):
            sections = {"election": {"leader_probes": leader_probes}}
    services = None
    if scenario.startswith("check-fbc3") and site == "a":
        services = [http_service("api", pair.toy("a").url)]
        services[0]["check"]["failures_before_critical"] = 3
    return pair.config(site, services=services, **sections) if sections or services else None


def request_handover(pair: SitePair) -> None:
    cfg = load_config(pair.config("a"))
    outcome = Operations(cfg, pair.store, make_provider(cfg.dns, cfg.site)).handover(
        "b", timeout=30, wait=False)
    if not outcome.ok:
        raise RuntimeError(outcome.message)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def one_run(workdir: Path, consul: ConsulDev, named: NamedServer, scenario: str,
            plot_to: Path | None = None) -> float:
    pair = SitePair(workdir, consul, named)
    try:
        pair.start("a", site_config(pair, "a", scenario))
        pair.wait_leader("a")
        pair.start("b", site_config(pair, "b", scenario))
        pair.wait_candidates("a", "b")
        pair.wait_dns("a")
        # Let b settle into its blocking read, as in steady state; a debounced check (with own
        # probes every check is, while a leads) needs a pass since a's re-registration as
        # leader before Consul 1.8.7 counts its failures.
        time.sleep(2.5 if scenario.startswith("check") else 0.5)
        samples = [(time.monotonic(), pair.dns_answer())]
        started = time.monotonic()
        FAULTS[fault_of(scenario)](pair)

        def answers_b():
            samples.append((time.monotonic(), pair.dns_answer()))
            return samples[-1][1] == (SITE_VALUES["b"],)
        wait_until(answers_b, 60, step=0.01, what="DNS to answer site b", logs=pair.logs)
        took = time.monotonic() - started
        seen = {answer for _, answer in samples}
        # DNS may only ever have named the old leader or the new one.
        unexpected = seen - {(SITE_VALUES["a"],), (SITE_VALUES["b"],)}
        if unexpected:
            raise RuntimeError(f"DNS named something else during the failover: {unexpected}")
        if plot_to:
            from bench.timeline import plot_timeline  # matplotlib: only when plotting
            time.sleep(0.5)
            samples.append((time.monotonic(), pair.dns_answer()))
            plot_timeline(f"consulha: {scenario} on site a (one run)", started, pair.transitions(),
                          [(t, ",".join(a) or "none") for t, a in samples], time.monotonic(), plot_to)
        return took
    finally:
        if fault_of(scenario) == "sigstop":
            pair.agents["a"].send(signal.SIGCONT)  # so that it can be stopped
        pair.close()


def summarise(samples: list[float], failures: list[str] = ()) -> dict:
    """Median, p95, max and min of the successful runs; failed runs counted with their errors."""
    if not samples:
        return {"runs": 0, "failed_runs": len(failures), "failures": list(failures)}
    return {"runs": len(samples), "median_s": round(statistics.median(samples), 3),
            "p95_s": round(percentile(samples, 0.95), 3), "max_s": round(max(samples), 3),
            "min_s": round(min(samples), 3), "samples_s": [round(s, 3) for s in samples],
            "failed_runs": len(failures), "failures": list(failures)}


def run_series(scenario: str, runs: int, run_once) -> dict:
    """`run_once(run)` `runs` times, printing each; a run that did not fail over (it raised
    AssertionError or RuntimeError) is counted as failed, with its error, and the series goes on."""
    samples, failures = [], []
    for run in range(runs):
        try:
            samples.append(run_once(run))
        except (AssertionError, RuntimeError) as error:
            failures.append(str(error)[:3000])
            print(f"{scenario:9} run {run + 1:2}/{runs}: FAILED {failures[-1]}", flush=True)
            continue
        print(f"{scenario:9} run {run + 1:2}/{runs}: {samples[-1]:.3f}s", flush=True)
    return summarise(samples, failures)


def table_row(scenario: str, row: dict) -> str:
    """One markdown row: | scenario | runs (failed) | median | p95 | max |."""
    runs = f"{row['runs']}" + (f" ({row['failed_runs']} failed)" if row.get("failed_runs") else "")
    if not row["runs"]:
        return f"| {scenario} | {runs} | - | - | - |"
    return (f"| {scenario} | {runs} | {row['median_s']:.3f} s | {row['p95_s']:.3f} s | "
            f"{row['max_s']:.3f} s |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--scenarios", default="check,sigkill,stop,handover")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    unknown = {s for s in scenarios if fault_of(s) not in FAULTS}
    if unknown or args.runs < 1:
        parser.error(f"unknown scenarios {sorted(unknown)} or --runs < 1")
    results = {}
    with tempfile.TemporaryDirectory(prefix="consulha-bench-") as tmp:
        root = Path(tmp)
        with ConsulDev(root / "consul") as consul, NamedServer(root / "named") as named:
            for scenario in scenarios:
                def run_once(run: int, scenario=scenario) -> float:
                    workdir = root / f"{scenario}-{run}"
                    workdir.mkdir()
                    plot_to = RESULTS / f"timeline-{scenario}.png" if run == 0 else None
                    return one_run(workdir, consul, named, scenario, plot_to)
                results[scenario] = run_series(scenario, args.runs, run_once)
    report = {"what": "fault -> every verify server answers the standby (s)",
              "settings": {"check_interval": "1s", "ttl": "10s", "lock_delay": "1s",
                           "heartbeat_ttl": "3s"},
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": results}
    out = RESULTS / "failover.json"
    out.parent.mkdir(exist_ok=True)
    if out.exists():  # keep the other scenarios' last figures when only some were run
        report["results"] = {**json.loads(out.read_text()).get("results", {}), **results}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(results, out)
    return 0


def print_table(results: dict[str, dict], written_to: Path) -> None:
    """The rows as a markdown table, and where the JSON went."""
    print("\n| scenario | runs | median | p95 | max |\n|---|---|---|---|---|")
    for scenario, row in results.items():
        print(table_row(scenario, row))
    print(f"\nwritten to {written_to}")


if __name__ == "__main__":
    sys.exit(main())
