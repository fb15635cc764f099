"""The listen checks `consulha validate` runs for a config: can this host bind the heartbeat and
metrics addresses now? (The config layer asks through its ListenProbe protocol.)"""

from __future__ import annotations

from consulha.ops.heartbeat import bind_problem
from consulha.ops.metrics import listen_conflict


class HostListenProbe:
    """Answers for this host, at this moment."""

    def heartbeat_problem(self, address: str) -> str | None:
        return bind_problem(address)

    def metrics_problem(self, listen: tuple[str, int], identity: str) -> str | None:
        return listen_conflict(listen, identity)
