"""What bench/wan.py watches while the systems run (threads in the lab's namespaces, bounded):

* `Poller`: from the observer namespace (outside the WAN), every `period`, for each system the
  sites that believe they are active and the site its record points at on each verify server;
* `ReadLatency`: consistent reads of the leader key from the app hosts through their local
  Consul agent (a Consul RPC to the servers across the WAN, confirmed by the Raft leader);
* `ConsulLogWindow`: what the lab's Consul agents logged from a moment on: serf suspicions,
  members marked failed, Raft elections, checks going critical (heartbeat vs service).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Sequence

from bench.wan_outcome import Poll, latency_summary
from bench.wan_systems import System, WanLab
from lab.netns import CLIENTS, LEADER_KEY, enter_netns
from lab.observer import http_json


class Poller:
    def __init__(self, lab: WanLab, systems: Sequence[System], servers: Sequence[str],
                 period: float, max_duration: float):
        self.lab = lab
        self.systems = list(systems)
        self.servers = list(servers)
        self.period = period
        self.max_duration = max_duration
        self.polls: dict[str, list[Poll]] = {s.name: [] for s in self.systems}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wan-poller", daemon=True)

    def start(self) -> "Poller":
        self._thread.start()
        return self

    def _run(self) -> None:
        enter_netns(self.lab.net.ns("obs"))
        started = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - started < self.max_duration:
            t = time.monotonic()
            for system in self.systems:
                self.polls[system.name].append(Poll(
                    t, tuple(system.active_sites()),
                    tuple(system.dns_site(server) for server in self.servers)))
            self._stop.wait(max(0.0, t + self.period - time.monotonic()))

    def latest(self, name: str) -> Poll | None:
        polls = self.polls[name]
        return polls[-1] if polls else None

    def stop(self) -> dict[str, list[Poll]]:
        self._stop.set()
        self._thread.join(10)
        return self.polls


class ReadLatency:
    """One thread per app host, a consistent read of the leader key every `period`."""

    def __init__(self, lab: WanLab, hosts: Sequence[str] = CLIENTS, period: float = 0.5,
                 max_duration: float = 900.0):
        self.lab = lab
        self.period = period
        self.max_duration = max_duration
        self.milliseconds: dict[str, list[float]] = {h: [] for h in hosts}
        self.failures: dict[str, int] = {h: 0 for h in hosts}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(h,), daemon=True,
                                          name=f"latency-{h}") for h in hosts]

    def start(self) -> "ReadLatency":
        for thread in self._threads:
            thread.start()
        return self

    def _run(self, host: str) -> None:
        enter_netns(self.lab.net.ns(host))
        started = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - started < self.max_duration:
            t = time.monotonic()
            status, _ = http_json("127.0.0.1", f"/v1/kv/{LEADER_KEY}?consistent", 5.0)
            if status in (200, 404):
                self.milliseconds[host].append((time.monotonic() - t) * 1000)
            else:
                self.failures[host] += 1
            self._stop.wait(max(0.0, t + self.period - time.monotonic()))

    def stop(self) -> dict:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        every = [ms for values in self.milliseconds.values() for ms in values]
        return {"all": latency_summary(every, sum(self.failures.values())),
                **{host: latency_summary(self.milliseconds[host], self.failures[host])
                   for host in self.milliseconds}}


# Consul 1.8.7's own wording (memberlist, serf, raft, the agent's check runner).
LOG_PATTERNS = {
    "serf_suspicions": re.compile(r"memberlist: Suspect \S+ has failed"),
    "members_failed": re.compile(r"EventMemberFailed"),
    "raft_elections": re.compile(r"entering candidate state"),
}
_CRITICAL = re.compile(r"Check is now critical: check=(\S+)")


class ConsulLogWindow:
    """Counts what every lab Consul agent logs from construction until `counts()`."""

    def __init__(self, lab: WanLab):
        self.paths = {host: node.log_path for host, node in lab.consul.items()}
        self.offsets = {host: _size(path) for host, path in self.paths.items()}

    def counts(self) -> dict:
        found = {name: 0 for name in LOG_PATTERNS} | {"heartbeat_critical": 0, "service_critical": 0}
        for host, path in self.paths.items():
            with open(path, "rb") as log:
                log.seek(self.offsets[host])
                text = log.read().decode(errors="replace")
            for name, pattern in LOG_PATTERNS.items():
                found[name] += len(pattern.findall(text))
            for check in _CRITICAL.findall(text):
                found["heartbeat_critical" if check.endswith("-heartbeat") else "service_critical"] += 1
        return found


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
