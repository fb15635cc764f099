"""The consulha agent: one site's candidate for the group's lock, and the DNS writer when it wins.

Threads:
    main loop   - the HA cycle below: level-triggered, re-reads the leader key on every pass
    watchdog    - self-fencing: demotes on our own clock when the lease runs out
    dns         - publishes and re-checks DNS while we lead (fenced by the epoch)
    heartbeat   - keeps the agent's TTL check passing while the main loop makes progress
    checks      - one per script check, pushing results to TTL checks
    hooks       - on_promote / on_demote commands

The HA cycle (one pass):
    no session          -> register if needed, create a session tied to every check, or stay
                           ineligible with the reason Consul gave
    leader              -> renew when due; consistent read of the leader key; our session still
                           there extends the lease, anything else demotes at once
    standby             -> blocking read of the leader key; free -> acquire (retry on a short timer
                           while lock-delay runs); held by our own session while not leader ->
                           release it (we were fenced)
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from consulha.config import Config
from consulha.consul_store import (CheckNotPassing, ConsulRefused, ConsulStore,
                                   ConsulUnavailable, KvEntry)
from consulha.control import (ControlKeys, ControlState, HandoverRequest, append_history,
                              clear_request, put_request, read_control)
from consulha.backoff import Backoff
from consulha.dns import DnsProvider, make_provider
from consulha.publisher import DnsPublisher, iso_now
from consulha.election import Election, Lease, Role, Transition, lease_duration
from consulha.health import HealthReporter, script_ttl
from consulha.hooks import HookRunner
from consulha.keys import Keys
from consulha.metrics import Metrics, MetricsServer
from consulha.status import healthy_sites, service_instances

log = logging.getLogger("consulha.agent")


class Timing:
    """Every interval the agent uses, derived from the session settings in one place."""

    def __init__(self, cfg: Config):
        session = cfg.session
        self.lease = lease_duration(session.ttl, session.lock_delay)
        self.confirm_interval = self.lease / 4
        self.renew_interval = session.ttl / 4
        self.standby_wait = min(self.renew_interval, 5.0)
        self.acquire_retry = min(0.25, max(0.05, session.lock_delay / 10))
        self.request_timeout = 2.0
        # After a DNS write, how often and for how long the verify servers are polled.
        self.dns_poll = 0.05
        self.dns_converge_limit = 10.0
        # The main loop may sit in one blocking read plus one slow request before it ticks again.
        self.stall_limit = self.standby_wait * 17 / 16 + 2 * self.request_timeout + session.heartbeat_ttl


class Agent:
    def __init__(self, cfg: Config, store: ConsulStore | None = None,
                 dns: DnsProvider | None = None, transitions_file: str | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.cfg = cfg
        self.keys = Keys(cfg)
        self.timing = Timing(cfg)
        self._clock = clock
        self.store = store or ConsulStore(cfg.consul, self.timing.request_timeout,
                                          max_wait=self.timing.standby_wait)
        self.dns = dns or make_provider(cfg.dns, cfg.site)
        self.election = Election(Lease(self.timing.lease, clock), clock)
        self.metrics = Metrics(cfg)
        self.store.on_request = self.metrics.count_consul_request
        self.metrics_server = MetricsServer(cfg, self.metrics)
        self.stop_event = threading.Event()
        # The heartbeat outlives stop_event until the session is gone: the main loop may still
        # sit in a blocking read, and a heartbeat that lapsed meanwhile would invalidate the
        # session (lock-delay on its keys) before the graceful release.
        self._health_stop = threading.Event()
        self.session: str | None = None
        self._registered = False
        self._tags_role: str | None = None
        self._leader_index = 0
        self.control_keys = ControlKeys(cfg.key_prefix)
        self._maintenance_applied: bool | None = None
        self._next_renew = 0.0
        self._hold_off_until = 0.0
        self._free_seen: tuple[int, float] | None = None
        self._candidate_key_held = False
        self._last_tick = clock()
        self._published_status: dict | None = None
        self.publisher = DnsPublisher(cfg.dns, self.dns, self.election, clock, self._hold_off,
                                      self.metrics, self.timing.dns_poll,
                                      self.timing.dns_converge_limit)
        self.hooks = HookRunner(cfg.hooks, cfg.site, cfg.group)
        self.election.subscribe(self._on_transition)
        self.metrics.follow(self.election, self._making_progress)
        if transitions_file:
            self.election.subscribe(TransitionRecorder(transitions_file, cfg.site))
        scripts = {self.keys.check_id(s.name): s.check for s in cfg.services if s.check.kind == "script"}
        self.health = HealthReporter(
            ConsulStore(cfg.consul, self.timing.request_timeout), self.keys.heartbeat_check_id,
            cfg.session.heartbeat_ttl, scripts, Path(cfg.path).parent,
            is_alive=self._making_progress,
            stop=self._health_stop,
        )

    def _making_progress(self) -> bool:
        return self._clock() - self._last_tick < self.timing.stall_limit

    # -- lifecycle ------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until `stop_event` is set; then hand over cleanly. Returns the exit code."""
        log.info("site %s of group %s starting: lease %.3fs, confirm every %.3fs, renew every %.1fs",
                 self.cfg.site, self.cfg.group, self.timing.lease, self.timing.confirm_interval,
                 self.timing.renew_interval)
        self.hooks.start()
        self.metrics_server.start()
        threads = [threading.Thread(target=self._watchdog, name="watchdog", daemon=True),
                   threading.Thread(target=self.publisher.run, args=(self.stop_event,), name="dns",
                                    daemon=True)]
        for thread in threads:
            thread.start()
        health_started = False
        # Short cap: a leader or a standby with a live session must renew within the session TTL,
        # and one request a second is no load for a Consul that is down.
        backoff = Backoff(cap=1.0)
        while not self.stop_event.is_set():
            self._last_tick = self._clock()
            try:
                if not self._registered:
                    self._register()
                    if not health_started:
                        self.health.start()
                        health_started = True
                self._cycle()
                backoff.reset()
            except ConsulUnavailable as error:
                delay = backoff.next()
                self._lose_session_view(f"consul unavailable: {error}")
                log.warning("consul unavailable (%s); retrying in %.1fs", error, delay)
                self.stop_event.wait(delay)
            except ConsulRefused as error:
                delay = backoff.next()
                self.election.ineligible(f"consul refused: {error}")
                log.error("consul refused a request (%s); retrying in %.1fs", error, delay)
                self.stop_event.wait(delay)
        self._shutdown()
        self.metrics_server.stop()
        self._health_stop.set()
        for thread in threads:
            thread.join(2)
        if health_started:
            self.health.join(2)
        return 0

    def stop(self) -> None:
        self.stop_event.set()
        self.publisher.wake()

    def _shutdown(self) -> None:
        epoch = self.election.epoch
        was_leader = self.election.demote("graceful stop")
        self.election.stop("graceful stop")
        try:
            if self.session:
                if was_leader or self._holds_leader_key():
                    self._release("graceful stop", epoch)
                    log.info("released the lock: the standby can take over at once")
                self._end_session()
            if self._registered:
                for service in self.cfg.services:
                    self.store.deregister_service(self.keys.service_id(service.name))
                self.store.deregister_check(self.keys.heartbeat_check_id)
                self.store.delete(self.keys.site_status)
        except (ConsulUnavailable, ConsulRefused) as error:
            log.warning("could not clean up in Consul on stop: %s", error)
        self.hooks.stop(self.cfg.hooks.timeout)

    def _end_session(self) -> None:
        """Release the candidate key, then destroy the session. Destroying it puts lock-delay
        on every key it holds and an explicit release does not, so our next session (after a
        restart or maintenance) can take the candidate key at once."""
        if self._candidate_key_held:
            self.store.release(self.keys.candidate(self.cfg.site), self.session, None)
            self._candidate_key_held = False
        self.store.destroy_session(self.session)
        self.session = None

    def _holds_leader_key(self) -> bool:
        _, entry = self.store.get(self.keys.leader)
        return entry is not None and entry.session == self.session

    # -- registration ---------------------------------------------------------------------------

    def _register(self) -> None:
        self.store.register_ttl_check(self.keys.heartbeat_check_id,
                                      f"consulha heartbeat {self.cfg.group}/{self.cfg.site}",
                                      self.cfg.session.heartbeat_ttl, "consulha agent heartbeat")
        self._sync_tags(force=True)
        self._registered = True

    def _sync_tags(self, force: bool = False) -> None:
        """Tag every service `leader` or `standby` so the Consul UI shows the site's role."""
        role = "leader" if self.election.role == Role.LEADER else "standby"
        if role == self._tags_role and not force:
            return
        for service in self.cfg.services:
            self.store.register_service(
                self.keys.service_id(service.name), service.name, tags=[role],
                meta={"consulha_site": self.cfg.site, "consulha_group": self.cfg.group},
                port=service.port, check=consul_check(service.check),
            )
        self._tags_role = role
        self._maintenance_applied = None  # re-registration may have cleared it: apply again

    def _ensure_registered(self) -> None:
        """Level-triggered repair: a restarted Consul agent may have forgotten us."""
        checks = self.store.local_checks()
        wanted = [self.keys.heartbeat_check_id] + [self.keys.check_id(s.name) for s in self.cfg.services]
        if any(check_id not in checks for check_id in wanted):
            log.warning("our checks are missing from the local Consul agent: registering again")
            self._register()

    # -- the HA cycle ---------------------------------------------------------------------------

    def _cycle(self) -> None:
        self._publish_site_status()
        control = read_control(self.store, self.control_keys)
        self.metrics.observe_control(control)
        # Only after the servers answered: a tag change makes the local Consul agent sync to
        # them, and while that sync hangs (servers unreachable, Raft election) the agent also
        # stalls our heartbeat updates until the heartbeat check lapses.
        self._sync_tags()
        self._apply_maintenance(control)
        mark = control.in_maintenance(self.cfg.site)
        if mark is not None and self.election.role != Role.LEADER:
            self._withdraw(f"maintenance: {mark.get('reason') or 'no reason given'}")
        elif self.session is None:
            self._become_candidate()
        elif self.election.role == Role.LEADER:
            self._lead(control)
        else:
            self._stand_by()

    def _become_candidate(self) -> None:
        if self._clock() < self._hold_off_until:
            self.stop_event.wait(self._hold_off_until - self._clock())
            return
        self._ensure_registered()
        try:
            session = self.store.create_session(
                self.keys.session_name, self.keys.session_checks, self.cfg.session.ttl,
                self.cfg.session.lock_delay)
        except CheckNotPassing as error:
            self.election.ineligible(f"not a candidate: {error}")
            self.stop_event.wait(0.25)
            return
        self.session = session
        self._next_renew = self._clock() + self.timing.renew_interval
        self._candidate_key_held = False  # taken by the next leader or standby pass
        self.election.candidate(f"session {session[:8]} created: every check passing")

    def _keep_candidate_key(self) -> None:
        """Hold <prefix>/candidates/<site> with our session, retried on every leader and
        standby pass until it is ours: it can be refused for a while (a previous session of
        ours still holds it, or its lock-delay runs), and a site that wins the lock meanwhile
        must not stay missing from the candidates."""
        if self._candidate_key_held:
            return
        value = json.dumps({"site": self.cfg.site, "session": self.session,
                            "address": self.cfg.dns.value, "since": iso_now()}).encode()
        self._candidate_key_held = self.store.acquire(self.keys.candidate(self.cfg.site), value,
                                                      self.session)

    def _withdraw(self, reason: str) -> None:
        """Leave the election (maintenance): no session, no candidacy, until the mark is gone."""
        if self.session:
            self._end_session()
        self.election.ineligible(reason)
        self.stop_event.wait(0.5)

    def _renew_if_due(self) -> bool:
        """Renew our session when due; False (and no session) when Consul no longer has it."""
        if self._clock() < self._next_renew:
            return True
        if not self.store.renew_session(self.session):
            self._drop_session("session invalidated (a check went critical or the TTL expired)")
            return False
        self._next_renew = self._clock() + self.timing.renew_interval
        self._ensure_registered()
        _, candidate = self.store.get(self.keys.candidate(self.cfg.site))
        self._candidate_key_held = candidate is not None and candidate.session == self.session
        return True

    def _lead(self, control: ControlState) -> None:
        if not self._renew_if_due():
            return
        sent_at = self._clock()
        _, entry = self.store.get(self.keys.leader)
        if entry is None or entry.session != self.session:
            self.election.demote(_loss_reason(entry))
            if entry is None or entry.session is None:
                # Our session may be gone too; find out now rather than at the next renewal.
                self._next_renew = 0.0
            return
        self.election.confirm(sent_at)
        self._keep_candidate_key()
        self._serve_requests(control)
        if self.election.role == Role.LEADER:
            self.stop_event.wait(max(0.0, sent_at + self.timing.confirm_interval - self._clock()))

    def _stand_by(self) -> None:
        if not self._renew_if_due():
            return
        self._keep_candidate_key()
        index, entry = self.store.get(self.keys.leader, index=self._leader_index,
                                      wait=self._standby_wait())
        self.election.candidate("consul answers again: competing")
        # A smaller index means Consul's state was reset (restored or rebuilt): start over.
        self._leader_index = index if index >= self._leader_index else 0
        if entry is not None and entry.session == self.session:
            self._resume_or_release()
            return
        if entry is not None and entry.session is not None:
            self._ask_for_failback((entry.json() or {}).get("site"))
            return
        self._try_acquire(entry)

    def _resume_or_release(self) -> None:
        """We hold the lock but are not leader: we fenced ourselves (Consul was slow or
        unreachable for longer than the lease) and the lock never left us. Nobody else can have
        led meanwhile, so resume at the same epoch: no new epoch, no DNS write. Unless we were
        told to stand down (stale epoch) or the key has no epoch: then give the lock back."""
        sent_at = self._clock()
        _, entry = self.store.get(self.keys.leader)
        if entry is None or entry.session != self.session:
            return
        epoch = (entry.json() or {}).get("epoch")
        if not isinstance(epoch, int) or self._clock() < self._hold_off_until:
            self.store.release(self.keys.leader, self.session, entry.value)
            log.warning("released a lock we held after standing down")
        elif self.election.promote(epoch, sent_at, "lease restored: the lock never left us"):
            self.publisher.wake()
        # Otherwise the proof came back after the lease it would grant (Consul slower than the
        # lease): keep the lock, try again on the next pass.

    def _standby_wait(self) -> float:
        return max(0.05, min(self.timing.standby_wait, self._next_renew - self._clock()))

    def _try_acquire(self, entry: KvEntry | None) -> None:
        """The lock is free: take it unless we are held off, a live request names another site,
        or the old leader may still believe it leads.

        A leader that released on its own (graceful stop, handover) demoted first and says so in
        the value. Any other way the key became free may have left the old leader in charge
        until its next confirmation: an invalidated session is covered by Consul's lock-delay,
        which is longer than the lease, but a key deleted or released by an operator has no
        delay at all. So wait one lease from when we first saw the key free."""
        previous = (entry.json() or {}) if entry else {}
        free_id = entry.modify_index if entry else -1
        if self._free_seen is None or self._free_seen[0] != free_id:
            self._free_seen = (free_id, self._clock())
        old_leader_gone_at = self._free_seen[1] + (0 if previous.get("released") else self.timing.lease)
        request = read_control(self.store, self.control_keys).handover
        if (self._clock() < max(self._hold_off_until, old_leader_gone_at)
                or (request and request.names_other_than(self.cfg.site))):
            self._leader_index = 0  # the next read must not block: nothing will change the key
            self.stop_event.wait(self.timing.acquire_retry)
            return
        if not self.store.acquire(self.keys.leader, self._leader_value(None), self.session):
            # Free but refused: lock-delay of an invalidated session is running. Retry on a
            # short timer (a blocking read would not wake us when the delay ends).
            self._leader_index = 0
            self.stop_event.wait(self.timing.acquire_retry)
            return
        sent_at = self._clock()
        _, entry = self.store.get(self.keys.leader)
        if entry is None or entry.session != self.session:
            return
        epoch = entry.modify_index
        if not self.store.put(self.keys.leader, self._leader_value(epoch), cas=epoch):
            return
        cause, request = self._cause_of_win(previous, request)
        self._free_seen = None
        if self.election.promote(epoch, sent_at, cause):
            self.publisher.wake()
            if request is not None:
                clear_request(self.store, self.control_keys, request)
            append_history(self.store, self.control_keys, {
                "time": iso_now(), "epoch": epoch, "from": previous.get("site"),
                "to": self.cfg.site, "cause": cause})

    def _cause_of_win(self, previous: dict, request: HandoverRequest | None
                      ) -> tuple[str, HandoverRequest | None]:
        """Why the lock came to us, for the history: a request naming us, the old leader's own
        word on release, or the checks of its site that are failing now."""
        if request and request.live() and request.to in (None, self.cfg.site):
            return f"{request.kind} by {request.by}", request
        if previous.get("released"):
            return previous["released"], None
        site = previous.get("site")
        if not site:
            return "initial election", None
        failing = [c for instance in service_instances(self.cfg, self.keys, self.store)
                   if instance["site"] == site for c in instance["checks"]
                   if c["status"] == "critical"]
        if not failing and site != self.cfg.site:
            return "session of the leader expired or was destroyed", None
        names = sorted({c["service"] for c in failing if c["service"]})
        if names:
            return f"check failed: {', '.join(names)}", None
        if any(c["id"] == self.keys.heartbeat_check_id_of(site) for c in failing):
            return "agent lost heartbeat", None
        if any(c["id"] == "serfHealth" for c in failing):
            return "node unreachable (serfHealth critical)", None
        return "session of the leader invalidated", None

    # -- operator requests (leader side) -------------------------------------------------------

    def _serve_requests(self, control: ControlState) -> None:
        """Honour maintenance of our own site and handover requests; expire stale requests."""
        request = control.handover
        if request and request.state in ("pending", "accepted") and request.expired():
            clear_request(self.store, self.control_keys, request)
            log.info("handover request by %s expired unhonoured", request.by)
            request = None
        mark = control.in_maintenance(self.cfg.site)
        if mark is not None:
            target, why = self._pick_target(None, control)
            if target is None and not mark.get("force"):
                return  # the CLI refuses this; a mark written by hand waits for a candidate
            self._hand_over(f"maintenance: {mark.get('reason') or 'no reason given'}")
            return
        if request is None or request.state != "pending":
            return
        target, why = self._pick_target(request.to, control)
        if target is None:
            put_request(self.store, self.control_keys, request.with_state("refused", why))
            log.warning("refused a %s request by %s: %s", request.kind, request.by, why)
            return
        if put_request(self.store, self.control_keys, request.with_state("accepted", to=target)):
            self._hand_over(f"{request.kind} to {target} requested by {request.by}")

    def _pick_target(self, wanted: str | None, control: ControlState) -> tuple[str | None, str]:
        """A live candidate other than us, not in maintenance, whose checks all pass."""
        _, entries = self.store.get_prefix(self.keys.candidates)
        live = {e.key.removeprefix(self.keys.candidates) for e in entries if e.session}
        healthy = healthy_sites(service_instances(self.cfg, self.keys, self.store))
        options = sorted(site for site in live & healthy
                         if site != self.cfg.site and not control.in_maintenance(site))
        if wanted is None:
            return (options[0], "") if options else (None, "no other healthy candidate")
        if wanted == self.cfg.site:
            return None, f"site {wanted} already leads"
        if wanted not in live:
            return None, f"site {wanted} is not a live candidate"
        if wanted not in options:
            return None, f"site {wanted} is unhealthy or in maintenance"
        return wanted, ""

    def _hand_over(self, reason: str) -> None:
        """Planned step-down: stop writing DNS first, then release (no lock-delay follows)."""
        epoch = self.election.epoch
        self.election.demote(reason)
        self._release(reason, epoch)

    def _release(self, reason: str, epoch: int | None) -> None:
        """Release the lock, leaving our value with the reason (the next leader's history cause)."""
        value = json.loads(self._leader_value(epoch))
        value["released"] = reason
        self.store.release(self.keys.leader, self.session, json.dumps(value).encode())

    def _ask_for_failback(self, holder: str | None) -> None:
        """The preferred site, healthy for the whole failback delay, asks for its lead back."""
        election_cfg = self.cfg.election
        if (election_cfg.preferred_site != self.cfg.site or holder in (None, self.cfg.site)
                or self.election.role != Role.STANDBY
                or self._clock() - self.election.since < election_cfg.failback_delay):
            return
        if read_control(self.store, self.control_keys).handover is not None:
            return
        now = time.time()
        request = HandoverRequest(to=self.cfg.site, by=f"failback policy of site {self.cfg.site}",
                                  kind="failback", from_site=holder, requested_at=now,
                                  expires_at=now + 30)
        if put_request(self.store, self.control_keys, request):
            log.info("healthy for %.0fs as preferred site: asked %s for a failback",
                     election_cfg.failback_delay, holder)

    def _apply_maintenance(self, control: ControlState) -> None:
        """Mirror our maintenance mark onto Consul's service maintenance (shown in the UI)."""
        mark = control.in_maintenance(self.cfg.site)
        wanted = mark is not None
        if wanted == self._maintenance_applied:
            return
        reason = f"consulha maintenance: {(mark or {}).get('reason') or 'no reason given'}"
        for service in self.cfg.services:
            self.store.service_maintenance(self.keys.service_id(service.name), wanted, reason)
        self._maintenance_applied = wanted

    def _leader_value(self, epoch: int | None) -> bytes:
        return json.dumps({"site": self.cfg.site, "address": self.cfg.dns.value, "epoch": epoch,
                           "acquired_at": iso_now(), "session": self.session}).encode()

    def _hold_off(self) -> None:
        """DNS carries a newer epoch than ours: stay away from the lock for one session TTL."""
        self._hold_off_until = self._clock() + self.cfg.session.ttl

    def _drop_session(self, reason: str) -> None:
        self.session = None
        self._leader_index = 0
        if not self.election.demote(reason, to=Role.INELIGIBLE):
            self.election.ineligible(reason)

    def _lose_session_view(self, reason: str) -> None:
        """Consul is unreachable: a standby cannot compete; a leader keeps its lease until the
        watchdog fences it (a short blip must not cost leadership)."""
        self._next_renew = 0.0
        if self.election.role != Role.LEADER:
            self.election.ineligible(reason)

    # -- site status (shown by `consulha status`) ---------------------------------------------

    def _publish_site_status(self) -> None:
        status = {"site": self.cfg.site, "role": self.election.role.value,
                  "reason": self.election.reason, "epoch": self.election.epoch,
                  "dns": self.publisher.last}
        if status == self._published_status:
            return
        self.store.put(self.keys.site_status, json.dumps({**status, "updated_at": iso_now()}).encode())
        self._published_status = status

    # -- background loops ----------------------------------------------------------------------

    def _watchdog(self) -> None:
        step = min(0.05, self.timing.lease / 8)
        while not self.stop_event.wait(step):
            self.election.fence_if_expired()

    def _on_transition(self, transition: Transition) -> None:
        log.info("role %s -> %s (epoch %s): %s", transition.old.value, transition.new.value,
                 transition.epoch, transition.reason)
        if transition.new == Role.LEADER:
            self.hooks.submit("promote", transition.epoch, transition.reason)
        elif transition.old == Role.LEADER:
            self.hooks.submit("demote", transition.epoch, transition.reason)


