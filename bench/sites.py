#!/usr/bin/env python3
"""Failover benchmark on the three-site topology (network namespaces, 3 Consul servers, needs
root), and `consul lock` on the same topology for comparison.

Scenarios (each run starts from `ChaosLab.reset()`: a leads with DNS on a, b stands by):
  check     - site a's service check fails
  sigkill   - site a's consulha agent is SIGKILLed
  isolation - site a (server and app host) is cut off from everything
  handover  - a planned handover to b (`Operations.handover`)
Measured: fault -> the authoritative DNS server answers b with b's epoch and the lock key shows
b (sampled every 50 ms from an observer namespace). Also `consul lock` (its defaults; 1.8.7 has
no flags for TTL or lock-delay): holder SIGKILL -> the standby's child runs.
Writes bench/results/sites.json and timeline-sites-isolation.png.

Usage: bench/sites.py [--runs N] [--lock-runs N] [--scenarios check,sigkill,isolation,handover]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.failover import run_series, table_row  # noqa: E402
from bench.timeline import plot_timeline  # noqa: E402
from consulha.agent.operations import Operations  # noqa: E402
from consulha.config import load_config  # noqa: E402
from consulha.consul.store import ConsulStore  # noqa: E402
from consulha.dns import make_provider  # noqa: E402
from lab.chaoslab import ChaosLab  # noqa: E402
from lab.netns import _alive, preflight, sweep_stale  # noqa: E402
from lab.pair import wait_until  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def handover_to_b(lab: ChaosLab) -> None:
    cfg = load_config(lab.config("a"))
    # The agents' configs name 127.0.0.1 (their own client agent); from the observer namespace
    # the same client agent is reached at the app host's address.
    address = f"http://{lab.net.addr('ha')}:8500"
    cfg = cfg.__class__(**{**cfg.__dict__, "consul": cfg.consul.__class__(address=address)})

    def request():
        outcome = Operations(cfg, ConsulStore(cfg.consul), make_provider(cfg.dns, cfg.site)).handover(
            "b", timeout=30, wait=False)
        if not outcome.ok:
            raise RuntimeError(outcome.message)
    lab.net.observe(request)


FAULTS = {
    "check": (lambda lab: lab.toys["a"].fail(), lambda lab: None),
    "sigkill": (lambda lab: lab.agents["a"].kill(), lambda lab: None),
    "isolation": (lambda lab: lab.net.isolate(["sa", "ha"]), lambda lab: lab.net.heal()),
    "handover": (handover_to_b, lambda lab: None),
}


def one_run(lab: ChaosLab, scenario: str, run: int, plot: bool) -> float:
    lab.reset(f"bench-{scenario}-{run}")
    inject, heal = FAULTS[scenario]
    fault_at = time.monotonic()
    inject(lab)
    try:
        sample = lab.sampler.wait(lambda s: lab.names(s, "b"), 60, what="DNS and the lock on b")
    finally:
        heal(lab)
    if plot:
        time.sleep(1.0)
        samples = [s for s in lab.sampler.samples if s.t >= fault_at - 2]
        plot_timeline(f"consulha: {scenario} of site a, three-site topology (one run)", fault_at,
                      [dataclasses.asdict(t) for t in lab.transitions()],
                      [(s.t, ",".join(s.dns_values) or "none") for s in samples if s.dns_ok],
                      time.monotonic(), RESULTS / f"timeline-sites-{scenario}.png")
    return sample.t - fault_at


def consul_lock_run(lab: ChaosLab, run: int) -> dict:
    """Two `consul lock` holders on the app hosts; SIGKILL the holder; time until the other's
    child runs."""
    lab.stop_agents()
    prefix = f"bench/consul-lock/{run}"
    markers = {host: lab.workdir / f"lock-{run}-{host}" for host in ("ha", "hb")}

    def start(host):
        return lab.net.popen(host, ["consul", "lock", "-http-addr=http://127.0.0.1:8500", "-shell",
                                    prefix, f"echo $$ > {markers[host]}; exec sleep 600"],
                             lab.workdir / f"lock-{run}-{host}.log")
    first = start("ha")
    wait_until(markers["ha"].exists, 30, what="first consul lock child")
    second = start("hb")
    time.sleep(1.0)
    child = int(markers["ha"].read_text())
    fault_at = time.monotonic()
    first.kill()
    wait_until(markers["hb"].exists, 120, step=0.05, what="second consul lock child")
    took = time.monotonic() - fault_at
    orphan = _alive(child)
    for pid in (child, second.pid):
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    return {"seconds": round(took, 3), "killed_holders_child_kept_running": orphan}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--lock-runs", type=int, default=3)
    parser.add_argument("--scenarios", default="check,sigkill,isolation,handover")
    args = parser.parse_args()
    reason = preflight()
    if reason:
        parser.exit(2, f"bench/sites.py: {reason}\n")
    scenarios = args.scenarios.split(",") if args.scenarios else []
    if set(scenarios) - set(FAULTS):
        parser.error(f"unknown scenarios: {sorted(set(scenarios) - set(FAULTS))}")
    results, lock = {}, []
    sweep_stale()
    with tempfile.TemporaryDirectory(prefix="consulha-sites-") as tmp:
        lab = ChaosLab(Path(tmp))
        try:
            lab.start()
            for scenario in scenarios:
                results[scenario] = run_series(
                    scenario, args.runs,
                    lambda run, scenario=scenario: one_run(lab, scenario, run, plot=run == 0))
            for run in range(args.lock_runs):
                lock.append(consul_lock_run(lab, run))
                print(f"consul lock run {run + 1}/{args.lock_runs}: {lock[-1]}", flush=True)
        finally:
            lab.close()
    report = {"what": "fault -> DNS and the lock key name site b (s)",
              "settings": {"check_interval": "1s", "ttl": "10s", "lock_delay": "1s",
                           "heartbeat_ttl": "3s", "raft_multiplier": 1},
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": results}
    if lock:
        seconds = [r["seconds"] for r in lock]
        report["consul_lock_sigkill"] = {"median_s": statistics.median(seconds),
                                         "max_s": max(seconds), "samples": lock}
    out = RESULTS / "sites.json"
    if out.exists():
        previous = json.loads(out.read_text())
        report["results"] = {**previous.get("results", {}), **results}
        if not lock and "consul_lock_sigkill" in previous:
            report["consul_lock_sigkill"] = previous["consul_lock_sigkill"]
    # From the merged results: a run of some scenarios keeps the ratio of the earlier ones.
    if "consul_lock_sigkill" in report and "sigkill" in report["results"]:
        report["ratio_consul_lock_to_consulha_sigkill"] = round(
            report["consul_lock_sigkill"]["median_s"] / report["results"]["sigkill"]["median_s"], 1)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n| scenario | runs | median | p95 | max |\n|---|---|---|---|---|")
    for scenario, row in report["results"].items():
        print(table_row(scenario, row))
    if "ratio_consul_lock_to_consulha_sigkill" in report:
        print(f"consul lock / consulha on agent SIGKILL: {report['ratio_consul_lock_to_consulha_sigkill']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
