"""The ZooKeeper design as one of the systems bench/wan.py runs side by side with consulha (the
`System` protocol of bench/wan_systems.py): the ensemble on sa, sb, sw and a kazoo site agent on
ha and hb, watching the lab's toy services, managing its own record in the lab's zone.

Each `start()` runs the pair under a fresh znode root (/consulha-zk/<run>), so a run never
inherits the previous run's `active` znode, and its own event files (zk-<run>-events-<site>.jsonl).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query

from bench.peers.ensemble import ZkEnsemble
from lab.chaoslab import ChaosLab
from lab.netns import PEER_RECORD
from lab.pair import wait_until

REPO = Path(__file__).resolve().parents[2]
ROLES = ("active", "standby")


def read_a(server: str, record: str, timeout: float = 0.25) -> tuple[str, ...] | None:
    """The A values `server` answers for `record` now, authoritative (None: no answer)."""
    query = dns.message.make_query(record, "A")
    query.flags &= ~dns.flags.RD
    try:
        reply = dns.query.udp(query, server, port=53, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return None
    return tuple(sorted(rr.to_text() for rrset in reply.answer for rr in rrset))


class ZkSystem:
    """name/record, start/stop, active_sites, dns_site, fail/heal_service, kill/start_agent,
    events: see the `System` protocol. `start` and `stop` are called from the runner's thread;
    `dns_site` from a thread that can reach `server` (the observer namespace), as consulha's."""

    name = "zookeeper"
    record = PEER_RECORD

    def __init__(self) -> None:
        self.lab: ChaosLab | None = None
        self.ensemble: ZkEnsemble | None = None
        self.agents: dict[str, subprocess.Popen] = {}
        self.runs = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, lab: ChaosLab, timeout: float = 60.0) -> None:
        """The ensemble (if not running), then agent a until it is active with DNS on a, then
        agent b until it is the standby. Agents of an earlier run still running are killed
        first (they would go on writing the same record); both toy services are made healthy."""
        for site in list(self.agents):
            self.kill_agent(site)
        self.lab = lab
        self.runs += 1
        for toy in lab.toys.values():
            toy.recover()
        if self.ensemble is None or self.ensemble.lab is not lab.net:   # first run, or a new lab
            self.ensemble = ZkEnsemble(lab.net)
        if not all(node.running() for node in self.ensemble.nodes.values()):
            self.ensemble.start(timeout)
        self.start_agent("a")
        wait_until(lambda: self._role("a") == "active" and self._dns_on_primary() == "a", timeout,
                   step=0.1, what="zookeeper: site a active, DNS on a", logs=self.logs)
        self.start_agent("b")
        wait_until(lambda: self._role("b") == "standby", timeout, step=0.1,
                   what="zookeeper: site b standby", logs=self.logs)

    def stop(self) -> None:
        """Both agents SIGKILLed, then the ensemble. Not SIGTERM: an agent that closes its
        session deletes its znodes at once, and the other agent, still running, would take over
        (the next run starts under a new root, so the znodes left to expire do not matter)."""
        for site in list(self.agents):
            self.kill_agent(site)
        self.agents.clear()
        if self.ensemble is not None:
            self.ensemble.stop()

    # -- faults ---------------------------------------------------------------------------------

    def fail_service(self, site: str) -> None:
        self.lab.toys[site].fail()

    def heal_service(self, site: str) -> None:
        self.lab.toys[site].recover()

    def kill_agent(self, site: str) -> None:
        agent = self.agents.get(site)
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait(10)

    def start_agent(self, site: str) -> None:
        lab = self.lab
        named = lab.named
        peer = "b" if site == "a" else "a"
        argv = [sys.executable, "-m", "bench.peers.zkagent", "--site", site, "--peer", peer,
                "--zk", self.ensemble.connect_string(), "--root", f"/consulha-zk/{self.runs}",
                "--service", f"api={lab.toys[site].url}",
                "--dns-server", named.address[0], "--zone", named.zone, "--record", self.record,
                "--value", lab.values[site], "--tsig-name", named.key_name,
                "--tsig-secret-file", str(named.tsig_key_file()),
                "--events", str(self.events_path(site))]
        self.agents[site] = lab.net.popen(f"h{site}", argv, lab.workdir / f"zk-agent-{site}.log",
                                          cwd=REPO)

    # -- observation ----------------------------------------------------------------------------

    def events_path(self, site: str) -> Path:
        return self.lab.workdir / f"zk-{self.runs}-events-{site}.jsonl"

    def site_events(self, site: str) -> list[dict]:
        try:
            text = self.events_path(site).read_text()
        except FileNotFoundError:
            return []
        # A line being appended right now may be incomplete: only whole lines count.
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def events(self) -> list[dict]:
        """Both agents' events of this run; "t" is CLOCK_MONOTONIC seconds (as consulha's
        system gives them), "wall" the wall-clock time the agent wrote."""
        found = [{**event, "t": event["monotonic"], "wall": event["t"]}
                 for site in ("a", "b") for event in self.site_events(site)]
        return sorted(found, key=lambda event: event["t"])

    def _role(self, site: str) -> str | None:
        roles = [e["event"] for e in self.site_events(site) if e["event"] in ROLES]
        return roles[-1] if roles else None

    def active_sites(self) -> list[str]:
        """Sites whose running agent last announced `active`."""
        return [site for site, agent in sorted(self.agents.items())
                if agent.poll() is None and self._role(site) == "active"]

    def dns_site(self, server: str) -> str | None:
        values = read_a(server, self.record)
        sites = [site for site, value in self.lab.values.items() if values == (value,)]
        return sites[0] if sites else None

    def _dns_on_primary(self) -> str | None:
        return self.lab.net.observe(self.dns_site, self.lab.named.address[0])

    def logs(self, chars: int = 2500) -> str:
        parts = []
        for site in self.agents:
            try:
                text = (self.lab.workdir / f"zk-agent-{site}.log").read_text(errors="replace")
            except OSError:
                text = "(no log)"
            parts.append(f"--- zookeeper agent {site}\n{text[-chars:]}")
        if self.ensemble is not None:
            parts.append(self.ensemble.logs())
        return "\n".join(parts)
