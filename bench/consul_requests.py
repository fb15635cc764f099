#!/usr/bin/env python3
"""Consul requests per second of a steady pair, counted by each agent itself (its
consulha_consul_requests_total, every thread's requests): site a leading, b standing by, over
--seconds. Split into requests the Consul servers answer (KV, sessions, health, catalog: each
consistent read costs the Raft leader a quorum round) and requests only the local agent answers
(its checks, TTL updates, registrations). Targets at the defaults: leader <= 6/s, standby
<= 1.5/s. Writes bench/results/requests.json.

Usage: bench/consul_requests.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.consul import ConsulDev  # noqa: E402
from lab.named import NamedServer  # noqa: E402
from lab.pair import SitePair  # noqa: E402
from lab.ports import free_port  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"leader": 6.0, "standby": 1.5}
SAMPLE = re.compile(r'^consulha_consul_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


def request_counts(port: int) -> dict[str, float]:
    """endpoint -> requests so far, from the agent's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    counts: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
            counts[labels["endpoint"]] += float(match["value"])
    return counts


def local_only(endpoint: str) -> bool:
    """Answered by the local Consul agent without a server round trip."""
    return endpoint.startswith("agent.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    ports = {site: free_port() for site in ("a", "b")}
    with tempfile.TemporaryDirectory(prefix="consulha-requests-") as tmp:
        root = Path(tmp)
        with ConsulDev(root / "consul") as consul, NamedServer(root / "named") as named:
            pair = SitePair(root, consul, named)
            try:
                for site in ("a", "b"):
                    pair.start(site, pair.config(site, metrics={"listen": f"127.0.0.1:{ports[site]}"}))
                    if site == "a":
                        pair.wait_leader("a")
                pair.wait_candidates("a", "b")
                pair.wait_dns("a")
                time.sleep(5)  # past start-up: registration, first DNS write, watch set up
                before = {site: request_counts(port) for site, port in ports.items()}
                began = time.monotonic()
                time.sleep(args.seconds)
                elapsed = time.monotonic() - began
                after = {site: request_counts(port) for site, port in ports.items()}
                assert pair.leader()["site"] == "a", "leadership moved during the measurement"
            finally:
                pair.close()
    results = {}
    for site, role in (("a", "leader"), ("b", "standby")):
        rates = {endpoint: round((after[site][endpoint] - before[site].get(endpoint, 0)) / elapsed, 3)
                 for endpoint in after[site]}
        rates = {endpoint: rate for endpoint, rate in sorted(rates.items()) if rate > 0}
        total = sum(rates.values())
        results[role] = {"per_s": round(total, 2), "target_per_s": TARGETS[role],
                         "servers_per_s": round(sum(r for e, r in rates.items() if not local_only(e)), 2),
                         "local_agent_per_s": round(sum(r for e, r in rates.items() if local_only(e)), 2),
                         "by_endpoint": rates}
    report = {"what": "Consul requests per second of a steady pair, counted by the agents",
              "settings": {"seconds": round(elapsed, 1), "ttl": "10s", "lock_delay": "1s",
                           "heartbeat_ttl": "3s", "check_interval": "1s"},
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": results}
    out = RESULTS / "requests.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("| role | requests/s | to the servers | local agent only | target |\n|---|---|---|---|---|")
    for role, row in results.items():
        print(f"| {role} | {row['per_s']} | {row['servers_per_s']} | {row['local_agent_per_s']} "
              f"| <= {row['target_per_s']} |")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
