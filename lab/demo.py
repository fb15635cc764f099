"""`make demo`: two sites of one group, each running the three services the conf/ examples
describe (api: HTTP check, worker: script check, db: TCP check), on a local Consul and a BIND
primary with a secondary; one service of the leading site fails and site b takes over.

Starts everything on free loopback ports in a temp dir, prints the status, breaks the service,
prints which service Consul saw fail, the time until every verify server answered site b and the
status again, and stops everything it started (also on Ctrl-C or an error).

    python -m lab.demo [--fail api|worker|db]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from rich.console import Console

from consulha.dns.wire import ask
from lab.consul import ConsulDev
from lab.named import NamedSecondary, NamedServer
from lab.pair import SITE_VALUES, SitePair, wait_until
from lab.ports import free_port
from lab.site import http_service, script_service
from lab.toy import ToyService, ToyTcpService, ToyWorker

CHECK_PROCESS = Path(__file__).resolve().parent.parent / "checks" / "check_process.sh"
SERVICES = ("api", "worker", "db")
console = Console()


class SiteServices:
    """One site's api (HTTP), worker (a process) and db (a TCP port), as in conf/site-a/app.yaml."""

    def __init__(self, site: str):
        self.toys = {"api": ToyService(f"api-{site}").start(),
                     "worker": ToyWorker(f"consulha-demo-worker-{site}").start(),
                     "db": ToyTcpService(f"db-{site}").start()}

    def config(self) -> list[dict]:
        return [http_service("api", self.toys["api"].url),
                script_service("worker", f"{CHECK_PROCESS} {self.toys['worker'].tag}"),
                {"name": "db", "check": {"tcp": self.toys["db"].address, "interval": "1s",
                                         "timeout": "1s"}}]

    def describe(self, service: str) -> str:
        return {"api": f"HTTP check {self.toys['api'].url}",
                "worker": f"script check: {CHECK_PROCESS.name} {self.toys['worker'].tag}",
                "db": f"TCP check {self.toys['db'].address}"}[service]

    def stop(self) -> None:
        for toy in self.toys.values():
            toy.stop()


def critical_checks(consul: ConsulDev, site: str) -> list[str]:
    """The site's critical service checks as Consul reports them: `name: output`."""
    with urllib.request.urlopen(f"{consul.address}/v1/health/state/critical", timeout=2) as reply:
        checks = json.load(reply)
    return [f"{check['ServiceName']}: {check['Output'].strip()[:100]}" for check in checks
            if check["ServiceID"].startswith(f"{SitePair.group}-{site}-")]


def show_status(config: str) -> None:
    subprocess.run([sys.executable, "-m", "consulha.cli", "status", "-c", config], check=False)


def failover(pair: SitePair, servers: dict[str, tuple[str, int]], broke_at: float) -> dict[str, float]:
    """Seconds from `broke_at` until each verify server first answered site b."""
    record, wanted = pair.named.records[0], (SITE_VALUES["b"],)
    answered: dict[str, float] = {}

    def every_server_answers_b() -> bool:
        for name, server in servers.items():
            if name not in answered and ask(server, record, "A", timeout=0.5) == wanted:
                answered[name] = time.monotonic() - broke_at
        return len(answered) == len(servers)

    wait_until(every_server_answers_b, 30, step=0.01, what="every verify server to answer site b",
               logs=pair.logs)
    return answered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fail", choices=SERVICES, default="db", help="which service of site a fails")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="consulha-demo-") as workdir:
        work = Path(workdir)
        console.rule("[bold]consulha demo")
        secondary_port = free_port()
        with ConsulDev(work / "consul") as consul, \
                NamedServer(work / "named", initial={"app.example.test.": "192.0.2.99"},
                            notify_ports=(secondary_port,)) as named:
            with NamedSecondary(work / "secondary", named, port=secondary_port) as secondary:
                servers = {"primary": ("127.0.0.1", named.port), "secondary": ("127.0.0.1", secondary.port)}
                console.print(f"Consul  {consul.address} (UI: {consul.address}/ui)")
                console.print(f"BIND    primary 127.0.0.1:{named.port} (TSIG key {named.key_name}), "
                              f"secondary 127.0.0.1:{secondary.port}; zone {named.zone}")
                run(SitePair(work, consul, named), consul, servers, args.fail)
        console.rule("stopped everything the demo started")
    return 0


def run(pair: SitePair, consul: ConsulDev, servers: dict[str, tuple[str, int]], service: str) -> None:
    pair.dns_section["verify"] = [f"{host}:{port}" for host, port in servers.values()]
    sites: dict[str, SiteServices] = {}
    configs: dict[str, str] = {}
    try:
        for site in ("a", "b"):
            sites[site] = SiteServices(site)
            configs[site] = pair.config(site, services=sites[site].config())
            pair.start(site, configs[site])
            pair.wait_candidates(*sorted({"a", site}), timeout=20)
        leader = pair.wait_leader("a")
        pair.wait_dns("a")
        console.print(f"\nEach site runs {', '.join(SERVICES)}; site a's checks: "
                      + "; ".join(f"{name}: {sites['a'].describe(name)}" for name in SERVICES))
        console.print(f"site a leads (epoch {leader['epoch']}); DNS answers {pair.dns_answer()}\n")
        show_status(configs["a"])
        console.rule(f"site a's service '{service}' fails ({sites['a'].describe(service)})")
        broke_at = time.monotonic()
        sites["a"].toys[service].fail()
        took = failover(pair, servers, broke_at)
        leader = pair.leader()
        # With own probes site a stepped down before Consul's copy of the check failed; it
        # follows within an interval or two.
        failing = wait_until(lambda: critical_checks(consul, "a"), 5, step=0.1,
                             what="Consul to show site a's failing check")
        console.print(f"\nConsul: site a's failing checks: {'; '.join(failing)}")
        console.print(f"[bold green]failover done[/]: site b leads (epoch {leader['epoch']}); every "
                      f"verify server answered {SITE_VALUES['b']} {max(took.values()):.2f}s after "
                      f"'{service}' failed ("
                      + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in took.items()) + ")\n")
        show_status(configs["b"])
    finally:
        pair.close()
        for services in sites.values():
            services.stop()


if __name__ == "__main__":
    sys.exit(main())
