#!/usr/bin/env python3
"""Idle cost of an agent with metrics off and on: CPU share and RSS of both agents of a running
pair (real Consul, real BIND, site a leading, b standing by), measured over --seconds each.

With metrics on, each agent is scraped every --scrape-interval seconds (/metrics, as Prometheus
would), so the figure includes serving the scrapes and their scrape-time Consul read. With
--before TREE, a third run uses the agent code of TREE (e.g. `git archive` of the commit before
metrics existed) as the baseline. Writes bench/results/idle.json.

Usage: bench/idle.py [--seconds 30] [--scrape-interval 5] [--before TREE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.consul import ConsulDev  # noqa: E402
from lab.named import NamedServer  # noqa: E402
from lab.pair import SitePair  # noqa: E402
from lab.ports import free_port  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def measure(workdir: Path, consul: ConsulDev, named: NamedServer, metrics_on: bool,
            seconds: float, scrape_interval: float, code_tree: str | None = None) -> dict:
    pair = SitePair(workdir, consul, named)
    # `python -m` puts the working directory first on the agents' import path: started from
    # code_tree, they run its consulha instead of the installed one.
    started_in = os.getcwd()
    os.chdir(code_tree or started_in)
    ports = {site: free_port() for site in ("a", "b")}
    try:
        for site in ("a", "b"):
            sections = {"metrics": {"listen": f"127.0.0.1:{ports[site]}"}} if metrics_on else {}
            pair.start(site, pair.config(site, **sections))
            if site == "a":
                pair.wait_leader("a")
        pair.wait_candidates("a", "b")
        pair.wait_dns("a")
        time.sleep(3)  # past start-up: imports, registration, first DNS write
        pids = {site: agent.pid for site, agent in pair.agents.items()}
        start = {site: cpu_seconds(pid) for site, pid in pids.items()}
        began = time.monotonic()
        scrapes = 0
        while time.monotonic() - began < seconds:
            if metrics_on:
                for port in ports.values():
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                        reply.read()
                    scrapes += 1
            time.sleep(min(scrape_interval, max(0.0, seconds - (time.monotonic() - began))))
        elapsed = time.monotonic() - began
        return {"seconds": round(elapsed, 1), "scrapes": scrapes, "sites": {
            site: {"cpu_percent": round(100 * (cpu_seconds(pid) - start[site]) / elapsed, 2),
                   "rss_mib": round(rss_mib(pid), 1)}
            for site, pid in pids.items()}}
    finally:
        pair.close()
        os.chdir(started_in)


def table_lines(report: dict) -> list[str]:
    lines = ["| metrics | site | CPU % of a core | RSS MiB |", "|---|---|---|---|"]
    for mode, result in report["results"].items():
        for site, row in result["sites"].items():
            lines.append(f"| {mode.removeprefix('metrics_')} | {site} | {row['cpu_percent']} "
                         f"| {row['rss_mib']} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--scrape-interval", type=float, default=5.0)
    parser.add_argument("--before", help="a source tree of consulha without metrics")
    args = parser.parse_args()
    modes = (["before"] if args.before else []) + ["off", "on"]
    results = {}
    with tempfile.TemporaryDirectory(prefix="consulha-idle-") as tmp:
        root = Path(tmp)
        with ConsulDev(root / "consul") as consul, NamedServer(root / "named") as named:
            for mode in modes:
                workdir = root / mode
                workdir.mkdir()
                results[f"metrics_{mode}"] = measure(
                    workdir, consul, named, mode == "on", args.seconds, args.scrape_interval,
                    args.before if mode == "before" else None)
    report = {"what": "idle agent CPU (% of one core) and RSS: metrics off vs on (before: "
                      "the code without metrics)",
              "settings": {"seconds": args.seconds, "scrape_interval": args.scrape_interval,
                           "ttl": "10s", "lock_delay": "1s", "heartbeat_ttl": "3s"},
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": results}
    out = RESULTS / "idle.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n".join(table_lines(report)) + f"\n\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