def _loss_reason(entry: KvEntry | None) -> str:
    if entry is None:
        return "leader key deleted"
    if entry.session is None:
        return "lock released (session invalidated, or released by an operator)"
    holder = (entry.json() or {}).get("site", "?")
    return f"lock now held by another session (site {holder})"


def consul_check(check) -> dict:
    """The Consul check definition for a service check (script checks become TTL checks)."""
    if check.kind == "http":
        return {"HTTP": check.target, "Interval": f"{check.interval}s", "Timeout": f"{check.timeout}s"}
    if check.kind == "tcp":
        return {"TCP": check.target, "Interval": f"{check.interval}s", "Timeout": f"{check.timeout}s"}
    return {"TTL": f"{script_ttl(check)}s", "Notes": f"pushed by consulha: {check.target}"}


class TransitionRecorder:
    """Appends every transition as a JSON line (for the fault-injection checker)."""

    def __init__(self, path: str, site: str):
        self._path = path
        self._site = site

    def __call__(self, transition: Transition) -> None:
        line = json.dumps({"site": self._site, "monotonic": transition.monotonic,
                           "wall": transition.wall, "role": transition.new.value,
                           "old": transition.old.value, "epoch": transition.epoch,
                           "reason": transition.reason})
        with open(self._path, "a") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())
