"""`consulha validate --connect`: reach Consul with the configured token, and prove the DNS
server accepts our TSIG key (a prerequisite-only update that changes nothing), or that the
command provider's `read` works."""

from __future__ import annotations

from consulha.config import Config
from consulha.consul.store import ConsulRefused, ConsulStore, ConsulUnavailable
from consulha.dns import DnsError, make_provider
from consulha.dns.wire import where


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
    if cfg.dns.provider == "command":
        what, proof = f"dns command {cfg.dns.command[0]}", "read answered (nothing changed)"
    else:
        what = f"dns {where(cfg.dns.server)}"
        proof = "update accepted for authentication (prerequisite-only, nothing changed)"
    try:
        make_provider(cfg.dns, cfg.site).probe_auth()
        results.append((what, True, proof))
    except DnsError as error:
        results.append((what, False, str(error)))
    return results
