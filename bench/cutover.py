#!/usr/bin/env python3
"""What clients see: a failover as a client behind a caching resolver lives it (issue 31).

Two sites with consulha's defaults (real Consul, real BIND as the authoritative server), a real
unbound in front of BIND (a stub-zone for the managed zone), a client asking unbound every 50 ms
(so its cache holds site a's answer when the fault comes), and the authoritative server polled
every 10 ms. Site a's service fails. Per run: fault -> the authoritative server answers site b,
fault -> the client gets site b. Cases:
  flushed-ttlN    unbound is in dns.resolvers: the leader flushes it once every verify server
                  answers b, then asks it until it answers b
  unflushed-ttlN  no dns.resolvers: unbound keeps a's answer until its TTL runs out
N is the record's dns.ttl (30: consulha's default). Each run starts fresh agents and a fresh
unbound (an empty cache). Prints median / p95 / max per case and writes
bench/results/cutover.json; the README's "what clients see" table is generated from it.

Usage: bench/cutover.py [--runs N] [--cases flushed-ttl30,unflushed-ttl30,...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.docblocks import render  # noqa: E402
from bench.failover import summarise  # noqa: E402
from consulha.config import ResolverConfig  # noqa: E402
from consulha.dns.resolvers import ResolverError, answer  # noqa: E402
from lab.consul import ConsulDev  # noqa: E402
from lab.named import NamedServer  # noqa: E402
from lab.pair import SITE_VALUES, SitePair, wait_until  # noqa: E402
from lab.resolvers import Unbound, preflight  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
README = RESULTS.parent.parent / "README.md"
CASES = ("flushed-ttl30", "unflushed-ttl30", "flushed-ttl10", "unflushed-ttl10")
CASE = re.compile(r"(flushed|unflushed)-ttl(\d+)")
CLIENT_EVERY_S, AUTHORITATIVE_EVERY_S = 0.05, 0.01
RUN_BOUND_S = 90.0


class Client(threading.Thread):
    """Asks the resolver every 50 ms; remembers when it first got site b's value."""

    def __init__(self, resolver: ResolverConfig, record: str):
        super().__init__(daemon=True)
        self.resolver, self.record = resolver, record
        self.first_b: float | None = None
        self.errors = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                got = answer(self.resolver, self.record, "A", 1.0)
            except ResolverError:
                self.errors += 1
            else:
                if got == (SITE_VALUES["b"],) and self.first_b is None:
                    self.first_b = time.monotonic()
            self._halt.wait(CLIENT_EVERY_S)

    def stop(self) -> None:
        self._halt.set()
        if self.ident is not None:   # started
            self.join(5)


def one_run(workdir: Path, consul: ConsulDev, named: NamedServer, case: str) -> dict:
    flushed, ttl = CASE.fullmatch(case).group(1) == "flushed", int(CASE.fullmatch(case).group(2))
    pair = SitePair(workdir, consul, named)
    with Unbound(workdir / "unbound", named.zone, named.address) as unbound:
        resolver = ResolverConfig(kind="unbound", control=unbound.control, address=unbound.address)
        pair.dns_section["ttl"] = ttl
        if flushed:
            pair.dns_section["resolvers"] = [{"unbound": f"127.0.0.1:{unbound.control_port}",
                                              "address": f"127.0.0.1:{unbound.port}"}]
        client = Client(resolver, named.records[0])
        try:
            pair.start("a")
            pair.wait_leader("a")
            pair.start("b")
            pair.wait_candidates("a", "b")
            pair.wait_dns("a")
            client.start()
            wait_until(lambda: answer(resolver, named.records[0], "A", 1.0) == (SITE_VALUES["a"],), 10,
                       what="unbound to answer site a")
            time.sleep(2.5)   # steady state: b in its blocking read, a's answer cached
            fault = time.monotonic()
            pair.toy("a").fail()
            wait_until(lambda: pair.dns_answer() == (SITE_VALUES["b"],), 60, step=AUTHORITATIVE_EVERY_S,
                       what="the authoritative server to answer site b", logs=pair.logs)
            authoritative = time.monotonic() - fault
            wait_until(lambda: client.first_b is not None, RUN_BOUND_S, step=0.01,
                       what="the client to get site b", logs=pair.logs)
            return {"authoritative_s": round(authoritative, 3), "client_s": round(client.first_b - fault, 3),
                    "client_errors": client.errors}
        finally:
            try:
                client.stop()
            finally:
                pair.close()   # the agents, whatever stopping the client did


