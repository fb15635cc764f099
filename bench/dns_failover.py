#!/usr/bin/env python3
"""DNS benchmark: a failover that moves four records in two zones, on a BIND primary that
NOTIFYs a BIND secondary (real Consul, two agent processes, each run fresh).

Scenarios: check (site a's HTTP check fails) and handover (`consulha handover --to b`).
Measured separately, from the fault: every record on the primary answers site b, and every
record on the secondary does (NOTIFY + IXFR); their difference is the secondary's lag. Each run
also checks that the failover took exactly one UPDATE per zone (SOA serial +1) and that no
server ever answered a mix of both sites within a zone.
Writes bench/results/dns_failover.json.

Usage: bench/dns_failover.py [--runs N] [--scenarios check,handover]
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

from bench.failover import FAULTS, RESULTS, print_table, run_series, summarise  # noqa: E402
from lab.consul import ConsulDev  # noqa: E402
from lab.named import NamedSecondary, NamedServer  # noqa: E402
from lab.pair import SitePair, wait_until  # noqa: E402
from lab.ports import free_port  # noqa: E402
from lab.records import NAMES, ZONES, answers_of, mixed_zones, multi_record_config, server_answers  # noqa: E402


def one_run(workdir: Path, consul: ConsulDev, scenario: str) -> dict[str, float]:
    secondary_port = free_port()
    primary = NamedServer(workdir / "primary", records=NAMES, extra_zones=("other.test.",),
                          notify_ports=(secondary_port,))
    with primary, NamedSecondary(workdir / "secondary", primary, port=secondary_port) as secondary:
        pair = SitePair(workdir, consul, primary)
        servers = {"primary": primary.address, "secondary": secondary.address}
        verify = [f"127.0.0.1:{port}" for _, port in servers.values()]
        try:
            pair.start("a", multi_record_config(pair, "a", verify))
            pair.wait_leader("a")
            pair.start("b", multi_record_config(pair, "b", verify))
            pair.wait_candidates("a", "b")
            for server in servers.values():
                wait_until(lambda server=server: server_answers(server) == answers_of("a"), 20,
                           what="both servers to answer site a", logs=pair.logs)
            time.sleep(0.5)  # let b settle into its blocking read, as in steady state
            serials = {zone: primary.soa_serial(zone) for zone in ZONES}
            started = time.monotonic()
            FAULTS[scenario](pair)
            took: dict[str, float] = {}

            def all_moved() -> bool:
                for name, server in servers.items():
                    if name in took:
                        continue
                    answers = server_answers(server)
                    if mixed_zones(answers):
                        raise RuntimeError(f"{name} answered half a failover: {answers}")
                    if answers == answers_of("b"):
                        took[name] = time.monotonic() - started
                return len(took) == len(servers)
            wait_until(all_moved, 60, step=0.01, what="both servers to answer site b", logs=pair.logs)
            updates = {zone: primary.soa_serial(zone) - serials[zone] for zone in ZONES}
            if set(updates.values()) != {1}:
                raise RuntimeError(f"expected one UPDATE per zone, the serials moved by {updates}")
            return {**took, "secondary_lag": took["secondary"] - took["primary"]}
        finally:
            pair.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--scenarios", default="check,handover")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    if set(scenarios) - {"check", "handover"} or args.runs < 1:
        parser.error("scenarios: check, handover; --runs at least 1")
    results = {}
    with tempfile.TemporaryDirectory(prefix="consulha-bench-dns-") as tmp, ConsulDev(Path(tmp) / "consul") as consul:
        for scenario in scenarios:
            figures: list[dict[str, float]] = []

            def run_once(run: int, scenario=scenario) -> float:
                workdir = Path(tmp) / f"{scenario}-{run}"
                workdir.mkdir()
                figures.append(one_run(workdir, consul, scenario))
                return figures[-1]["secondary"]
            series = run_series(f"{scenario}", args.runs, run_once)
            for measure in ("primary", "secondary", "secondary_lag"):
                results[f"{scenario}, 4 records in 2 zones: {measure.replace('_', ' ')}"] = {
                    **summarise([f[measure] for f in figures]),
                    "failed_runs": series["failed_runs"], "failures": series["failures"]}
    report = {"what": "fault -> primary / secondary answer every record of site b (s)",
              "settings": {"check_interval": "1s", "ttl": "10s", "lock_delay": "1s", "notify-delay": "0",
                           "notify-rate": 1000, "serial-query-rate": 1000},
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": results}
    out = RESULTS / "dns_failover.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(results, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
