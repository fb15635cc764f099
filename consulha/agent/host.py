"""One process serving many groups: one `Agent` per group, each in a thread of its own.

Every group keeps everything that makes it safe on its own: its session, lock, lease, fencing
epoch, DNS publisher, heartbeat check and watch, exactly as a single agent. What the groups
share is what costs without protecting anything: the Python interpreter (about 45 MiB per
process), the HTTP connections to the local Consul agent (`HttpPool`), which also lets the
groups that wait for their node's checks to change share one blocking read, one watch over
the key prefix the groups have in common (`SharedWatch`) instead of one per group, and the
endpoint that answers the heartbeat probes (each group still has its own heartbeat check).

A group whose agent thread dies (a bug, not a Consul error: those are retried inside the
agent) is logged and restarted after a pause; the other groups do not notice. The trade-off
against one process per group is in docs/scale.md.
"""

from __future__ import annotations

import logging
import threading

from consulha.agent.loop import Agent
from consulha.config import Config
from consulha.consul.store import ConsulStore, HttpPool
from consulha.consul.watch import WATCH_WAIT, SharedWatch, common_prefix
from consulha.core.timing import Timing
from consulha.ops.heartbeat import HeartbeatServer
from consulha.ops.sdnotify import HostNotifier

log = logging.getLogger("consulha.host")

RESTART_PAUSE = 5.0  # a group whose thread crashed starts again after this (no tight crash loop)


class GroupHost:
    def __init__(self, configs: tuple[Config, ...] | list[Config], transitions_file: str | None = None):
        self.configs = tuple(configs)
        self._transitions_file = transitions_file
        self.pool = HttpPool(groups=len(self.configs))
        self.stop_event = threading.Event()
        self.shared_watch = self._shared_watch()
        self.heartbeats = {address: HeartbeatServer(address)
                           for address in {cfg.session.heartbeat_address for cfg in self.configs}}
        self._agents: dict[str, Agent] = {}
        self._lock = threading.Lock()
        # systemd hears about the host: READY once every group knows its role, WATCHDOG only
        # while every group's loop comes round (not whichever group spoke last).
        self.systemd = HostNotifier([cfg.group for cfg in self.configs])

    def _shared_watch(self) -> SharedWatch | None:
        """One watch over the groups' common key prefix, when they have one and share the
        Consul agent and token (an ACL token may only read its own group's prefix)."""
        prefix = common_prefix([cfg.key_prefix for cfg in self.configs])
        if len(self.configs) < 2 or not prefix or len({cfg.consul for cfg in self.configs}) > 1:
            return None
        first = self.configs[0]
        return SharedWatch(ConsulStore(first.consul, Timing.of(first.session).request_timeout,
                                       max_wait=WATCH_WAIT, pool=self.pool), prefix)

    def run(self) -> int:
        """Run every group until `stop()`; each stops cleanly (releases its lock). Exit code 0."""
        threads = [threading.Thread(target=self._serve, args=(cfg,), name=cfg.group)
                   for cfg in self.configs]
        log.info("serving %d groups: %s", len(threads), ", ".join(c.group for c in self.configs))
        if self.shared_watch is None:
            log.info("each group watches its own key prefix (no common prefix, or groups with "
                     "different Consul addresses or tokens)")
        else:
            log.info("one watch over %s serves every group", self.shared_watch.prefix)
            # Not joined: it may sit in a blocking read for a minute and holds nothing.
            threading.Thread(target=self.shared_watch.run, args=(self.stop_event,), name="watch",
                             daemon=True).start()
        for server in self.heartbeats.values():
            server.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for server in self.heartbeats.values():
            server.stop()
        return 0

    def stop(self) -> None:
        self.stop_event.set()
        with self._lock:
            agents = list(self._agents.values())
        for agent in agents:
            agent.stop()

    def _serve(self, cfg: Config) -> None:
        while not self.stop_event.is_set():
            agent = None
            try:
                agent = Agent(cfg, transitions_file=self._transitions_file, pool=self.pool,
                              shared_watch=self.shared_watch,
                              heartbeat=self.heartbeats[cfg.session.heartbeat_address],
                              systemd=self.systemd.for_group(cfg.group))
                with self._lock:
                    self._agents[cfg.group] = agent
                if self.stop_event.is_set():  # stop() ran before this agent was registered
                    agent.stop()
                agent.run()
                return
            except Exception:
                log.exception("group %s: agent crashed; restarting it in %.0fs", cfg.group,
                              RESTART_PAUSE)
                if agent is not None:
                    agent.abandon()
            self.stop_event.wait(RESTART_PAUSE)
