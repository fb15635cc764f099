"""Shared fixtures: a real Consul server, a real BIND, toy services and agent processes."""

from __future__ import annotations

import json
import time
from typing import Callable

import dns.message
import dns.query
import dns.rdatatype
import pytest

from consulha.config import ConsulConfig
from consulha.consul_store import ConsulStore
from consulha.lab.consul import ConsulDev
from consulha.lab.site import AgentProcess, http_service, site_config, write_config
from consulha.lab.toy import ToyService
from tests.conftest_named import *  # noqa: F401,F403  (named, make_dns_config)

SITE_VALUES = {"a": "192.0.2.1", "b": "192.0.2.2"}


def wait_until(predicate: Callable[[], object], timeout: float, step: float = 0.05,
               what: str = "condition") -> object:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def consul_server(tmp_path):
    server = ConsulDev(tmp_path / "consul")
    server.start()
    yield server
    server.stop()


class Lab:
    """Two sites (a, b) of group `app` on one Consul and one BIND, as in the demo."""

    def __init__(self, tmp_path, consul: ConsulDev, named):
        self.tmp = tmp_path
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

    def config(self, site: str, services: list[dict] | None = None, **sections) -> str:
        if services is None:
            toy = self.toys.setdefault(site, ToyService(f"api-{site}").start())
            services = [http_service("api", toy.url)]
        document = site_config(site, self.consul.address, self.dns_section, services,
                               SITE_VALUES[site], **sections)
        return str(write_config(self.tmp / f"{site}.yaml", document))

    def start(self, site: str, config: str | None = None) -> AgentProcess:
        agent = AgentProcess(config or self.config(site), self.tmp / f"agent-{site}.log",
                             self.tmp / "transitions.jsonl")
        self.agents[site] = agent.start()
        return agent

    def leader(self) -> dict | None:
        """The leader key's value while a session holds it, else None."""
        _, entry = self.store.get("consulha/app/leader")
        return entry.json() if entry and entry.session else None

    def wait_leader(self, site: str | None = None, timeout: float = 20.0) -> dict:
        def check():
            leader = self.leader()
            return leader if leader and leader.get("epoch") and site in (None, leader["site"]) else None
        return wait_until(check, timeout, what=f"leader {site or 'any'}\n{self.logs()}")

    def dns_answer(self) -> tuple[str, ...]:
        query = dns.message.make_query(self.named.records[0], "A")
        query.flags &= ~dns.flags.RD
        reply = dns.query.udp(query, "127.0.0.1", port=self.named.port, timeout=1)
        return tuple(sorted(rr.to_text() for rrset in reply.answer for rr in rrset))

    def wait_dns(self, site: str, timeout: float = 20.0) -> None:
        wait_until(lambda: self.dns_answer() == (SITE_VALUES[site],), timeout,
                   what=f"DNS to answer site {site}\n{self.logs()}")

    def transitions(self) -> list[dict]:
        path = self.tmp / "transitions.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def logs(self) -> str:
        return "\n".join(f"--- agent {site}\n{agent.log_text()[-3000:]}"
                         for site, agent in self.agents.items())

    def close(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        for toy in self.toys.values():
            toy.stop()


@pytest.fixture
def lab(tmp_path, consul_server, named):
    lab = Lab(tmp_path, consul_server, named)
    yield lab
    lab.close()