def _figures(row: dict) -> str:
    return f"{row['median_s']:.2f} / {row['p95_s']:.2f} / {row['max_s']:.2f} s" if row.get("runs") else "-"


def table_lines(report: dict) -> list[str]:
    """The README's "what clients see" table, from bench/results/cutover.json."""
    lines = [f"Recorded {report['at']} (`bench/results/cutover.json`, {report['machine']['cpus']} cores): "
             "site a's service fails; median / p95 / max.", "",
             "| case | resolver flushed | record TTL | runs | fault -> authoritative | fault -> client |",
             "|---|---|---|---|---|---|"]
    for case, result in report["cases"].items():
        flushed, ttl = CASE.fullmatch(case).groups()
        runs = result["client"].get("runs", 0)
        failed = len(result.get("failures", []))
        lines.append(f"| {case} | {'yes' if flushed == 'flushed' else 'no'} | {ttl} s | {runs}"
                     + (f" ({failed} failed)" if failed else "")
                     + f" | {_figures(result['authoritative'])} | {_figures(result['client'])} |")
    return lines


def render_readme(report: dict, readme: Path = README) -> None:
    render(readme, "cutover", table_lines(report))


def run_case(root: Path, consul: ConsulDev, named: NamedServer, case: str, runs: int, deadline: float) -> dict:
    rows, failures = [], []
    for run in range(runs):
        if time.monotonic() > deadline:
            failures.append(f"run {run + 1}: not started, the invocation's time budget ran out")
            print(f"{case:16} run {run + 1:2}/{runs}: NOT STARTED (time budget)", flush=True)
            continue
        workdir = root / f"{case}-{run}"
        workdir.mkdir()
        try:
            row = one_run(workdir, consul, named, case)
        except (AssertionError, RuntimeError) as error:
            failures.append(f"run {run + 1}: {str(error)[:2000]}")
            print(f"{case:16} run {run + 1:2}/{runs}: FAILED {str(error)[:300]}", flush=True)
            continue
        rows.append(row)
        print(f"{case:16} run {run + 1:2}/{runs}: authoritative {row['authoritative_s']:.3f}s, "
              f"client {row['client_s']:.3f}s", flush=True)
    return {"authoritative": summarise([r["authoritative_s"] for r in rows]),
            "client": summarise([r["client_s"] for r in rows]),
            "runs": rows, "failures": failures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--budget-minutes", type=float, default=9.5,
                        help="runs not started by then are reported as such (one invocation < 10 min)")
    args = parser.parse_args()
    cases = args.cases.split(",")
    if any(not CASE.fullmatch(case) for case in cases) or args.runs < 1:
        parser.error(f"cases are flushed-ttlN or unflushed-ttlN (e.g. {', '.join(CASES)}); --runs >= 1")
    reason = preflight()
    if reason:
        parser.exit(2, f"bench/cutover.py: {reason}\n")
    deadline = time.monotonic() + args.budget_minutes * 60
    results = {}
    with tempfile.TemporaryDirectory(prefix="consulha-cutover-") as tmp:
        root = Path(tmp)
        with ConsulDev(root / "consul") as consul, NamedServer(root / "named") as named:
            for case in cases:
                results[case] = run_case(root, consul, named, case, args.runs, deadline)
    out = RESULTS / "cutover.json"
    report = {"what": "site a's service fails -> the authoritative server / a client behind unbound "
                      "answers site b (s)",
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "cases": {**(json.loads(out.read_text())["cases"] if out.exists() else {}), **results}}
    out.write_text(json.dumps(report, indent=1) + "\n")
    print("\n".join(table_lines(report)))
    render_readme(report)
    print(f"\nwritten to {out} and the README's table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
