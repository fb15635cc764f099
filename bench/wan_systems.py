"""The systems bench/wan.py measures side by side, and the settings each WAN profile runs with.

`System` is the protocol both systems implement (consulha here, the ZooKeeper design in
bench/peers/): the runner starts them in the same lab, gives both the same faults, and reads
what each believes (`active_sites`, `events`) and what DNS answers for each (`dns_site`).

Times in `events()` are CLOCK_MONOTONIC seconds (system-wide: the agents' clocks and the
runner's agree on one machine). The settings per profile are what docs/wan.md recommends; the
runner applies them before a profile's soak (the Consul ones restart the lab's Consul agents).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import yaml

from lab.chaoslab import ChaosLab
from lab.invariants import Sample, Window, check
from lab.netns import RECORD, NetLab
from lab.nsconsul import ConsulNode
from lab.observer import Sampler, read_dns
from lab.site import write_config


class System(Protocol):
    name: str       # "consulha", "consulha-consul-only" or "zookeeper"
    record: str     # the DNS name it manages

    def start(self, lab: "WanLab") -> None: ...   # a fresh run, also when running: agents
    #                                                 (re)started, site a active, DNS answers a
    def stop(self) -> None: ...                   # every process of the system down
    def active_sites(self) -> list[str]: ...     # sites that believe they are active now
    def dns_site(self, server: str) -> str | None: ...  # where the record points on `server`
    def fail_service(self, site: str) -> None: ...
    def heal_service(self, site: str) -> None: ...
    def kill_agent(self, site: str) -> None: ...
    def start_agent(self, site: str) -> None: ...
    def events(self) -> list[dict]: ...  # {"t", "site", "event": active|standby|dns_write}


@dataclass(frozen=True)
class AgentSettings:
    """The consulha settings a profile runs with (durations as the config file spells them)."""

    ttl: str = "10s"
    lock_delay: str = "1s"
    heartbeat_ttl: str = "3s"
    node_checks: tuple[str, ...] = ("serfHealth",)
    check_interval: str = "1s"
    failures_before_critical: int = 1   # the check's debounce (1 = none)

    def session(self) -> dict:
        return {"ttl": self.ttl, "lock_delay": self.lock_delay, "heartbeat_ttl": self.heartbeat_ttl,
                "node_checks": list(self.node_checks)}

    def check(self) -> dict:
        return {"interval": self.check_interval, "failures_before_critical": self.failures_before_critical}


@dataclass(frozen=True)
class ConsulSettings:
    """Consul's own timing for the stretched cluster. `gossip_lan`: Consul's `gossip_lan` keys
    (serf/memberlist: probe_interval, probe_timeout, suspicion_mult ...); empty = Consul's."""

    raft_multiplier: int = 1
    gossip_lan: tuple[tuple[str, str | int], ...] = ()

    def config(self) -> dict:
        extra: dict = {"performance": {"raft_multiplier": self.raft_multiplier}}
        if self.gossip_lan:
            extra["gossip_lan"] = dict(self.gossip_lan)
        return extra


@dataclass(frozen=True)
class ProfileSettings:
    agent: AgentSettings = field(default_factory=AgentSettings)
    consul: ConsulSettings = field(default_factory=ConsulSettings)
    why: str = "the defaults (consulha's, and the consul role's raft_multiplier 1)"


_DEFAULTS = ProfileSettings()
# Up to continental the defaults must do (issue 17); bad and flapping start from values chosen
# for their conditions, to be confirmed or changed by the recorded run.
SETTINGS: dict[str, ProfileSettings] = {
    "lan": _DEFAULTS, "metro": _DEFAULTS, "regional": _DEFAULTS, "continental": _DEFAULTS,
    "bad": ProfileSettings(
        replace(_DEFAULTS.agent, lock_delay="3s"), ConsulSettings(raft_multiplier=2),
        why="a 1 s lease is shorter than a consistent read that loses a packet at 150 ms RTT "
            "(TCP retransmits after >= 200 ms, twice per read); Raft timeouts x2"),
    "flapping": ProfileSettings(
        replace(_DEFAULTS.agent, lock_delay="4s"), _DEFAULTS.consul,
        why="the lease must outlast a 2 s cut of the a-b link plus a read"),
}


class TunedConsulNode(ConsulNode):
    """A lab Consul agent with a profile's Consul settings merged into its config."""

    def __init__(self, lab: NetLab, host: str, server: bool, settings: ConsulSettings):
        super().__init__(lab, host, server)
        self.settings = settings

    def _config(self) -> dict:
        return {**super()._config(), **self.settings.config()}


