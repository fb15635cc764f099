"""The consulha agent: one site's candidate for the group's lock, and the DNS writer when it wins.

One pass of the main loop is observe -> decide -> act:
    observe   consulha.agent.observe: renew the session when due, read the leader key (a standby
              blocks on it), the control state, and what else the pass needs, into a Snapshot
    decide    consulha.core.decide: a pure function from the snapshot to one Decision (every rule)
    act       `Agent._act` below: carries the decision out; the timing-sensitive sequences
              (acquire -> read the index -> write the epoch -> promote) stay inside one action

Threads besides the main loop:
    watchdog    self-fencing: demotes on our own clock when the lease runs out
    dns         consulha.agent.publisher: publishes and re-checks DNS while we lead (fenced by epoch)
    heartbeat   consulha.ops.heartbeat: answers the local Consul agent's probes of our heartbeat
                check (one server per process) while the main loop makes progress
    checks      one per script check, pushing results to TTL checks
    probes      consulha.agent.ownchecks: while we lead, probes our HTTP/TCP services itself
    hooks       on_promote / on_demote commands
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from consulha.agent.failures import FailureRecorder
from consulha.agent.hooks import HookRunner
from consulha.agent.lock import LockActions
from consulha.agent.observe import Observer, SessionMemory
from consulha.agent.ownchecks import OwnProbes
from consulha.agent.publisher import DnsPublisher
from consulha.agent.sessions import RETRY_JITTER, Sessions
from consulha.agent.transitions import TransitionRecorder
from consulha.config import Config
from consulha.consul.control import put_request
from consulha.consul.health import ScriptChecks
from consulha.consul.localtruth import explain_blind_catalog
from consulha.consul.registration import Registrar
from consulha.consul.store import ConsulRefused, ConsulStore, ConsulUnavailable, HttpPool
from consulha.consul.watch import WATCH_WAIT, PrefixWatch, SharedWatch
from consulha.core.backoff import Backoff
from consulha.core.control import ControlKeys
from consulha.core.damping import Failure
from consulha.core.decide import Act, Decision, Policy, Snapshot, decide
from consulha.core.election import Election, Lease, Role, Transition
from consulha.core.keys import Keys
from consulha.core.reasons import Cause, Reason
from consulha.core.records import SiteReport
from consulha.core.timing import Timing
from consulha.dns import DnsProvider, make_provider
from consulha.ops.heartbeat import HeartbeatServer
from consulha.ops.metrics import Metrics, MetricsServer
from consulha.ops.sdnotify import GroupNotifier, LoopNotifier

log = logging.getLogger("consulha.agent")


class Agent:
    def __init__(self, cfg: Config, store: ConsulStore | None = None,
                 dns: DnsProvider | None = None, transitions_file: str | None = None,
                 clock: Callable[[], float] = time.monotonic, pool: HttpPool | None = None,
                 shared_watch: SharedWatch | None = None, heartbeat: HeartbeatServer | None = None,
                 systemd: LoopNotifier | GroupNotifier | None = None):
        """`pool`, `shared_watch`, `heartbeat`: HTTP connections, the watch of our keys and the
        heartbeat endpoint, shared with the other groups of this process (consulha.agent.host);
        `systemd`: what the loop tells systemd (in a host of many groups, the host's notifier:
        consulha.ops.sdnotify.HostNotifier)."""
        self.cfg = cfg
        self.keys = Keys(cfg)
        self.timing = Timing.of(cfg.session)
        self.policy = Policy(cfg.site, self.timing, cfg.election.preferred_site,
                             cfg.election.failback_delay, cfg.election.damping.enabled)
        self._clock = clock
        self.store = store or ConsulStore(cfg.consul, self.timing.request_timeout,
                                          max_wait=self.timing.standby_wait, pool=pool)
        self.dns = dns or make_provider(cfg.dns, cfg.site)
        self.election = Election(Lease(self.timing.lease, clock), clock)
        self.metrics = Metrics(cfg)
        self._counted(self.store)
        self.metrics_server = MetricsServer(cfg, self.metrics)
        self.memory = SessionMemory()
        self.control_keys = ControlKeys(cfg.key_prefix)
        self.stop_event = threading.Event()
        self._wake = threading.Event()  # ends a pass's wait early: stop, or a probe turned critical
        # The heartbeat outlives stop_event until the session is gone: the main loop may still
        # sit in a blocking read, and a heartbeat that failed meanwhile would invalidate the
        # session (lock-delay on its keys) before the graceful release.
        self._owns_heartbeat = heartbeat is None
        self.heartbeat = heartbeat or HeartbeatServer(cfg.session.heartbeat_address)
        self._scripts_stop = threading.Event()
        self._last_tick = clock()
        self._published: SiteReport | None = None
        self.registrar = Registrar(cfg, self.keys, self.store, self.heartbeat.url)
        watch_store = self._counted(ConsulStore(cfg.consul, self.timing.request_timeout,
                                                max_wait=WATCH_WAIT, pool=pool))
        self.watch = PrefixWatch(watch_store, cfg.key_prefix, self.control_keys, self.keys.candidates, clock)
        self._shared_watch = shared_watch
        self._systemd = systemd
        if shared_watch is not None:
            shared_watch.add(self.watch)  # its one read over every group's keys feeds our watch
        scripts = {self.keys.check_id(s.name): s.check for s in cfg.services if s.check.kind == "script"}
        self.scripts = ScriptChecks(
            self._counted(ConsulStore(cfg.consul, self.timing.request_timeout, pool=pool)),
            scripts, Path(cfg.path).parent, stop=self._scripts_stop,
            wake=self._wake.set if cfg.election.leader_probes else lambda: None)
        self.own_probes = OwnProbes({s.name: s.check for s in cfg.services} if cfg.election.leader_probes
                                    else {}, self._wake.set, self.stop_event, self._scripts_failing)
        self.observer = Observer(self.store, self.keys, self.control_keys, self.timing,
                                 self.election, cfg.site, cfg, clock, watch=self.watch,
                                 own_failing=self.own_probes.failing)
        self.publisher = DnsPublisher(cfg.dns, self.dns, self.election, clock, self._hold_off,
                                      self.metrics, self.timing.dns_poll,
                                      self.timing.dns_converge_limit)
        self.failures = FailureRecorder(cfg, self.keys, self.store, self.control_keys)
        self.lock = LockActions(cfg, self.keys, self.store, self.control_keys, self.election,
                                self.memory, self.timing, clock, self.failures)
        self.sessions = Sessions(self.lock, self.store, self.memory, self.election, self.timing,
                                 clock, self.stop_event)
        self.hooks = HookRunner(cfg.hooks, cfg.site, cfg.group)
        self.election.subscribe(self._on_transition)
        self.metrics.follow(self.election, self._making_progress)
        if transitions_file:
            self.election.subscribe(TransitionRecorder(transitions_file, cfg.site, cfg.group))

    def _counted(self, store: ConsulStore) -> ConsulStore:
        """Every thread's requests count in consulha_consul_requests_total, not the loop's alone."""
        store.on_request = self.metrics.count_consul_request
        return store

    def _scripts_failing(self) -> tuple[str, ...]:
        """Our script-checked services whose own verdict is critical, while we act on our own."""
        if not self.cfg.election.leader_probes:
            return ()
        critical = self.scripts.critical()
        return tuple(s.name for s in self.cfg.services if self.keys.check_id(s.name) in critical)

    def _making_progress(self) -> bool:
        return self._clock() - self._last_tick < self.timing.stall_limit

    # -- lifecycle ------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until `stop_event` is set; then hand over cleanly. Returns the exit code."""
        log.info("site %s of group %s starting: lease %.3fs, confirm every %.3fs, renew every %.1fs",
                 self.cfg.site, self.cfg.group, self.timing.lease, self.timing.confirm,
                 self.timing.renew)
        self.hooks.start()
        self.metrics_server.start()
        self.heartbeat.start()
        self.heartbeat.vouch(self.keys.heartbeat_check_id, self._making_progress)
        # Thread names carry the group: one process may serve many (consulha.agent.host).
        group = self.cfg.group
        threads = [threading.Thread(target=self._watchdog, name=f"{group}/watchdog", daemon=True),
                   threading.Thread(target=self.publisher.run, args=(self.stop_event,),
                                    name=f"{group}/dns", daemon=True)]
        for thread in threads:
            thread.start()
        self.own_probes.start(f"{group}/probes")
        if self._shared_watch is None:
            # Not joined on stop: it may sit in a blocking read for a minute and holds nothing.
            threading.Thread(target=self.watch.run, args=(self.stop_event,), name=f"{group}/watch",
                             daemon=True).start()
        scripts_started = False
        # Short cap: a leader or a standby with a live session must renew within the session TTL,
        # and one request a second is no load for a Consul that is down.
        backoff = Backoff(cap=1.0)
        systemd = self._systemd or LoopNotifier()  # Type=notify + WatchdogSec: fed by every pass
        while not self.stop_event.is_set():
            self._last_tick = self._clock()
            systemd.alive()
            try:
                if not self.registrar.registered:
                    self.registrar.register(leading=False)
                    if not scripts_started:
                        self.scripts.start()
                        scripts_started = True
                self._pass()
                systemd.cycle_completed(f"{self.election.role.value}, epoch {self.election.epoch}")
                backoff.reset()
            except ConsulUnavailable as error:
                delay = backoff.next()
                self._lose_consul(Reason(Cause.CONSUL_UNAVAILABLE, f"consul unavailable: {error}"))
                log.warning("consul unavailable (%s); retrying in %.1fs", error, delay)
                self.stop_event.wait(delay + random.uniform(0, RETRY_JITTER))
            except ConsulRefused as error:
                delay = backoff.next()
                self.election.ineligible(Reason(Cause.CONSUL_REFUSED, f"consul refused: {error}"))
                log.error("consul refused a request (%s); retrying in %.1fs", error, delay)
                self.stop_event.wait(delay)
        systemd.stopping()
        self._shutdown()
        self.metrics_server.stop()
        self._stop_vouching()
        for thread in threads:
            thread.join(2)
        if scripts_started:
            self.scripts.join(2)
        return 0

    def stop(self) -> None:
        self.stop_event.set()
        self._wake.set()
        self.publisher.wake()

    def abandon(self) -> None:
        """After `run` crashed: stop every thread, the heartbeat too, and clean nothing up, as
        if the process had died (a host of many groups restarts that group alone; a heartbeat
        left running would keep vouching for the dead loop, or fight the restarted one's)."""
        self._stop_vouching()
        self.stop()

    def _stop_vouching(self) -> None:
        """Our heartbeat check fails from the next probes on; script checks stop pushing."""
        self._scripts_stop.set()
        self.heartbeat.withdraw(self.keys.heartbeat_check_id)
        if self._owns_heartbeat:
            self.heartbeat.stop()

    def _shutdown(self) -> None:
        stop = Reason(Cause.GRACEFUL_STOP, "graceful stop")
        epoch = self.election.epoch
        was_leader = self.election.demote(stop)
        self.election.stop(stop)
        try:
            if self.memory.session:
                if was_leader or self.lock.holds_leader_key():
                    self.lock.release(stop, epoch)
                    log.info("released the lock: the standby can take over at once")
                self.lock.end_session()
            if self.registrar.registered:
                self.registrar.deregister()
                self.store.delete(self.keys.site_status)
        except (ConsulUnavailable, ConsulRefused) as error:
            log.warning("could not clean up in Consul on stop: %s", error)
        self.hooks.stop(self.cfg.hooks.timeout)

    # -- one pass -------------------------------------------------------------------------------

    def _pass(self) -> None:
        self._publish_site_report()
        self._wake.clear()  # before the read: a probe turning critical from now on ends the wait
        snapshot = self.observer.observe(self.memory)
        if snapshot.role == Role.LEADER and self.election.fence_if_expired():
            # The lease ran out while this pass observed (a freeze, a stall): our leadership
            # ended then, as the watchdog would record within its next step, whatever the
            # snapshot found since (the session gone, the lock taken). The next pass decides
            # from the new role; acting on this one would record a later end.
            return
        self.metrics.observe_control(snapshot.control)
        decision = decide(snapshot, self.policy)
        led = snapshot.role == Role.LEADER
        self._act(decision, snapshot)
        if self.election.role == Role.LEADER and not led:
            # Just promoted: the next pass, at once, confirms the lease before anything else.
            # A tag change waits for the local Consul agent to register the services, which
            # in a burst of many groups took long enough that new leaders' leases ran out
            # before their first confirmation (at 40 groups: 8 of 40 self-fenced 0.5 s after
            # winning, then resumed at the same epoch). The tags follow one pass later.
            return
        self.registrar.sync(self.election.role == Role.LEADER,
                            snapshot.control.in_maintenance(self.cfg.site),
                            self.observer.local_checks)
        if decision.wait > 0:
            self._wake.wait(decision.wait)

    def _act(self, d: Decision, s: Snapshot) -> None:
        if d.failure is not None and self.memory.lost is None:  # set: the watchdog fenced us first
            self.memory.lost = Failure(self.election.epoch, s.wall, d.failure)  # recorded next pass
        if d.act == Act.RECORD_FAILURE:
            self.failures.record_own(s.lost)
            self.memory.lost = None
        elif d.act == Act.WITHDRAW:
            if self.memory.session:
                self.lock.end_session()
            self.election.ineligible(d.reason)
        elif d.act == Act.HOLD_OFF:
            pass  # the decision's wait is the hold-off
        elif d.act == Act.CREATE_SESSION:
            self.sessions.open(paused=s.control.pause is not None)
        elif d.act == Act.SWAP_SESSION:
            self.sessions.swap(d, s)
        elif d.act == Act.DROP_SESSION:
            self.memory.forget_session()
            if not self.election.demote(d.reason, to=Role.INELIGIBLE):
                self.election.ineligible(d.reason)
        elif d.act == Act.DEMOTE:
            self.election.demote(d.reason)
            if not s.leader.held:
                self.memory.next_renew = 0.0  # our session may be gone too: find out now
        elif s.role == Role.LEADER:
            self._act_as_leader(d, s)
        else:
            self._act_as_standby(d, s)

    def _act_as_leader(self, d: Decision, s: Snapshot) -> None:
        """The read of this pass showed the lock is ours: it confirms the lease first."""
        self.election.confirm(s.read_sent_at)
        self.lock.keep_candidate_key()
        if d.act == Act.EXPIRE_REQUEST:
            self.lock.clear_request(d.request)
            log.info("%s", d.reason)
        elif d.act == Act.REFUSE_REQUEST:
            put_request(self.store, self.control_keys, d.request.with_state("refused", str(d.reason)))
            log.warning("refused a %s request by %s: %s", d.request.kind, d.request.by, d.reason)
        elif d.act == Act.HAND_OVER:
            accepted = d.request is None or put_request(
                self.store, self.control_keys, d.request.with_state("accepted", to=d.target))
            if accepted:
                reason = d.reason
                if reason.cause == Cause.CHECK_FAILED and s.local_failing:  # say why Consul did not act
                    reason = replace(reason, detail=f"{reason}; {explain_blind_catalog(self.store)}")
                    log.warning("stepping down: %s", reason)
                self.lock.hand_over(reason)

    def _act_as_standby(self, d: Decision, s: Snapshot) -> None:
        self.lock.keep_candidate_key()
        self.election.candidate(Reason(Cause.COMPETING, "consul answers again: competing"))
        if d.act == Act.RESUME:
            if self.lock.resume(d.epoch, d.reason):
                self.memory.lost = None  # the self-fence cost us nothing
        elif d.act == Act.RELEASE_OURS:
            self.lock.release_ours()
        elif d.act == Act.ASK_FAILBACK:
            self.lock.ask_for_failback(s.leader.holder_site, s.wall)
        elif d.act == Act.WAIT_FOR_LOCK:
            self.memory.leader_index = 0  # the next read must not block: nothing will change the key
            if d.reason.cause == Cause.DAMPED:
                self.failures.passed_over(d.reason, s.leader.modify_index)
        elif d.act == Act.ACQUIRE:
            if not self.own_probes.pass_now() or not self.lock.acquire(
                    s, d.reason if d.reason.cause == Cause.DAMPED else None):
                # A probe of ours failing, refused while lock-delay runs, or lost: retry on a
                # short timer (a blocking read would not wake us when the delay ends).
                self.memory.leader_index = 0
                self.stop_event.wait(self.timing.acquire_retry)

    def _hold_off(self) -> None:
        """DNS carries a newer epoch than ours: stay away from the lock for one session TTL."""
        self.memory.hold_off_until = self._clock() + self.cfg.session.ttl

    def _lose_consul(self, reason: Reason) -> None:
        """Consul is unreachable: a standby cannot compete; a leader keeps its lease until the
        watchdog fences it (a short blip must not cost leadership)."""
        self.memory.next_renew = 0.0
        if self.election.role != Role.LEADER:
            self.election.ineligible(reason)

    def _publish_site_report(self) -> None:
        """Our own account for `consulha status`, written only when it changed."""
        reason = self.election.reason
        report = SiteReport(site=self.cfg.site, role=self.election.role.value, reason=str(reason),
                            cause=reason.cause.value, epoch=self.election.epoch,
                            dns=self.publisher.last, dns_error=self.publisher.error)
        if report.same_as(self._published):
            return
        self.store.put(self.keys.site_status, report.encode())
        self._published = report

    # -- background loops ----------------------------------------------------------------------

    def _watchdog(self) -> None:
        step = min(0.05, self.timing.lease / 8)
        while not self.stop_event.wait(step):
            self.election.fence_if_expired()

    def _on_transition(self, transition: Transition) -> None:
        log.info("role %s -> %s (epoch %s): %s", transition.old.value, transition.new.value,
                 transition.epoch, transition.reason)
        if transition.new == Role.LEADER:
            self.own_probes.lead()
            if self.cfg.election.leader_probes:
                self.scripts.lagging.set()
            # From inside the promotion: DNS goes out before the win is recorded in history.
            self.publisher.wake()
            self.hooks.submit("promote", transition.epoch, str(transition.reason))
        elif transition.old == Role.LEADER:
            self.own_probes.stand_by()
            self.scripts.lagging.clear()
            self.hooks.submit("demote", transition.epoch, str(transition.reason))
            if transition.reason.cause == Cause.SELF_FENCED and self.policy.damping:
                # A failure unless the lock is still ours on the next pass (RESUME clears it).
                self.memory.lost = Failure(transition.epoch, transition.wall, transition.reason)
