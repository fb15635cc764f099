"""The whole three-site lab as one object: namespaces, the Consul cluster, BIND, toy services and
the consulha agents; `reset()` puts it in the state every scenario starts from."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Iterable

from lab.hooklog import hook_calls, recording_hooks
from lab.invariants import Sample
from lab.netns import CLIENTS, GROUP, SERVERS, NetLab, in_netns
from lab.nsconsul import ConsulNode
from lab.nshosts import NsAgentProcess, NsNamedServer
from lab.observer import Sampler, http_json, read_dns, read_leader_key
from lab.pair import SITE_VALUES, wait_until
from lab.site import http_service, site_config, write_config
from lab.toy import ToyService


class ChaosLab:
    """Sites a and b (server + app host) and witness w on one Raft cluster, BIND, two consulha
    agents, a toy service per site. `reset()` brings it to: a leads, DNS names a, b standby."""

    values = SITE_VALUES

    def __init__(self, workdir: str | Path):
        self.workdir = Path(workdir)
        self.net = NetLab(self.workdir)
        self.consul: dict[str, ConsulNode] = {}
        self.named: NsNamedServer | None = None
        self.toys: dict[str, ToyService] = {}
        self.agents: dict[str, NsAgentProcess] = {}
        self.sampler: Sampler | None = None
        self.scenario = "setup"
        self.transitions_path = self.workdir / "transitions-setup.jsonl"
        self.session_overrides: dict = {}  # extra `session:` keys for this scenario's agents
        self.section_overrides: dict = {}  # extra top-level sections (election, ...) for them
        self.record_hooks = False          # on_promote / on_demote count their calls (hook_calls)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "ChaosLab":
        self.net.create()
        for host in SERVERS:
            self.consul[host] = ConsulNode(self.net, host, server=True).start()
        for host in CLIENTS:
            self.consul[host] = ConsulNode(self.net, host, server=False).start()
        self.named = NsNamedServer(self.net, self.workdir / "named").start()
        for site in ("a", "b"):
            host = f"h{site}"
            self.toys[site] = in_netns(self.net.ns(host), lambda s=site: ToyService(f"api-{s}").start())
        self.wait_cluster()
        return self

    def close(self) -> None:
        if self.sampler:
            self.sampler.stop()
        for agent in self.agents.values():
            try:
                agent.kill()
            except Exception:  # noqa: BLE001 - teardown must go on
                pass
        for toy in self.toys.values():
            try:
                toy.stop()
            except Exception:  # noqa: BLE001
                pass
        if self.named:
            self.named.stop()
        for node in self.consul.values():
            node.kill()
        self.net.destroy()

    # -- consul ---------------------------------------------------------------------------------

    def api(self, path: str, method: str = "GET", body: bytes | None = None,
            hosts: Iterable[str] = SERVERS, timeout: float = 1.0) -> tuple[int, object]:
        """First non-error answer of a Consul HTTP API call via the servers (or `hosts`)."""
        status, answer = 0, None
        for host in hosts:
            status, answer = self.net.observe(http_json, self.net.addr(host), path, timeout, method, body)
            if 200 <= status < 300 or status == 404:
                return status, answer
        return status, answer

    def raft_leader(self) -> str | None:
        """The host (sa/sb/sw) of the current Raft leader, or None."""
        status, answer = self.api("/v1/status/leader")
        if status == 200 and isinstance(answer, str) and answer:
            ip = answer.split(":")[0]
            for host in SERVERS:
                if self.net.addr(host) == ip:
                    return host
        return None

    def cluster_healthy(self) -> bool:
        for host in SERVERS:
            status, answer = self.net.observe(http_json, self.net.addr(host), "/v1/status/leader")
            if status != 200 or not answer:
                return False
        status, members = self.api("/v1/agent/members")
        if status != 200 or len([m for m in members if m.get("Status") == 1]) != 5:
            return False
        for host in CLIENTS:
            status, checks = self.api(f"/v1/health/node/{self.consul[host].name}?consistent")
            if status != 200 or not any(c["CheckID"] == "serfHealth" and c["Status"] == "passing"
                                        for c in checks or []):
                return False
        return True

    def wait_cluster(self, timeout: float = 60.0) -> None:
        for node in self.consul.values():
            node.resume()
            node.start()
        wait_until(self.cluster_healthy, timeout, step=0.2,
                   what="Consul cluster: a Raft leader, 5 members alive, both app hosts passing\n"
                   + "\n".join(f"--- {h}\n{n.log_tail(8)}" for h, n in self.consul.items()))

    # -- agents ---------------------------------------------------------------------------------

    def config(self, site: str) -> Path:
        assert self.named is not None
        dns_server = f"{self.named.address[0]}:53"
        dns_section = {
            "zone": self.named.zone, "record": self.named.records[0], "server": dns_server,
            "verify": [dns_server],
            "tsig": {"name": self.named.key_name, "secret_file": str(self.named.tsig_key_file())},
        }
        services = [http_service("api", self.toys[site].url)]
        document = site_config(site, "http://127.0.0.1:8500", dns_section, services,
                               self.values[site], group=GROUP,
                               session={"ttl": "10s", "lock_delay": "1s", "heartbeat_ttl": "3s",
                                        **self.session_overrides},
                               **self.section_overrides,
                               **({"hooks": recording_hooks(self.hooks_path(site))} if self.record_hooks else {}))
        return write_config(self.workdir / f"{site}.yaml", document)

    def start_agent(self, site: str) -> NsAgentProcess:
        agent = NsAgentProcess(self.net, f"h{site}", self.config(site),
                               self.workdir / f"agent-{site}-{self.scenario}.log",
                               self.transitions_path)
        self.agents[site] = agent.start()
        return agent

    def stop_agents(self) -> None:
        for agent in self.agents.values():
            agent.stop(timeout=8)
        self.agents.clear()

    # -- observation ----------------------------------------------------------------------------

    def leader(self) -> tuple[str | None, int | None]:
        """(site, epoch) of the leader key's holder now (None, None when free or unreadable)."""
        ok, entry, value = self.net.observe(read_leader_key, [self.net.addr(s) for s in SERVERS])
        if ok and entry and entry.get("Session") and value:
            return value.get("site"), value.get("epoch")
        return None, None

    def candidate(self, site: str) -> bool:
        status, body = self.api(f"/v1/kv/consulha/{GROUP}/candidates/{site}?consistent")
        return status == 200 and bool(body) and bool(body[0].get("Session"))

    def dns(self) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
        return self.net.observe(read_dns, self.net.addr("dns"))

    def names(self, sample: Sample, site: str) -> bool:
        """DNS names `site` and the lock key shows `site` holding with the epoch DNS carries."""
        return (sample.dns_values == (self.values[site],) and sample.holder_site == site
                and sample.fence_epoch == sample.holder_epoch and sample.fence_site == site)

    def wait_dns_names(self, site: str, timeout: float) -> Sample:
        assert self.sampler is not None
        return self.sampler.wait(lambda s: self.names(s, site), timeout,
                                 what=f"DNS and lock on {site}", logs=self.logs)

    def hooks_path(self, site: str) -> Path:
        return self.workdir / f"hooks-{site}-{self.scenario}.log"

    def hook_calls(self, site: str) -> list[tuple[str, str]]:
        """(event, epoch) of every hook call of `site`'s agent in this scenario."""
        return hook_calls(self.hooks_path(site))

    def failures(self) -> dict:
        """The group's flap-damping records, as `consulha status --json` shows them."""
        status, entries = self.api(f"/v1/kv/consulha/{GROUP}/control/failures/?recurse")
        if status != 200 or not entries:
            return {}
        return {entry["Key"].rsplit("/", 1)[1]: json.loads(base64.b64decode(entry["Value"]))
                for entry in entries if entry.get("Value")}

    def transitions(self):
        from lab.invariants import load_transitions
        return load_transitions(self.transitions_path)

    def logs(self, chars: int = 2500) -> str:
        return "\n".join(f"--- agent {site} ({self.scenario})\n{agent.log_text()[-chars:]}"
                         for site, agent in self.agents.items())

    # -- scenarios ------------------------------------------------------------------------------

    def reset(self, scenario: str, timeout: float = 60.0, sections: dict | None = None,
              record_hooks: bool = False, **session) -> Sample:
        """Fresh agents, healed network, every process running, healthy toys, no failures
        recorded (flap damping); then a leads with DNS on a and b is a standby. Starts the
        scenario's sampler; returns the steady sample. `session`: extra keys of the agents'
        `session:` section, `sections`: extra top-level sections, `record_hooks`: count the
        hooks' calls (`hook_calls`), all for this scenario."""
        if self.sampler:
            self.sampler.stop()
            self.sampler = None
        self.stop_agents()
        self.net.heal()
        for toy in self.toys.values():
            toy.recover()
        self.scenario = scenario
        self.session_overrides = dict(session)
        self.section_overrides = dict(sections or {})
        self.record_hooks = record_hooks
        self.transitions_path = self.workdir / f"transitions-{scenario}.jsonl"
        self.transitions_path.unlink(missing_ok=True)
        self.wait_cluster()
        # The previous scenario's losses must not damp this one's sites.
        self.api(f"/v1/kv/consulha/{GROUP}/control/failures/?recurse", method="DELETE")
        self.sampler = Sampler(self.net, self.workdir / f"samples-{scenario}.jsonl").start()
        self.start_agent("a")
        steady = self.wait_dns_names("a", timeout)
        self.start_agent("b")
        wait_until(lambda: self.candidate("b"), 30, step=0.1, what="b standby", logs=self.logs)
        return steady
