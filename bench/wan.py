#!/usr/bin/env python3
"""consulha and the ZooKeeper design it replaces, side by side on emulated WAN links (issue 17).

One three-site lab (network namespaces; lab/wan.py delays and drops packets between sites);
both systems run in it at the same time, each with its own record in the same BIND zone, both
watching the toy services of ha and hb. Per WAN profile:
  emulator  Wan.measure() under the run's load (after the soak, after the faults): configured vs
            observed delay, RTT and loss, the delayers' lag; a profile is invalid when a
            measurement was (lab/wanprobe.py's verdict: a delayer's lag p50 over 10 % of the delay,
            its p99 over half of it, delay or loss not as configured); 300 probes per host pair,
            enough to see 0.5-5 % loss
  soak      --soak-seconds without a fault: leadership moves (false failovers), two leaders,
            two sites writing DNS; for consulha also session invalidations, heartbeat and check
            flaps, serf suspicions, Raft elections (Consul's logs) and the latency of consistent
            reads from the app hosts (a Consul RPC across the WAN)
  faults    check (site a's service fails), sigkill (the leader's agent), isolation (site a's
            hosts cut off), handover (planned; consulha only: the ZooKeeper design has none),
            --runs each: median / p95 / max until every verify server answers site b, late
            (> 30 s) and missed failovers, extra moves, the chaos suite's invariants (consulha)
  systems   consulha, consulha-consul-only (consulha with election.leader_probes: false, the
            path before own probes; not in the same invocation as consulha: one lab runs one
            consulha at a time), zookeeper
Writes bench/results/wan.json (merged per profile and system: an invocation replaces only the
figures it measured), bench/results/wan.png, docs/wan.md's tables and the README's summary;
--quick writes bench/results/wan-quick.{json,png} and leaves the docs alone.

Usage: bench/wan.py [--quick] [--profiles lan,regional,...] [--faults check,...]
                    [--runs N | --runs lan=5,bad=3,...] [--soak-seconds S | --soak-seconds lan=180,...]
                    [--systems consulha,zookeeper | consulha-consul-only]
(--runs and --soak-seconds: one number for every profile, or per profile over the defaults)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.wan_observe import ConsulLogWindow, Poller, ReadLatency  # noqa: E402
from bench.wan_outcome import (FaultRun, emulator_verdict, estimate_minutes, judge_run,  # noqa: E402
                               soak_counts, summarise_runs)
from bench.wan_systems import SETTINGS, ConsulhaSystem, System, WanLab  # noqa: E402
from lab.invariants import Window  # noqa: E402
from lab.netns import SITES, preflight, sweep_stale  # noqa: E402
from lab.wan import PROFILES, Wan, WanProfile  # noqa: E402
from lab.wan import preflight as wan_preflight  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FAULTS = ("check", "sigkill", "isolation", "handover")
CONSULHA_ONLY = {"handover": "the ZooKeeper design has no planned handover"}
RUNS = {"lan": 10, "regional": 10, "continental": 10, "metro": 5, "bad": 5, "flapping": 5}
SOAK_S, QUICK_SOAK_S, QUICK_RUNS = 600.0, 60.0, 2
# A system that did not come up for a run (a wait in its start() ran out): the run is not
# counted, the error is kept, the series goes on.
NOT_STARTED = (AssertionError, RuntimeError, TimeoutError)
RUN_BOUND_S = 60.0   # a fault run waits this long for the failover (after 30 s it is late)
SETTLE_S = 3.0       # after the failover: a flap back would show here
# The emulator's measurement: 300 probes per host pair see 0.5 % loss (20 saw none), 3 s.
PROBES, PROBE_INTERVAL_S = 300, 0.01
SYSTEMS = ("consulha", "consulha-consul-only", "zookeeper")
OLD, NEW = "a", "b"


def zookeeper_system() -> System:
    from bench.peers.zksystem import ZkSystem  # bench/peers/ (issue 17, section 3)
    return ZkSystem()


class Bench:
    def __init__(self, lab: WanLab, wan: Wan, systems: list[System]):
        self.lab = lab
        self.wan = wan
        self.systems = systems
        self.servers = [lab.net.addr("dns")]   # the verify servers: BIND's primary
        self.running: set[str] = set()
        self.start_seconds: dict[str, list[float]] = {}   # per system: how long its start() took

    def start(self, systems: list[System]) -> None:
        """Each of `systems` on a fresh run: site a active, DNS on a (a running system restarts
        its agents, ZooKeeper keeps its ensemble). consulha first: its reset heals the network
        for everyone."""
        for system in sorted(systems, key=lambda s: not isinstance(s, ConsulhaSystem)):
            self.running.add(system.name)   # a start that fails half-way is stopped at the end
            begun = time.monotonic()
            system.start(self.lab)
            self.start_seconds.setdefault(system.name, []).append(time.monotonic() - begun)

    def stop(self) -> None:
        for system in self.systems:
            if system.name in self.running:
                try:
                    system.stop()
                except Exception as error:  # noqa: BLE001 - teardown goes on
                    print(f"stopping {system.name}: {error}", file=sys.stderr)
        self.running.clear()

    def soak(self, seconds: float) -> dict:
        self.start(self.systems)
        consulha = self._consulha()
        if consulha:
            consulha.resample(0.25, seconds + 60)
        logs, latency = ConsulLogWindow(self.lab), ReadLatency(self.lab, max_duration=seconds + 60).start()
        poller = Poller(self.lab, self.systems, self.servers, 0.25, seconds + 60).start()
        try:
            since = time.monotonic()
            time.sleep(seconds)
            until = time.monotonic()
            emulator = self.measure()   # under the soak's load; the delayers' lag since the last
        finally:
            polls, read_latency = poller.stop(), latency.stop()
        result = {"seconds": round(until - since, 1), "at": utc_now(), "emulator": emulator, "systems": {}}
        for system in self.systems:
            events = [e for e in system.events() if e["t"] <= until]
            row = soak_counts(polls[system.name], events, since, until, {})
            if system is consulha:
                row["session_invalidations"] = sum(
                    1 for e in events if e.get("cause") == "session_invalidated" and e["t"] >= since)
                row["consul"] = logs.counts()
                row["consistent_read"] = read_latency
                row["violations"] = consulha.violations([Window("soak", since, until, max_changes=0)], {})
            result["systems"][system.name] = row
        return result

    def fault_run(self, fault: str) -> dict[str, FaultRun]:
        systems = [s for s in self.systems if isinstance(s, ConsulhaSystem) or fault not in CONSULHA_ONLY]
        self.start(systems)
        poller = Poller(self.lab, systems, self.servers, 0.05, RUN_BOUND_S + SETTLE_S + 30).start()
        started = time.monotonic()
        ends: dict[str, list[float]] = {}
        try:
            fault_at = time.monotonic()
            self._inject(fault, systems, ends)
            deadline = fault_at + RUN_BOUND_S
            while time.monotonic() < deadline and not all(
                    (p := poller.latest(s.name)) and p.t > fault_at and set(p.dns) == {NEW} for s in systems):
                time.sleep(0.05)
            time.sleep(SETTLE_S)
            end_at = time.monotonic()
        finally:
            polls = poller.stop()
            self._heal(fault, systems)
        outcome = {}
        for system in systems:
            events = [e for e in system.events() if e["t"] >= started - 30]
            violations = (system.violations([Window(fault, fault_at, end_at, bound=RUN_BOUND_S,
                                                    expect_site=NEW, max_changes=1)], ends)
                          if system is self._consulha() else [])
            outcome[system.name] = judge_run(polls[system.name], events, fault_at, end_at, NEW,
                                             ends, violations)
        return outcome

    def _inject(self, fault: str, systems: list[System], ends: dict[str, list[float]]) -> None:
        if fault == "check":
            for system in systems:
                system.fail_service(OLD)
        elif fault == "sigkill":
            for system in systems:
                system.kill_agent(OLD)
            ends[OLD] = [time.monotonic()]
        elif fault == "isolation":
            self.lab.net.isolate(SITES[OLD])
        elif fault == "handover":
            from bench.sites import handover_to_b
            handover_to_b(self.lab)

    def _heal(self, fault: str, systems: list[System]) -> None:
        if fault == "check":
            for system in systems:
                system.heal_service(OLD)
        elif fault == "isolation":
            self.lab.net.heal()

    def measure(self) -> dict:
        return self.wan.measure(count=PROBES, interval_s=PROBE_INTERVAL_S)

    def _consulha(self) -> ConsulhaSystem | None:
        return next((s for s in self.systems if isinstance(s, ConsulhaSystem)), None)

    def profile(self, profile: WanProfile, soak_s: float, runs: int, faults: list[str]) -> dict:
        settings = SETTINGS[profile.name]
        took = {"started": time.monotonic()}
        self.start_seconds.clear()
        self.lab.retune_consul(settings.consul)
        for system in self.systems:
            if isinstance(system, ConsulhaSystem):
                system.settings = settings.agent
        self.wan.apply(profile)   # a flapping profile's cuts start here (and stop at the next)
        result = {"profile": vars(profile), "settings": settings_doc(profile.name), "soak": None,
                  "faults": {}}
        try:
            result["soak"] = self.soak(soak_s) if soak_s > 0 else None
        except NOT_STARTED as error:
            result["soak_failure"] = str(error)[:3000]
            print(f"{profile.name:11} soak: NOT STARTED {str(error)[:300]}", flush=True)
        if result["soak"]:
            took["soak_s"] = time.monotonic() - took["started"]
        for fault in faults:
            if not any(isinstance(s, ConsulhaSystem) or fault not in CONSULHA_ONLY for s in self.systems):
                continue   # nobody to take it (handover without consulha)
            begun, outcomes = time.monotonic(), {s.name: [] for s in self.systems}
            for run in range(runs):
                try:
                    judged = self.fault_run(fault)
                except NOT_STARTED as error:
                    result.setdefault("start_failures", {}).setdefault(fault, []).append(
                        f"run {run + 1}: {error}"[:3000])
                    print(f"{profile.name:11} {fault:9} run {run + 1:2}/{runs}: NOT STARTED "
                          f"{str(error)[:300]}", flush=True)
                    continue
                for name, outcome in judged.items():
                    outcomes[name].append(outcome)
                    print(f"{profile.name:11} {fault:9} run {run + 1:2}/{runs} {name:9}: "
                          + (f"{outcome.seconds:.3f}s" if outcome.seconds is not None else "MISSED")
                          + (f" moves {outcome.moves}" if outcome.moves != 1 else "")
                          + (f" VIOLATIONS {outcome.violations}" if outcome.violations else ""),
                          flush=True)
            result["faults"][fault] = {
                name: {"skipped": CONSULHA_ONLY[fault]} if name == "zookeeper" and fault in CONSULHA_ONLY
                else summarise_runs(rows) | {"at": utc_now()} for name, rows in outcomes.items()}
            took[f"{fault}_run_s"] = (time.monotonic() - begun) / max(1, runs)
        # The delayers' lag since the soak's measurement: one measurement for these fault series.
        taken = list(result["faults"])
        result["emulator_after_faults"] = [{"faults": taken, "systems": [s.name for s in self.systems],
                                            "measurement": self.measure()}] if taken else []
        took.pop("started")
        took |= {f"{name}_start_s": sum(values) / len(values) for name, values in self.start_seconds.items()}
        result["durations_s"] = {k: round(v, 1) for k, v in took.items()}
        return result


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def settings_doc(profile: str) -> dict:
    settings = SETTINGS[profile]
    return {"consulha": vars(settings.agent) | {"node_checks": list(settings.agent.node_checks)},
            "consul": settings.consul.config(), "why": settings.why}


def merged(old: dict | None, new: dict) -> dict:
    """A profile's new results over its old ones: a run without a soak (--soak-seconds 0) keeps
    the last soak, a run of some faults or systems the others' last figures, each with the
    emulator measurement taken with it; the emulator verdict covers every measurement kept."""
    old = old or {}
    faults = {**old.get("faults", {})}
    for fault, rows in new["faults"].items():
        faults[fault] = {**faults.get(fault, {}), **rows}
    result = {**old, **new, "faults": faults,
              "durations_s": {**old.get("durations_s", {}), **new["durations_s"]}}
    result["soak"] = new["soak"] or old.get("soak")
    kept = {(fault, system) for fault, rows in old.get("faults", {}).items() for system in rows} - {
        (fault, system) for fault, rows in new["faults"].items() for system in rows}
    result["emulator_after_faults"] = [
        entry for entry in old.get("emulator_after_faults") or []  # None in records before it
        if _covers(entry) & kept] + new["emulator_after_faults"]
    result["emulator_verdict"] = emulator_verdict(
        [result["soak"] and result["soak"]["emulator"]]
        + [entry["measurement"] for entry in result["emulator_after_faults"]])
    return result


def _covers(entry: dict) -> set[tuple[str, str]]:
    """The (fault, system) series an emulator measurement was taken with (records before
    "systems" was kept: consulha and zookeeper); it stays while one of them is in the record."""
    return {(fault, system) for fault in entry["faults"]
            for system in entry.get("systems", ("consulha", "zookeeper"))}


def per_profile(text: str | None, defaults: dict, kind: type) -> dict:
    """`N` for every profile, or `PROFILE=N,...` over `defaults` (ValueError naming what is wrong)."""
    if text is None:
        return dict(defaults)
    if "=" not in text:
        return {name: kind(text) for name in defaults}
    chosen = dict(defaults)
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name not in defaults:
            raise ValueError(f"unknown profile {name!r} in {text!r}: profiles are {', '.join(defaults)}")
        chosen[name] = kind(value)
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"soak {QUICK_SOAK_S:.0f} s, {QUICK_RUNS} runs per fault, results to wan-quick.*")
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--systems", default="consulha,zookeeper",
                        help=f"of {', '.join(SYSTEMS)}; one consulha per invocation")
    parser.add_argument("--runs", help="runs per fault: N, or PROFILE=N,... (default: 10 for lan, "
                        "regional and continental, 5 for the others)")
    parser.add_argument("--soak-seconds", help=f"S, or PROFILE=S,... (default {SOAK_S:.0f})")
    args = parser.parse_args()
    profiles, faults, names = (args.profiles.split(","), [f for f in args.faults.split(",") if f],
                               args.systems.split(","))
    if set(profiles) - set(PROFILES) or set(faults) - set(FAULTS) or set(names) - set(SYSTEMS):
        parser.error(f"profiles: {list(PROFILES)}; faults: {list(FAULTS)}; systems: {list(SYSTEMS)}")
    if {"consulha", "consulha-consul-only"} <= set(names):
        parser.error("consulha and consulha-consul-only run the same agents: one per invocation")
    reason = preflight() or wan_preflight()
    if reason:
        parser.exit(2, f"bench/wan.py: {reason}\n")
    try:
        runs = per_profile(args.runs, {p: QUICK_RUNS for p in PROFILES} if args.quick else RUNS, int)
        soaks = per_profile(args.soak_seconds, {p: QUICK_SOAK_S if args.quick else SOAK_S for p in PROFILES},
                            float)
    except ValueError as error:
        parser.error(str(error))
    stem = "wan-quick" if args.quick else "wan"
    out = RESULTS / f"{stem}.json"
    report = json.loads(out.read_text()) if out.exists() else {"profiles": {}}
    report.update({"what": "fault -> every verify server answers site b (s); soak without a fault",
                   "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                   "at": utc_now()})
    systems: list[System] = [ConsulhaSystem(SETTINGS[profiles[0]].agent, leader_probes=name == "consulha")
                             for name in names if name.startswith("consulha")]
    if "zookeeper" in names:
        systems.append(zookeeper_system())
    sweep_stale()
    with tempfile.TemporaryDirectory(prefix="consulha-wan-") as tmp:
        lab = WanLab(Path(tmp))
        wan = bench = None
        try:
            lab.start()
            wan = Wan(lab.net)
            bench = Bench(lab, wan, systems)
            for name in profiles:
                new = bench.profile(PROFILES[name], soaks[name], runs[name], faults) | {"at": report["at"]}
                report["profiles"][name] = merged(report["profiles"].get(name), new)
                report["profiles"] = {n: report["profiles"][n] for n in PROFILES if n in report["profiles"]}
                out.write_text(json.dumps(report, indent=1) + "\n")   # a crash keeps what ran
        finally:
            if bench:
                bench.stop()
            if wan:
                wan.close()
            lab.close()
    from bench.wan_render import plot  # matplotlib (the bench extra): only to write
    from bench.wan_tables import render_docs
    plot(report, RESULTS / f"{stem}.png")
    if not args.quick:
        render_docs(report)
    minutes = estimate_minutes(report, RUNS, SOAK_S)
    print(f"written to {out}\nthe recorded run (every profile, default soaks and runs), from the "
          f"times of {stem}.json: soaks {minutes['soaks']:.0f} min + faults {minutes['faults']:.0f} min "
          f"(fault runs timed: {', '.join(minutes['timed']) or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
