"""Names in Consul: KV keys, service and check IDs. One place, so the agent and the CLI agree."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the core reads config values, it never loads them
    from consulha.config import Config


# What this release keeps under key_prefix (keys, their meaning and JSON) and the DNS fence
# record, as one number: CHANGELOG.md lists each layout; releases of one layout can run side by
# side and be downgraded to each other. `consulha --version` prints it; the Ansible role refuses a
# downgrade across a change. Raise it with any incompatible change of the keys below.
KEY_LAYOUT = 1


class Keys:
    def __init__(self, cfg: Config):
        self.prefix = cfg.key_prefix
        self.group = cfg.group
        self._owner = f"{cfg.group}-{cfg.site}"
        self.leader = f"{self.prefix}/leader"
        self.candidates = f"{self.prefix}/candidates/"
        self.sites = f"{self.prefix}/sites/"
        self.site_status = f"{self.sites}{cfg.site}"
        self.session_name = f"consulha-{self._owner}"
        self.heartbeat_check_id = self.heartbeat_check_id_of(cfg.site)
        # Paused: the service checks leave the session (a failing one must not release the
        # lock); the node checks and the heartbeat stay (a dead agent still loses it).
        self.paused_session_checks = [*cfg.session.node_checks, self.heartbeat_check_id]
        self.session_checks = self.paused_session_checks + [self.check_id(s.name) for s in cfg.services]

    def heartbeat_check_id_of(self, site: str) -> str:
        return f"consulha-{self.group}-{site}-heartbeat"

    def candidate(self, site: str) -> str:
        return f"{self.candidates}{site}"

    def service_id(self, service: str) -> str:
        return f"{self._owner}-{service}"

    def check_id(self, service: str) -> str:
        return f"service:{self.service_id(service)}"
