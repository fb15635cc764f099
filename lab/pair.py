"""Two local sites (a and b) of one group on one Consul and one BIND: the demo, the integration
tests and the benchmarks all drive this."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import dns.flags
import dns.message
import dns.query

from consulha.config import ConsulConfig
from consulha.consul.store import ConsulStore
from lab.consul import ConsulDev
from lab.named import NamedServer
from lab.site import AgentProcess, http_service, site_config, write_config
from lab.toy import ToyService

SITE_VALUES = {"a": "192.0.2.1", "b": "192.0.2.2"}


def wait_until(predicate: Callable[[], object], timeout: float, step: float = 0.02,
               what: str = "condition", logs: Callable[[], str] | None = None) -> object:
    """Poll `predicate` until it returns something truthy; AssertionError after `timeout`,
    naming `what` and followed by `logs()` as they are at that moment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(step)
    message = f"timed out after {timeout}s waiting for {what}"
    raise AssertionError(f"{message}\n{logs()}" if logs else message)


class SitePair:
    """Sites a and b of group `app`; each site's service `api` is a ToyService you can break."""

    group = "app"

    def __init__(self, workdir: str | Path, consul: ConsulDev, named: NamedServer):
        self.tmp = Path(workdir)
        self.consul = consul
        self.named = named
        self.store = ConsulStore(ConsulConfig(address=consul.address))
        self.toys: dict[str, ToyService] = {}
        self.agents: dict[str, AgentProcess] = {}
        self.dns_section = {
            "zone": named.zone, "record": named.records[0],
            "server": f"127.0.0.1:{named.port}", "verify": [f"127.0.0.1:{named.port}"],
            "tsig": {"name": named.key_name, "secret_file": str(named.tsig_key_file())},
        }

    @property
    def leader_key(self) -> str:
        return f"consulha/{self.group}/leader"

    def toy(self, site: str) -> ToyService:
        if site not in self.toys:
            self.toys[site] = ToyService(f"api-{site}").start()
        return self.toys[site]

    def config(self, site: str, services: list[dict] | None = None, **sections) -> str:
        """Write site's config file (default: one HTTP-checked service `api`); returns its path."""
        if services is None:
            services = [http_service("api", self.toy(site).url)]
        document = site_config(site, self.consul.address, self.dns_section, services,
                               SITE_VALUES[site], group=self.group, **sections)
        return str(write_config(self.tmp / f"{site}.yaml", document))

    def start(self, site: str, config: str | None = None) -> AgentProcess:
        agent = AgentProcess(config or self.config(site), self.tmp / f"agent-{site}.log",
                             self.tmp / "transitions.jsonl")
        self.agents[site] = agent.start()
        return agent

    def leader(self) -> dict | None:
        """The leader key's value while a session holds it, else None."""
        _, entry = self.store.get(self.leader_key)
        return entry.json() if entry and entry.session else None

    def candidates(self) -> list[str]:
        _, entries = self.store.get_prefix(f"consulha/{self.group}/candidates/")
        return sorted(e.key.rsplit("/", 1)[1] for e in entries if e.session)

    def wait_leader(self, site: str | None = None, timeout: float = 20.0) -> dict:
        def check():
            leader = self.leader()
            return leader if leader and leader.get("epoch") and site in (None, leader["site"]) else None
        return wait_until(check, timeout, what=f"leader {site or 'any'}", logs=self.logs)

    def wait_candidates(self, *sites: str, timeout: float = 20.0) -> None:
        wait_until(lambda: self.candidates() == sorted(sites), timeout,
                   what=f"candidates {sites}", logs=self.logs)

    def dns_answer(self) -> tuple[str, ...]:
        query = dns.message.make_query(self.named.records[0], "A")
        query.flags &= ~dns.flags.RD
        reply = dns.query.udp(query, "127.0.0.1", port=self.named.port, timeout=1)
        return tuple(sorted(rr.to_text() for rrset in reply.answer for rr in rrset))

    def named_fence(self) -> tuple[str, ...]:
        """The fence TXT record's strings as BIND serves them."""
        query = dns.message.make_query("_consulha." + self.named.records[0], "TXT")
        reply = dns.query.udp(query, "127.0.0.1", port=self.named.port, timeout=1)
        return tuple(sorted(rr.to_text() for rrset in reply.answer for rr in rrset))

    def soa_serial(self) -> int:
        """The zone's SOA serial: BIND bumps it once per applied dynamic update."""
        query = dns.message.make_query(self.named.zone, "SOA")
        reply = dns.query.udp(query, "127.0.0.1", port=self.named.port, timeout=1)
        return reply.answer[0][0].serial

    def wait_dns(self, site: str, timeout: float = 20.0) -> None:
        wait_until(lambda: self.dns_answer() == (SITE_VALUES[site],), timeout,
                   what=f"DNS to answer site {site}", logs=self.logs)

    def transitions(self) -> list[dict]:
        path = self.tmp / "transitions.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def logs(self) -> str:
        return "\n".join(f"--- agent {site} ({agent.describe()})\n{agent.log_text()[-3000:]}"
                         for site, agent in self.agents.items())

    def close(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        for toy in self.toys.values():
            toy.stop()
