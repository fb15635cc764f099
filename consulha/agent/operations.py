"""Operator actions behind `consulha handover|takeover|maintenance|pause|resume|cleanup|history`.

Each action checks what it can before it writes anything, so a refused action changes nothing,
then records the intent in Consul KV (see consulha.core.control) and, unless told not to, waits until
the agents carried it out and every verify server answers the new leader. With `dry_run` the
checks run and the action stops before its first write, saying what it would have done.

Every action returns an `Outcome`: ok, a one-line message, and the data the CLI prints as JSON.
"""

from __future__ import annotations

import getpass
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from consulha.agent.status import read_peers
from consulha.config import Config
from consulha.consul.control import (append_history, clear_failures, clear_request, put_request, read_control,
                                     read_history)
from consulha.consul.store import ConsulStore
from consulha.core.control import ControlKeys, HandoverRequest, MaintenanceMark, OperatorEvent, PauseMark
from consulha.core.keys import Keys
from consulha.core.records import LeaderKey, LeaderRecord, SiteReport
from consulha.core.targets import choose_target
from consulha.dns import DnsProvider, ServerView
from consulha.dns.wire import canonical


def operator() -> str:
    """`user@host` of whoever runs this process, for requests and history."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass
class Outcome:
    ok: bool
    message: str
    data: dict[str, Any] = field(default_factory=dict)


class Operations:
    def __init__(self, cfg: Config, store: ConsulStore, dns: DnsProvider, poll: float = 0.02):
        self.cfg = cfg
        self.store = store
        self.dns = dns
        self.keys = Keys(cfg)
        self.control_keys = ControlKeys(cfg.key_prefix)
        self.poll = poll

    # -- reading --------------------------------------------------------------------------------

    def leader(self) -> LeaderRecord | None:
        """What the current holder of the lock wrote; None while nobody holds it."""
        _, entry = self.store.get(self.keys.leader)
        leader = LeaderKey.of(entry)
        return leader.record if leader.held else None

    def _check_target(self, target: str | None, leader_site: str) -> tuple[str | None, str]:
        """The site to hand over to, or None and the reason it cannot be done."""
        maintenance = read_control(self.store, self.control_keys).maintenance
        site, why = choose_target(target, leader_site, read_peers(self.cfg, self.keys, self.store),
                                  maintenance.keys())
        return site, str(why or "")

    # -- actions --------------------------------------------------------------------------------

    def handover(self, to: str | None, timeout: float, wait: bool = True,
                 dry_run: bool = False) -> Outcome:
        leader = self.leader()
        if not leader or not leader.epoch:
            return Outcome(False, "refused: no leader to hand over from")
        target, why = self._check_target(to, leader.site)
        if target is None:
            return Outcome(False, f"refused: {why}")
        if dry_run:
            data = {"from": leader.site, "from_epoch": leader.epoch, "to": target, "dry_run": True}
            pending = read_control(self.store, self.control_keys).handover
            if pending is not None and pending.live():
                return _pending_refusal(pending)
            return Outcome(
                True, f"dry run: would ask site {leader.site} (epoch {leader.epoch}) to "
                      f"hand over to site {target}, a live candidate with every check passing; "
                      f"nothing changed", data)
        now = time.time()
        request = HandoverRequest(to=target, by=operator(), from_site=leader.site,
                                  from_epoch=leader.epoch, requested_at=now,
                                  expires_at=now + timeout)
        if not put_request(self.store, self.control_keys, request):
            pending = read_control(self.store, self.control_keys).handover
            if pending is None or pending.live():
                return _pending_refusal(pending)
            # An expired or finished request is in the way: clear exactly that one, then retry.
            clear_request(self.store, self.control_keys, pending)
            if not put_request(self.store, self.control_keys, request):
                return Outcome(False, "refused: another handover request won the race")
        started = time.monotonic()
        data = {"from": leader.site, "from_epoch": leader.epoch, "to": target}
        if not wait:
            return Outcome(True, f"handover to {target} requested", data)
        return self._wait_for(target, leader.epoch, started, timeout, data)

    def takeover(self, site: str, timeout: float, dry_run: bool = False) -> Outcome:
        """Forced failover: destroy the leader's session so `site` can acquire after lock-delay."""
        _, entry = self.store.get(self.keys.leader)
        leader_key = LeaderKey.of(entry)
        leader = leader_key.record if leader_key.held else None
        target, why = self._check_target(site, leader.site if leader else "")
        if target is None:
            return Outcome(False, f"refused: {why}")
        if dry_run:
            victim = (f"destroy session {leader_key.holder} of site {leader.site} (epoch "
                      f"{leader.epoch})" if leader else "destroy no session (no leader)")
            return Outcome(True, f"dry run: would {victim}; site {site} would acquire after "
                                 f"lock_delay ({self.cfg.session.lock_delay:g}s); nothing changed",
                           {"from": leader.site if leader else None, "to": site,
                            "dry_run": True, "session": leader_key.holder})
        now = time.time()
        current = read_control(self.store, self.control_keys).handover
        request = HandoverRequest(to=site, by=operator(), kind="takeover", state="accepted",
                                  from_site=leader.site if leader else None,
                                  from_epoch=leader.epoch if leader else None, requested_at=now,
                                  expires_at=now + timeout,
                                  modify_index=current.modify_index if current else 0)
        if not put_request(self.store, self.control_keys, request):
            return Outcome(False, "refused: the handover record changed meanwhile; try again")
        started = time.monotonic()
        destroyed = None
        if leader_key.held:
            self.store.destroy_session(leader_key.holder)
            destroyed = leader_key.holder
        data = {"from": leader.site if leader else None, "to": site, "destroyed_session": destroyed}
        return self._wait_for(site, (leader.epoch if leader else None) or 0, started, timeout, data)

    def _wait_for(self, target: str, old_epoch: int, started: float, timeout: float,
                  data: dict) -> Outcome:
        """Until `target` leads with a newer epoch and every verify server answers it. When it
        leads but DNS does not follow in time, say so: the lock moved, only DNS is unverified."""
        deadline = started + timeout
        moved: LeaderRecord | None = None
        unverified: dict[str, str] = {}
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader and leader.site == target and (leader.epoch or 0) > old_epoch:
                moved = leader
                views, unverified = self._dns_unverified(leader)
                data["dns"] = {server: view.values[self._first] for server, view in views.items()}
                if not unverified:
                    took = time.monotonic() - started
                    data.update(epoch=leader.epoch, seconds=round(took, 3))
                    return Outcome(True, f"site {target} leads (epoch {leader.epoch}); DNS "
                                         f"answers {leader.address} on every verify server after "
                                         f"{took:.3f}s", data)
            request = read_control(self.store, self.control_keys).handover
            if request and request.state == "refused":
                clear_request(self.store, self.control_keys, request)
                return Outcome(False, f"refused by the leader: {request.reason}", data)
            time.sleep(self.poll)
        if moved is not None:
            # The request is done (the new leader took the lock): nothing to withdraw.
            data.update(epoch=moved.epoch, dns_unverified=unverified)
            report = SiteReport.decode(self.store.get(self.keys.sites + target)[1])
            failing = (f"; site {target}'s DNS update fails: {report.dns_error}"
                       if report and report.dns_error else "")
            return Outcome(False, f"site {target} leads (epoch {moved.epoch}), but DNS could not be "
                                  f"verified within {timeout:g}s: "
                                  f"{'; '.join(f'{s}: {why}' for s, why in unverified.items())}"
                                  f"{failing}", data)
        request = read_control(self.store, self.control_keys).handover
        if request and request.to == target:
            clear_request(self.store, self.control_keys, request)
        return Outcome(False, f"timed out after {timeout:g}s: site {target} did not take over "
                              f"(the request was withdrawn)", data)

    @property
    def _first(self) -> tuple[str, str]:
        """The first record, whose value is the site's address (leader.address)."""
        return self.cfg.dns.records[0].name, self.cfg.dns.records[0].type

    def _dns_unverified(self, leader: LeaderRecord) -> tuple[dict[str, ServerView], dict[str, str]]:
        """Every verify server's view, and why each one that does not yet answer `leader` has
        not. The other records' values are the leader's config, not ours: where fences are
        read, each zone's fence at the leader's epoch proves its records moved with it (one
        update per zone); the command provider has no fence to read, so only the first record."""
        address = leader.address or ""
        try:
            address = canonical(self._first[1], address)
        except ValueError:
            pass  # compared as written: it never matches, and the mismatch names it
        wanted = {self._first: (address,)}
        views = self.dns.verifier.views()
        return views, {server: view.mismatch(wanted, leader.epoch) for server, view in views.items()
                       if not view.converged(wanted, leader.epoch)}

    def maintenance(self, site: str, on: bool, reason: str | None, force: bool,
                    timeout: float, dry_run: bool = False) -> Outcome:
        key = self.control_keys.maintenance(site)
        if not on and dry_run:
            marked = site in read_control(self.store, self.control_keys).maintenance
            return Outcome(True, f"dry run: would clear the maintenance mark of site {site}"
                                 if marked else f"dry run: site {site} is not in maintenance: "
                                                f"nothing to clear", {"site": site, "dry_run": True})
        if not on:
            self.store.delete(key)
            return Outcome(True, f"site {site} is out of maintenance: it competes again",
                           {"site": site, "maintenance": False})
        leader = self.leader()
        is_leader = bool(leader and leader.site == site)
        if is_leader:
            target, why = self._check_target(None, site)
            if target is None and not force:
                return Outcome(False, f"refused: site {site} leads and {why} (use --force to "
                                      f"leave the group without a leader)")
            # The leader's step-down names nobody, and while paused nobody takes a free lock.
            if read_control(self.store, self.control_keys).pause is not None and not force:
                return Outcome(False, f"refused: site {site} leads and the group is paused: "
                                      f"nobody would take over until resume (hand over first "
                                      f"with `consulha handover`, or use --force)")
        if dry_run:
            then = (f"it leads, so it would hand over to {target or 'nobody (--force)'}"
                    if is_leader else "it does not lead: it would withdraw from the election")
            return Outcome(True, f"dry run: would mark site {site} in maintenance; {then}; "
                                 f"nothing changed",
                           {"site": site, "was_leader": is_leader, "dry_run": True})
        self.store.put(key, MaintenanceMark(reason=reason or "", by=operator(), force=force).encode())
        data = {"site": site, "maintenance": True, "was_leader": is_leader}
        if not is_leader:
            return Outcome(True, f"site {site} is in maintenance: withdrawn from the election", data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now_leader = self.leader()
            if not now_leader or now_leader.site != site:
                if now_leader is None and not force:
                    time.sleep(self.poll)
                    continue
                data["leader"] = now_leader.site if now_leader else None
                return Outcome(True, f"site {site} handed over to {data['leader']} and is in "
                                     f"maintenance", data)
            time.sleep(self.poll)
        return Outcome(False, f"site {site} is marked for maintenance but still leads after "
                              f"{timeout:g}s: is its agent running?", data)

    def pause(self, reason: str | None) -> Outcome:
        """Pause automatic failover group-wide; refused while already paused (the mark keeps
        saying who paused and why)."""
        mark = PauseMark(by=operator(), reason=reason or "")
        if not self.store.put(self.control_keys.pause, mark.encode(), cas=0):
            current = read_control(self.store, self.control_keys).pause
            if current is None:
                return Outcome(False, "refused: the pause mark changed meanwhile; try again")
            return Outcome(False, f"refused: already paused by {current.by or 'unknown'} since "
                                  f"{_iso(current.since)}: {current.reason or 'no reason given'}",
                           {"pause": asdict(current)})
        leader = self._record("pause", f"paused by {mark.by}: {mark.reason or 'no reason given'}")
        warning = "" if leader else "; there is no leader now, and none will be until resume"
        return Outcome(True, f"paused: no automatic failover until `consulha resume` (planned "
                             f"handover still works){warning}", {"pause": asdict(mark)})

    def resume(self) -> Outcome:
        _, entry = self.store.get(self.control_keys.pause)
        if entry is None:
            return Outcome(True, "not paused: nothing to resume", {"pause": None})
        mark = PauseMark.decode(entry)
        if not self.store.delete(self.control_keys.pause, cas=entry.modify_index):
            return Outcome(False, "refused: the pause mark changed meanwhile; try again")
        self._record("resume", f"resumed by {operator()} (paused by {mark.by or 'unknown'} since "
                               f"{_iso(mark.since)}: {mark.reason or 'no reason given'})")
        return Outcome(True, "resumed: automatic failover is on again", {"pause": None})

    def cleanup(self, site: str | None, dry_run: bool = False) -> Outcome:
        """Clear the flap-damping failures of `site`, or of every site (`pcs resource cleanup`):
        a repaired site competes on equal terms again. A record that gained a failure since it
        was read is left alone (check-and-set), and the outcome says so."""
        failures = read_control(self.store, self.control_keys).failures
        chosen = dict(sorted(failures.items())) if site is None else (
            {site: failures[site]} if site in failures else {})
        if not chosen:
            whose = f"site {site} has" if site else "no site has"
            return Outcome(True, f"{whose} no recorded failures: nothing to clear", {"cleared": []})
        now = time.time()
        described = "; ".join(f"site {name}: {record.describe(now)}" for name, record in chosen.items())
        if dry_run:
            return Outcome(True, f"dry run: would clear the failures of {described}; nothing changed",
                           {"cleared": [], "would_clear": list(chosen), "dry_run": True})
        cleared = [name for name, record in chosen.items()
                   if clear_failures(self.store, self.control_keys, record)]
        if cleared:
            self._record("cleanup", f"failures of site {', '.join(cleared)} cleared by {operator()} "
                                    f"({described})")
        missed = [name for name in chosen if name not in cleared]
        if missed:
            return Outcome(False, f"not cleared: site {', '.join(missed)} recorded another failure "
                                  f"meanwhile; look at `consulha status` and repeat", {"cleared": cleared})
        return Outcome(True, f"cleared the failures of {described}: competing on equal terms again",
                       {"cleared": cleared})

    def _record(self, kind: str, detail: str) -> LeaderRecord | None:
        """An operator event in the history at the current leader's epoch; returns that leader."""
        leader = self.leader()
        append_history(self.store, self.control_keys,
                       OperatorEvent(kind, detail, leader.epoch if leader else None))
        return leader

    def history(self, limit: int) -> Outcome:
        entries, _ = read_history(self.store, self.control_keys)
        return Outcome(True, f"{len(entries[-limit:])} transitions", {"history": entries[-limit:]})


def outcome_json(outcome: Outcome) -> dict:
    return asdict(outcome)


def _iso(unix_time: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_time))


def _pending_refusal(pending: HandoverRequest | None) -> Outcome:
    who = f" by {pending.by} to {pending.to or 'any'}" if pending else ""
    return Outcome(False, f"refused: another handover is pending{who}")
