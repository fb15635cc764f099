"""`consulha validate --connect`: reach Consul with the configured token, and prove the DNS
server accepts our TSIG key (a prerequisite-only update that changes nothing)."""

from __future__ import annotations

from consulha.config import Config
from consulha.consul_store import ConsulRefused, ConsulStore, ConsulUnavailable
from consulha.dns import DnsError, make_provider


def probe_all(cfg: Config) -> list[tuple[str, bool, str]]:
    """(what, ok, detail) for each dependency; never raises."""
    results = []
    store = ConsulStore(cfg.consul)
    try:
        node = store.node_name()
        store.get(f"{cfg.key_prefix}/leader")
        results.append((f"consul {cfg.consul.address}", True, f"agent node {node}, KV readable"))
    except (ConsulUnavailable, ConsulRefused) as error:
        results.append((f"consul {cfg.consul.address}", False, str(error)))
    host, port = cfg.dns.server
    try:
        make_provider(cfg.dns, cfg.site).probe_auth()
        results.append((f"dns {host}:{port}", True, "update accepted for authentication "
                        "(prerequisite-only, nothing changed)"))
    except DnsError as error:
        results.append((f"dns {host}:{port}", False, str(error)))
    return results
