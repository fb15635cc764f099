"""`consulha validate --connect`: reach Consul with the configured token, and prove the DNS
server accepts our TSIG key (a prerequisite-only update that changes nothing), or that the
command provider's `read` works, and reach each resolver in dns.resolvers (read-only). Then
say which Consul versions run (against the range this release was tested on and reviewed for)
and how long the round trips take, with a warning for every configured interval that leaves
too little margin for them."""

from __future__ import annotations

from dataclasses import dataclass

from consulha.agent.probes import cluster_versions, combined, margins, measure_consul, measure_network
from consulha.config import Config, ResolverConfig
from consulha.consul.store import ConsulRefused, ConsulStore, ConsulUnavailable
from consulha.consul.versions import Support
from consulha.dns import DnsError, make_provider
from consulha.dns.resolvers import ResolverError, answer, probe
from consulha.dns.wire import where

RESOLVER_TIMEOUT = 2.0


@dataclass(frozen=True)
class ConnectReport:
    probes: tuple[tuple[str, bool, str], ...]   # (what, ok, detail) per dependency
    measured: tuple[str, ...]                   # round trips, one sentence each
    warnings: tuple[str, ...]                   # versions outside the range, thin margins

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.probes)


def probe_all(cfg: Config) -> ConnectReport:
    """Every dependency reached, measured and judged; never raises."""
    probes, warnings = [], []
    store = ConsulStore(cfg.consul)
    consul_measured = None
    try:
        node = store.node_name()
        store.get(f"{cfg.key_prefix}/leader")
        probes.append((f"consul {cfg.consul.address}", True, f"agent node {node}, KV readable"))
        versions = cluster_versions(store)
        for support, line in versions.lines():
            probes.append(("consul version", support is not Support.UNSUPPORTED, line))
            if support.warns:
                warnings.append(line)
        consul_measured = measure_consul(cfg, store, versions)
    except (ConsulUnavailable, ConsulRefused) as error:
        probes.append((f"consul {cfg.consul.address}", False, str(error)))
    if cfg.dns.provider == "command":
        what, proof = f"dns command {cfg.dns.command[0]}", "read answered (nothing changed)"
    else:
        what = f"dns {where(cfg.dns.server)}"
        proof = "update accepted for authentication (prerequisite-only, nothing changed)"
    try:
        make_provider(cfg.dns, cfg.site).probe_auth()
        probes.append((what, True, proof))
    except DnsError as error:
        probes.append((what, False, str(error)))
    probes += [resolver_probe(cfg, resolver) for resolver in cfg.dns.resolvers]
    measured = combined(consul_measured, measure_network(cfg))
    warnings += [str(warning) for warning in margins(cfg, measured)]
    return ConnectReport(tuple(probes), measured.lines, tuple(warnings))


def resolver_probe(cfg: Config, resolver: ResolverConfig) -> tuple[str, bool, str]:
    """The resolver's control channel reached (read-only: nothing flushed) and what it answers
    for the first record now."""
    first = cfg.dns.records[0]
    try:
        itself = probe(resolver, RESOLVER_TIMEOUT)
        now = answer(resolver, first.name, first.type, RESOLVER_TIMEOUT)
    except ResolverError as error:
        return f"resolver {resolver.name}", False, str(error)
    return (f"resolver {resolver.name}", True, f"control reached ({itself}, nothing flushed); "
            f"{where(resolver.address)} answers {first.name} {first.type} {', '.join(now) or 'nothing'}")