class WanLab(ChaosLab):
    """The chaos lab, with the service check's interval and debounce and Consul's timing set per
    profile (the session keys go through `reset(**session)` as in the chaos suite)."""

    def __init__(self, workdir: str | Path):
        super().__init__(workdir)
        self.check_settings: dict = {}
        self.consul_settings = ConsulSettings()   # what lab.nsconsul.ConsulNode runs with

    def config(self, site: str) -> Path:
        path = super().config(site)
        document = yaml.safe_load(path.read_text())
        for service in document["services"]:
            service["check"].update(self.check_settings)
        return write_config(path, document)

    def retune_consul(self, settings: ConsulSettings) -> bool:
        """Restart every Consul agent with `settings` (same data dirs: the cluster keeps its
        state); False when they already run with them."""
        if settings == self.consul_settings:
            return False
        for host, node in list(self.consul.items()):
            node.kill()
            self.consul[host] = TunedConsulNode(self.net, host, node.server, settings).start()
        self.consul_settings = settings
        self.wait_cluster()
        return True


_DNS_WRITTEN = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) .*DNS written with epoch (\d+)")


def dns_writes(log_text: str, site: str, wall_minus_monotonic: float) -> list[dict]:
    """The agent's successful DNS writes, from its text log lines (local wall time, ms)."""
    found = []
    for line in log_text.splitlines():
        match = _DNS_WRITTEN.match(line)
        if match:
            wall = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")) + int(match.group(2)) / 1000
            found.append({"t": wall - wall_minus_monotonic, "site": site, "event": "dns_write",
                          "epoch": int(match.group(3))})
    return found


class ConsulhaSystem:
    """consulha's two agents in the lab (`ChaosLab.reset`): a leads, b stands by. With
    `leader_probes=False` it is the path before own probes (the leader hears of a failing check
    from Consul, and the standby waits out the lock-delay), named "consulha-consul-only": one lab
    runs one of the two at a time (the agents' hosts and record are the same)."""

    record = RECORD

    def __init__(self, settings: AgentSettings, leader_probes: bool = True):
        self.settings = settings
        self.leader_probes = leader_probes
        self.name = "consulha" if leader_probes else "consulha-consul-only"
        self.lab: WanLab | None = None
        self.runs = 0
        self.steady: Sample | None = None

    def start(self, lab: WanLab) -> None:
        self.lab = lab
        self.runs += 1
        lab.check_settings = self.settings.check()
        self.steady = lab.reset(f"wan-{self.runs}", sections={"election": {"leader_probes": self.leader_probes}},
                                **self.settings.session())

    def resample(self, period: float, max_duration: float) -> None:
        """A new sampler of the leader key and the fence (the lab's stops after 240 s): for a soak."""
        self.lab.sampler.stop()
        self.lab.sampler = Sampler(self.lab.net, self.lab.workdir / f"samples-wan-{self.runs}-soak.jsonl",
                                          period=period, max_duration=max_duration).start()

    def violations(self, windows: list[Window], process_ends: dict[str, list[float]]) -> list[str]:
        """The chaos suite's invariants over this run's transition files and samples."""
        samples = [s for s in self.lab.sampler.samples if s.t >= self.steady.t]
        return check(self.lab.transitions(), samples, self.lab.values, windows, process_ends).violations

    def stop(self) -> None:
        if self.lab.sampler:
            self.lab.sampler.stop()
        self.lab.stop_agents()

    def active_sites(self) -> list[str]:
        role: dict[str, str] = {}
        for transition in self.lab.transitions():
            role[transition.site] = transition.role
        return sorted(site for site, now in role.items() if now == "leader")

    def dns_site(self, server: str) -> str | None:
        ok, values, _ = read_dns(server)
        sites = [site for site, value in self.lab.values.items() if values == (value,)]
        return sites[0] if ok and sites else None

    def fail_service(self, site: str) -> None:
        self.lab.toys[site].fail()

    def heal_service(self, site: str) -> None:
        self.lab.toys[site].recover()

    def kill_agent(self, site: str) -> None:
        self.lab.agents[site].kill()

    def start_agent(self, site: str) -> None:
        self.lab.start_agent(site)

    def events(self) -> list[dict]:
        found = [{"t": t.monotonic, "site": t.site,
                  "event": "active" if t.role == "leader" else "standby", "cause": t.cause}
                 for t in self.lab.transitions()]
        offset = time.time() - time.monotonic()
        for site, agent in self.lab.agents.items():
            found += dns_writes(agent.log_text(), site, offset)
        return sorted(found, key=lambda event: event["t"])
