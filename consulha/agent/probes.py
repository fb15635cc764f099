"""What `consulha validate --connect` measures beyond reachability: the Consul versions of the
local agent and the servers, and the round trips to the Consul servers, the local agent, the DNS
primary and each check's target, judged against the configured intervals
(consulha.core.margins). Observe here, decide there."""

from __future__ import annotations

import logging
import socket
import statistics
import threading
import time
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

from consulha.config import Config
from consulha.consul.coordinates import rtts_from
from consulha.consul.store import ConsulRefused, ConsulStore, ConsulUnavailable
from consulha.consul.versions import ClusterVersions, ConsulVersion, Support, server_versions
from consulha.core.margins import MarginWarning, RoundTrips, Timeouts, margin_warnings
from consulha.core.timing import Timing
from consulha.dns.wire import where

SAMPLES = 5  # timed requests per target; the slowest one is judged
VERSION_LOG_RETRY = 10.0  # seconds between attempts while Consul does not answer at start

log = logging.getLogger("consulha.agent")


@dataclass(frozen=True)
class Measured:
    """The slowest answer of each timed target (what the margins are judged on), and one
    sentence per target with its median and maximum for the operator."""
    round_trips: RoundTrips
    lines: tuple[str, ...]


def cluster_versions(store: ConsulStore) -> ClusterVersions:
    """The local agent's Consul version and the servers' (members with role=consul)."""
    local = ConsulVersion.parse(store.agent_self()["Config"].get("Version"))
    try:
        servers = server_versions(store.members())
    except ConsulRefused:
        servers = ()  # ACL without node:read: ClusterVersions says the servers are unknown
    return ClusterVersions(local, servers)


def log_versions(cfg: Config, stop: threading.Event) -> threading.Thread:
    """Name the Consul versions of the local agent and the servers in the log, in the
    background, as soon as Consul answers (an agent must start while Consul is down): info
    inside the tested or reviewed range, a warning outside it, an error below the oldest
    supported. Tries every VERSION_LOG_RETRY seconds until it succeeds or `stop` is set."""
    def run() -> None:
        store = ConsulStore(cfg.consul)
        while not stop.is_set():
            try:
                versions = cluster_versions(store)
            except (ConsulUnavailable, ConsulRefused) as error:
                log.debug("consul versions not read yet: %s", error)
                stop.wait(VERSION_LOG_RETRY)
                continue
            for support, line in versions.lines():
                level = (logging.ERROR if support is Support.UNSUPPORTED
                         else logging.WARNING if support.warns else logging.INFO)
                log.log(level, "consul version: %s", line)
            return
    thread = threading.Thread(target=run, name="consul-versions", daemon=True)
    thread.start()
    return thread


def _timed(call, samples: int = SAMPLES) -> list[float]:
    times = []
    for _ in range(samples):
        started = time.monotonic()
        call()
        times.append(time.monotonic() - started)
    return times


def _summary(what: str, times: list[float]) -> str:
    return (f"{what}: median {statistics.median(times) * 1000:.1f} ms, "
            f"max {max(times) * 1000:.1f} ms ({len(times)} requests)")


def _dns_times(cfg: Config) -> list[float] | None:
    if cfg.dns.server is None:
        return None  # command provider: no DNS server of ours to time
    host, port = cfg.dns.server
    query = dns.message.make_query(cfg.dns.zones[0], dns.rdatatype.SOA)
    try:
        return _timed(lambda: dns.query.udp(query, host, port=port, timeout=cfg.dns.timeout), 3)
    except (OSError, dns.exception.DNSException):
        return None  # validate's DNS probe says what is wrong with the server


def _target(kind: str, target: str) -> tuple[str, int] | None:
    if kind == "tcp":
        host, _, port = target.rpartition(":")
        return host.strip("[]"), int(port)
    if kind == "http":
        url = urlsplit(target)
        return url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    return None  # script checks run here: no network round trip


def _connect_time(address: tuple[str, int], timeout: float) -> float | None:
    try:
        times = _timed(lambda: socket.create_connection(address, timeout=timeout).close(), 3)
    except OSError:
        return None  # a check that fails now is the check's business, not a margin
    return max(times)


def measure_consul(cfg: Config, store: ConsulStore, versions: ClusterVersions) -> Measured:
    """Timed consistent reads of the leader key (local agent -> Raft leader -> quorum), timed
    requests the local agent answers itself, and the coordinates' estimate to each server."""
    reads = _timed(lambda: store.get(f"{cfg.key_prefix}/leader", consistent=True))
    local = _timed(store.agent_self)
    lines = [_summary("consul consistent reads (local agent -> leader -> quorum)", reads),
             _summary("local consul agent", local)]
    try:
        estimates = rtts_from(store.node_name(), store.coordinates(), [name for name, _ in versions.servers])
    except (ConsulRefused, ConsulUnavailable):
        estimates = {}  # a second opinion only: the timed reads above are the measure
    if estimates:
        lines.append("network RTT to the servers (Consul coordinates): " + ", ".join(
            f"{name} {rtt * 1000:.1f} ms" for name, rtt in sorted(estimates.items())))
    return Measured(RoundTrips(consul_read=max(reads), local_agent=max(local)), tuple(lines))


def measure_network(cfg: Config) -> Measured:
    """The DNS primary (SOA queries) and each check's target (TCP connects)."""
    lines = []
    dns_times = _dns_times(cfg)
    if dns_times:
        lines.append(_summary(f"dns primary {where(cfg.dns.server)} (SOA)", dns_times))
    targets = []
    for service in cfg.services:
        address = _target(service.check.kind, service.check.target)
        connect = _connect_time(address, service.check.timeout) if address else None
        if connect is not None:
            targets.append((service.name, connect))
            lines.append(f"check target of {service.name} ({where(address)}): connect max "
                         f"{connect * 1000:.1f} ms")
    return Measured(RoundTrips(None, None, dns_primary=max(dns_times) if dns_times else None,
                               check_targets=tuple(targets)), tuple(lines))


def combined(consul: Measured | None, network: Measured) -> Measured:
    if consul is None:
        return network
    return Measured(replace(consul.round_trips, dns_primary=network.round_trips.dns_primary,
                            check_targets=network.round_trips.check_targets),
                    consul.lines + network.lines)


def margins(cfg: Config, measured: Measured) -> list[MarginWarning]:
    timeouts = Timeouts(timing=Timing.of(cfg.session),
                        dns_timeout=cfg.dns.timeout if cfg.dns.server is not None else None,
                        check_timeouts=tuple((s.name, s.check.timeout) for s in cfg.services
                                             if s.check.kind != "script"))
    return margin_warnings(timeouts, measured.round_trips)
