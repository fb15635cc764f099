"""What this site shows the local Consul agent: its services (tagged with the site's role, for
the UI), their checks, the agent's heartbeat check (answered by consulha.ops.heartbeat), and
Consul's maintenance mode mirroring our maintenance mark. Level-triggered: every pass, a restarted Consul agent that forgot us gets
everything registered again."""

from __future__ import annotations

import logging
from typing import Callable

from consulha.config import CheckConfig, Config
from consulha.consul.health import script_ttl
from consulha.consul.store import ConsulStore
from consulha.core.control import MaintenanceMark
from consulha.core.keys import Keys

log = logging.getLogger("consulha.agent")


def consul_check(check: CheckConfig, lagging: bool = False) -> dict:
    """The Consul check definition for a service check. Consul runs HTTP and TCP checks and
    debounces them itself; script checks become TTL checks that the agent runs and debounces.
    `lagging`: we lead and probe our services ourselves (consulha.agent.ownchecks), so Consul's
    copy turns critical one failure later, as the safety net behind our own step-down."""
    if check.kind == "script":
        return {"TTL": f"{script_ttl(check)}s", "Notes": f"pushed by consulha: {check.target}"}
    return {check.kind.upper(): check.target, "Interval": f"{check.interval}s",
            "Timeout": f"{check.timeout}s",
            "FailuresBeforeCritical": check.failures_before_critical + (1 if lagging else 0),
            "SuccessBeforePassing": check.success_before_passing}


# Three failed probes in a row, not one: probes lost to a busy moment must not cost the site
# its leadership. With two, one new leader of 40 in a site-loss burst lost its session, most
# likely to two slow answers (docs/scale.md, 10-minute run 2); a dead agent is still caught
# within heartbeat_ttl, as a TTL check of heartbeat_ttl would catch it.
FAILURES_BEFORE_CRITICAL = 3


def heartbeat_check(url: str, heartbeat_ttl: float) -> dict:
    """The Consul check definition. Probes every heartbeat_ttl/3 with the same timeout (Consul
    waits the interval after each probe ends); three failures in a row turn it critical, so a
    dead agent (connection refused) is critical within heartbeat_ttl and a frozen one (each
    probe times out) within about 2 x heartbeat_ttl."""
    probe = f"{heartbeat_ttl / 3:.3f}s"
    return {"HTTP": url, "Method": "GET", "Interval": probe, "Timeout": probe,
            "FailuresBeforeCritical": FAILURES_BEFORE_CRITICAL, "Status": "passing"}


class Registrar:
    def __init__(self, cfg: Config, keys: Keys, store: ConsulStore,
                 heartbeat_url: Callable[[str], str]):
        """`heartbeat_url`: where the local Consul agent probes a heartbeat check id."""
        self.cfg = cfg
        self._heartbeat_url = heartbeat_url
        self.keys = keys
        self.store = store
        self.registered = False
        self._tags_role: str | None = None
        self._maintenance_applied: bool | None = None

    def register(self, leading: bool) -> None:
        check_id = self.keys.heartbeat_check_id
        self.store.register_check(check_id, f"consulha heartbeat {self.cfg.group}/{self.cfg.site}",
                                  heartbeat_check(self._heartbeat_url(check_id),
                                                  self.cfg.session.heartbeat_ttl),
                                  "consulha agent heartbeat: Consul probes the agent")
        self._tag(leading, force=True)
        self.registered = True

    def sync(self, leading: bool, mark: MaintenanceMark | None,
             local_checks: dict[str, dict] | None) -> None:
        """Call only after the servers answered in this pass: a tag change makes the local
        Consul agent sync to them, and while that sync hangs (servers unreachable, Raft
        election) the agent also stalls our heartbeat updates until the heartbeat lapses.
        `local_checks`: the local agent's checks when read in this pass (None: not read)."""
        if local_checks is not None and any(c not in local_checks for c in self._wanted_checks()):
            log.warning("our checks are missing from the local Consul agent: registering again")
            self.register(leading)
        self._tag(leading)
        self._mirror_maintenance(mark)

    def deregister(self) -> None:
        for service in self.cfg.services:
            self.store.deregister_service(self.keys.service_id(service.name))
        self.store.deregister_check(self.keys.heartbeat_check_id)

    def _wanted_checks(self) -> list[str]:
        return [self.keys.heartbeat_check_id] + [self.keys.check_id(s.name) for s in self.cfg.services]

    def _tag(self, leading: bool, force: bool = False) -> None:
        """Tag every service `leader` or `standby` so the Consul UI shows the site's role."""
        role = "leader" if leading else "standby"
        if role == self._tags_role and not force:
            return
        for service in self.cfg.services:
            self.store.register_service(
                self.keys.service_id(service.name), service.name, tags=[role],
                meta={"consulha_site": self.cfg.site, "consulha_group": self.cfg.group},
                port=service.port,
                check=consul_check(service.check, lagging=leading and self.cfg.election.leader_probes),
            )
        self._tags_role = role
        self._maintenance_applied = None  # re-registration may have cleared it: apply again

    def _mirror_maintenance(self, mark: MaintenanceMark | None) -> None:
        """Mirror our maintenance mark onto Consul's service maintenance (shown in the UI)."""
        wanted = mark is not None
        if wanted == self._maintenance_applied:
            return
        reason = f"consulha maintenance: {mark.reason if mark and mark.reason else 'no reason given'}"
        for service in self.cfg.services:
            self.store.service_maintenance(self.keys.service_id(service.name), wanted, reason)
        self._maintenance_applied = wanted
