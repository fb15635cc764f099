"""`make demo`: two sites on a local Consul and BIND; site a's service fails; watch b take over.

Starts everything on free loopback ports in a temp dir, prints the status table, breaks site a's
health check, measures until BIND answers site b, prints the status again and stops everything
it started (also on Ctrl-C or an error).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from lab.consul import ConsulDev
from lab.named import NamedServer
from lab.pair import SITE_VALUES, SitePair, wait_until

console = Console()


def show_status(config: str) -> None:
    subprocess.run([sys.executable, "-m", "consulha.cli", "status", "-c", config], check=False)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="consulha-demo-") as workdir:
        work = Path(workdir)
        console.rule("[bold]consulha demo")
        with ConsulDev(work / "consul") as consul, \
                NamedServer(work / "named", initial={"app.example.test.": "192.0.2.99"}) as named:
            console.print(f"Consul  {consul.address} (UI: {consul.address}/ui)")
            console.print(f"BIND    127.0.0.1:{named.port}, zone {named.zone}, TSIG key {named.key_name}")
            pair = SitePair(work, consul, named)
            try:
                for site in ("a", "b"):
                    pair.start(site)
                    pair.wait_candidates(*sorted({"a", site}), timeout=20)
                leader = pair.wait_leader("a")
                pair.wait_dns("a")
                console.print(f"\nsite a leads (epoch {leader['epoch']}); DNS answers "
                              f"{pair.dns_answer()}\n")
                show_status(pair.config("a"))
                console.rule("failing site a's service 'api'")
                broke_at = time.monotonic()
                pair.toy("a").fail()
                wait_until(lambda: pair.dns_answer() == (SITE_VALUES["b"],), 20, step=0.01,
                           what="DNS to answer site b")
                took = time.monotonic() - broke_at
                leader = pair.leader()
                console.print(f"\n[bold green]failover done[/]: DNS answers {pair.dns_answer()} "
                              f"(site b, epoch {leader['epoch']}) {took:.2f}s after the check "
                              f"started failing\n")
                show_status(pair.config("b"))
            finally:
                pair.close()
        console.rule("stopped everything the demo started")
    return 0


if __name__ == "__main__":
    sys.exit(main())
