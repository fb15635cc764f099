"""Everything `consulha status` shows, gathered in one dict (the CLI renders it as JSON or rich).

Reads only: the leader key, candidates and site reports under the key prefix, every site's
service checks from Consul's health endpoint, and every verify server's DNS answer. A part that
cannot be read is reported as an error string in place; the rest is still gathered. A verify
server that is down or lagging shows with what it answers and its zone SOA serial.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from consulha.config import Config
from consulha.consul.control import read_control
from consulha.consul.store import ConsulRefused, ConsulStore, ConsulUnavailable
from consulha.core.control import ControlKeys
from consulha.core.keys import Keys
from consulha.core.records import CandidateRecord, LeaderKey, LeaderRecord, SiteReport
from consulha.core.targets import Peers
from consulha.dns import DnsError, DnsProvider, DnsState
from consulha.dns.resolvers import ResolverError, answer

CHECK_SEVERITY = {"passing": 0, "warning": 1, "maintenance": 2, "critical": 3}


def gather_status(cfg: Config, store: ConsulStore, dns: DnsProvider) -> dict[str, Any]:
    keys = Keys(cfg)
    status: dict[str, Any] = {"group": cfg.group, "key_prefix": cfg.key_prefix, "errors": []}
    try:
        _, entry = store.get(keys.leader)
        leader = LeaderKey.of(entry)
        record = leader.record or LeaderRecord(site="")
        held = leader.held and leader.record is not None
        status["leader"] = {
            "site": record.site if held else None,
            "address": record.address if held else None,
            "epoch": record.epoch if held else None,
            "since": record.acquired_at if held else None,
            "session": leader.holder,
            "last_site": record.site or None,
            "last_epoch": record.epoch,
        }
        _, candidate_entries = store.get_prefix(keys.candidates)
        _, site_entries = store.get_prefix(keys.sites)
        reports = {e.key.removeprefix(keys.sites): SiteReport.decode(e) for e in site_entries}
        candidates = [(e.key.removeprefix(keys.candidates), e.session, CandidateRecord.decode(e))
                      for e in candidate_entries if e.session]
        status["candidates"] = sorted(
            ({"site": site, "session": session, "since": record and record.since,
              "address": record and record.address} for site, session, record in candidates),
            key=lambda c: c["site"])
        status["sites"] = {site: asdict(report) for site, report in reports.items() if report}
        status["services"] = service_instances(cfg, keys, store)
        control = read_control(store, ControlKeys(cfg.key_prefix))
        status["handover"] = asdict(control.handover) if control.handover else None
        status["maintenance"] = {site: asdict(mark) for site, mark in control.maintenance.items()}
        status["pause"] = asdict(control.pause) if control.pause else None
        status["failures"] = {site: record.view(time.time()) for site, record in sorted(control.failures.items())}
        status["damping"] = cfg.election.damping.enabled
    except (ConsulUnavailable, ConsulRefused) as error:
        status["errors"].append(f"consul: {error}")
        status.setdefault("leader", {"site": None, "epoch": None})
        status.setdefault("candidates", [])
        status.setdefault("sites", {})
        status.setdefault("services", [])
        status.setdefault("handover", None)
        status.setdefault("maintenance", {})
        status.setdefault("pause", None)
        status.setdefault("failures", {})
        status.setdefault("damping", cfg.election.damping.enabled)
    status["dns"] = dns_status(dns, status["leader"])
    if status["dns"]["error"]:
        status["errors"].append(f"dns: {status['dns']['error']}")
    leader_report = status["sites"].get(status["leader"].get("site") or "", {})
    status["resolvers"] = resolver_status(cfg, dns, status["dns"]["primary"],
                                          (leader_report.get("dns") or {}).get("resolvers") or {})
    status["ok"] = bool(status["leader"].get("site")) and status["dns"]["converged"]
    return status


def resolver_status(cfg: Config, dns: DnsProvider, primary: dict[str, Any] | None,
                    swept: dict[str, dict]) -> dict[str, dict]:
    """Per configured resolver: what it answers now for the first record (asked as a client),
    whether it answers every record as the primary holds it (the leader's values, whichever
    site's config asks), and the leader's sweep after its last switch (last flush, converged,
    seconds from the write, last error)."""
    held = (primary or {}).get("records", {})
    found = {}
    for resolver in cfg.dns.resolvers:
        try:
            now = {f"{name} {rtype}": list(answer(resolver, name, rtype, RESOLVER_TIMEOUT))
                   for name, rtype in dns.wanted}
            answers = next(iter(now.values()))
            matches = bool(held) and all(held.get(key) == value for key, value in now.items())
        except ResolverError as error:
            answers, matches = str(error), False
        found[resolver.name] = {"answers": answers, "matches": matches,
                                "sweep": swept.get(resolver.name)}
    return found


RESOLVER_TIMEOUT = 1.0


def service_instances(cfg: Config, keys: Keys, store: ConsulStore) -> list[dict[str, Any]]:
    """Each site's instance of each service, with the checks its site's session depends on:
    the service's own check, the node's serfHealth and that site's agent heartbeat."""
    instances = []
    for service in cfg.services:
        for entry in store.service_health(service.name):
            meta = entry["Service"].get("Meta") or {}
            if meta.get("consulha_group") != cfg.group:
                continue
            site = meta.get("consulha_site")
            relevant = {"serfHealth", keys.heartbeat_check_id_of(site)}
            checks = [{"id": c["CheckID"], "name": c["Name"], "status": c["Status"],
                       "service": c.get("ServiceName") or None,
                       "output": (c.get("Output") or "").strip()[-300:]}
                      for c in entry["Checks"]
                      if c.get("ServiceID") == entry["Service"]["ID"] or c["CheckID"] in relevant]
            worst = max((c["status"] for c in checks), key=lambda s: CHECK_SEVERITY.get(s, 3),
                        default="passing")
            instances.append({"service": service.name, "site": site,
                              "node": entry["Node"]["Node"], "tags": entry["Service"]["Tags"],
                              "status": worst, "checks": checks})
    return sorted(instances, key=lambda i: (i["service"], i["site"] or ""))


def healthy_sites(instances: list[dict[str, Any]]) -> set[str]:
    """Sites whose every instance has every check passing (warning does not count as healthy)."""
    sites = {i["site"] for i in instances if i["site"]}
    return {site for site in sites
            if all(i["status"] == "passing" for i in instances if i["site"] == site)}


def read_peers(cfg: Config, keys: Keys, store: ConsulStore) -> Peers:
    """Which sites hold a live candidate key, and which have every check passing."""
    _, entries = store.get_prefix(keys.candidates)
    live = frozenset(e.key.removeprefix(keys.candidates) for e in entries if e.session)
    return Peers(live=live, healthy=frozenset(healthy_sites(service_instances(cfg, keys, store))))


def dns_status(dns: DnsProvider, leader: dict[str, Any]) -> dict[str, Any]:
    """Every verify server's answers, fence epochs and SOA serials, and whether each has
    converged: answers every record as the primary holds it and the leader's epoch. The
    primary is the reference only once it holds the leader's address at the leader's epoch."""
    expected, epoch = leader.get("address"), leader.get("epoch")
    views = dns.verifier.views()
    first = next(iter(dns.wanted))
    try:
        state = dns.read_state()
    except DnsError as error:
        state, fence_epoch, failure = None, f"error: {error}", str(error)
    else:
        fence_epoch, failure = state.epoch, None
    primary_done = (state is not None and expected is not None and state.values[first] == (expected,)
                    and (not dns.cfg.fencing or state.epoch == epoch))
    servers = {server: {**view.as_json(), "converged": primary_done and view.converged(state.values, epoch)}
               for server, view in views.items()}
    return {"expected": expected, "epoch": epoch,
            "answers": {server: list(v) if isinstance(v, tuple) else v
                        for server, v in ((server, view.values[first]) for server, view in views.items())},
            "servers": servers, "primary": _primary(state),
            "converged": primary_done and all(server["converged"] for server in servers.values()),
            "fence_epoch": fence_epoch, "error": failure}


def _primary(state: DnsState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {"records": {f"{name} {rtype}": list(values) for (name, rtype), values in state.values.items()},
            "fence_epochs": dict(state.epochs)}
