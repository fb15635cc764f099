"""Many groups, sites a and b, on one Consul and one BIND: the scale tests and benchmark.

Group i is `gNN` with record gNN.<zone>. Each site runs one service per group, all checked
against one ToyService of that site, so `fail_site("a")` is a site loss: every site-a service
fails at the same instant. A site is served either by one `consulha agent -c DIR` process (the
host mode) or by one process per group (`per_group=True`, the layout before host mode).
"""

from __future__ import annotations

import json
from pathlib import Path

import dns.flags
import dns.message
import dns.query

from consulha.config import ConsulConfig
from consulha.consul.store import ConsulStore
from lab.consul import ConsulDev
from lab.named import NamedServer
from lab.pair import SITE_VALUES, wait_until
from lab.site import AgentProcess, http_service, site_config, write_config
from lab.toy import ToyService


def group_names(count: int) -> list[str]:
    return [f"g{i:02d}" for i in range(count)]


def fleet_records(count: int, zone: str = "example.test.") -> list[str]:
    """The records BIND must grant for `count` groups (start NamedServer with these)."""
    return [f"{group}.{zone}" for group in group_names(count)]


class Fleet:
    def __init__(self, workdir: str | Path, consul: ConsulDev, named: NamedServer, count: int):
        self.tmp = Path(workdir)
        self.consul = consul
        self.named = named
        self.groups = group_names(count)
        self.store = ConsulStore(ConsulConfig(address=consul.address))
        self.toys = {site: ToyService(f"site-{site}").start() for site in SITE_VALUES}
        self.processes: dict[str, list[AgentProcess]] = {}
        self.transitions_path = self.tmp / "transitions.jsonl"

    def config_dir(self, site: str) -> Path:
        return self.tmp / f"site-{site}"

    def write_configs(self, site: str) -> Path:
        """One config file per group in the site's directory; returns the directory."""
        directory = self.config_dir(site)
        directory.mkdir(parents=True, exist_ok=True)
        for group in self.groups:
            dns_section = {
                "zone": self.named.zone, "record": f"{group}.{self.named.zone}",
                "server": f"127.0.0.1:{self.named.port}", "verify": [f"127.0.0.1:{self.named.port}"],
                "tsig": {"name": self.named.key_name, "secret_file": str(self.named.tsig_key_file())},
            }
            document = site_config(site, self.consul.address, dns_section,
                                   [http_service(f"{group}-api", self.toys[site].url)],
                                   SITE_VALUES[site], group=group)
            write_config(directory / f"{group}.yaml", document)
        return directory

    def start(self, site: str, per_group: bool = False) -> list[AgentProcess]:
        """Serve the site's groups: one host process, or one process per group."""
        directory = self.write_configs(site)
        targets = sorted(directory.glob("*.yaml")) if per_group else [directory]
        self.processes[site] = [
            AgentProcess(target, self.tmp / f"agent-{site}-{Path(target).stem}.log",
                         self.transitions_path).start() for target in targets]
        return self.processes[site]

    def leaders(self) -> dict[str, str]:
        """group -> site holding its lock (with an epoch written), from one recursive read."""
        _, entries = self.store.get_prefix("consulha/")
        held = {}
        for entry in entries:
            group, _, name = entry.key.removeprefix("consulha/").partition("/")
            record = entry.json() if name == "leader" and entry.session else None
            if record and record.get("epoch"):
                held[group] = record["site"]
        return held

    def candidates(self) -> dict[str, set[str]]:
        _, entries = self.store.get_prefix("consulha/")
        found: dict[str, set[str]] = {group: set() for group in self.groups}
        for entry in entries:
            group, _, name = entry.key.removeprefix("consulha/").partition("/")
            if name.startswith("candidates/") and entry.session and group in found:
                found[group].add(name.removeprefix("candidates/"))
        return found

    def dns_answer(self, group: str) -> tuple[str, ...]:
        query = dns.message.make_query(f"{group}.{self.named.zone}", "A")
        query.flags &= ~dns.flags.RD
        reply = dns.query.udp(query, "127.0.0.1", port=self.named.port, timeout=1)
        return tuple(sorted(rr.to_text() for rrset in reply.answer for rr in rrset))

    def groups_answering(self, site: str) -> set[str]:
        return {g for g in self.groups if self.dns_answer(g) == (SITE_VALUES[site],)}

    def wait_settled(self, timeout: float) -> None:
        """Site a leads every group and DNS says so; site b is a candidate in every group."""
        wait_until(lambda: self.leaders() == {g: "a" for g in self.groups}, timeout,
                   step=0.2, what="site a leading every group", logs=self.logs)
        wait_until(lambda: len(self.groups_answering("a")) == len(self.groups), timeout,
                   step=0.2, what="DNS naming site a for every group", logs=self.logs)

    def wait_candidates(self, timeout: float) -> None:
        wait_until(lambda: all(c == {"a", "b"} for c in self.candidates().values()), timeout,
                   step=0.2, what="both sites candidates in every group", logs=self.logs)

    def transitions(self) -> list[dict]:
        if not self.transitions_path.exists():
            return []
        return [json.loads(line) for line in self.transitions_path.read_text().splitlines()]

    def promotions_since(self, monotonic: float) -> dict[str, list[str]]:
        """group -> the sites that became leader after `monotonic` (in order)."""
        found: dict[str, list[str]] = {group: [] for group in self.groups}
        for t in self.transitions():
            if t["role"] == "leader" and t["monotonic"] >= monotonic and t.get("group") in found:
                found[t["group"]].append(t["site"])
        return found

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {p.log_path.name} ({p.describe()})\n{p.log_text()[-tail:]}"
                         for processes in self.processes.values() for p in processes[:2])

    def stop(self, site: str) -> list[int | None]:
        return [p.stop(30) for p in self.processes.pop(site, [])]

    def close(self) -> None:
        for site in list(self.processes):
            self.stop(site)
        for toy in self.toys.values():
            toy.stop()
