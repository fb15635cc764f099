"""The act side without Consul: each lock action's exact sequence of Consul calls, against a
scripted store that fails on any call it was not told to expect (in order, with its arguments).

The same behaviours run against a real Consul in test_failover.py and the chaos suite; these
rows pin the order of the calls, which is what the fault suite found to matter.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace

import pytest

from consulha.agent.failures import FailureRecorder
from consulha.agent.lock import LockActions
from consulha.agent.loop import Agent
from consulha.agent.observe import Observer, SessionMemory
from consulha.agent.publisher import DnsPublisher
from consulha.config import (
    CheckConfig,
    Config,
    ConsulConfig,
    DnsConfig,
    ElectionConfig,
    RecordConfig,
    ServiceConfig,
    SessionConfig,
)
from consulha.consul.store import CheckNotPassing
from consulha.consul.watch import GroupView
from consulha.core.control import ControlKeys, ControlState, HandoverRequest, PauseMark
from consulha.core.damping import Failure, FailureRecord
from consulha.core.decide import Act, Decision, Snapshot
from consulha.core.election import Election, Lease, Role
from consulha.core.keys import Keys
from consulha.core.reasons import Cause, Reason
from consulha.core.records import KvEntry, LeaderKey, LeaderRecord
from consulha.core.timing import Timing
from consulha.dns import StaleEpochError
from consulha.ops.metrics import Metrics

LEADER_KEY = "consulha/app/leader"
CANDIDATE_KEY = "consulha/app/candidates/a"
HISTORY_KEY = "consulha/app/history"
SESSION = "s-a"


class FakeClock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class ScriptedStore:
    """Expects exactly the calls it is given, in order: (method, expected args or None, result)."""

    def __init__(self, *expected: tuple):
        self.expected = list(expected)

    def __getattr__(self, method: str):
        def call(*args, **kwargs):
            assert self.expected, f"unexpected call {method}{args}{kwargs}"
            want, want_args, result = self.expected.pop(0)
            assert method == want, f"expected {want}, got {method}{args}{kwargs}"
            if want_args is not None:
                assert want_args(*args, **kwargs), f"{method} called with {args} {kwargs}"
            return result
        return call

    def finished(self) -> bool:
        return not self.expected


def entry(key: str, value: dict | None, session: str | None = None, index: int = 10) -> KvEntry:
    return KvEntry(key=key, value=json.dumps(value).encode() if value is not None else None,
                   modify_index=index, session=session, lock_index=1)


def config() -> Config:
    record = RecordConfig("app.example.test.", "A", "192.0.2.1", "example.test.")
    dns = DnsConfig(zone="example.test.", records=(record,), server=("127.0.0.1", 53), verify=(("127.0.0.1", 53),))
    return Config(path="/etc/consulha/app.yaml", site="a", group="app", key_prefix="consulha/app",
                  consul=ConsulConfig(), session=SessionConfig(), services=(), dns=dns,
                  election=ElectionConfig())


@pytest.fixture
def clock():
    return FakeClock()


def standby(clock) -> Election:
    election = Election(Lease(Timing.of(SessionConfig()).lease, clock), clock)
    election.candidate(Reason(Cause.SESSION_CREATED))
    return election


def actions(store, election, clock, memory=None) -> LockActions:
    cfg = config()
    memory = memory or SessionMemory(session=SESSION, candidate_key_held=True)
    keys, control_keys = Keys(cfg), ControlKeys(cfg.key_prefix)
    return LockActions(cfg, keys, store, control_keys, election, memory, Timing.of(cfg.session), clock,
                       FailureRecorder(cfg, keys, store, control_keys))


def free_snapshot(clock, previous: LeaderRecord | None, handover: HandoverRequest | None = None,
                  **control) -> Snapshot:
    return Snapshot(now=clock.now, wall=1_700_000_000.0, role=Role.STANDBY, role_since=0.0,
                    control=ControlState(handover=handover, **control), session=SESSION,
                    leader=LeaderKey(previous is not None, None, previous, 5))


def test_acquire_reads_the_index_writes_it_as_epoch_then_promotes(clock):
    election = standby(clock)
    released = LeaderRecord(site="b", epoch=3, released=Reason(Cause.GRACEFUL_STOP, "graceful stop"))
    store = ScriptedStore(
        ("acquire", lambda key, value, session: key == LEADER_KEY and session == SESSION, True),
        ("get", lambda key: key == LEADER_KEY, (42, entry(LEADER_KEY, {"site": "a"}, SESSION, index=42))),
        ("put", lambda key, value, cas: json.loads(value)["epoch"] == 42 and cas == 42, True),
        ("get", lambda key: key == HISTORY_KEY, (0, None)),
        ("put", lambda key, value, cas: key == HISTORY_KEY and json.loads(value)[0]["kind"] == "graceful_stop"
         and cas == 0, True),
    )
    assert actions(store, election, clock).acquire(free_snapshot(clock, released))
    assert (election.role, election.epoch) == (Role.LEADER, 42)
    assert str(election.reason) == "graceful stop" and store.finished()


def test_acquire_refused_by_lock_delay_writes_nothing_else(clock):
    election = standby(clock)
    store = ScriptedStore(("acquire", None, False))
    assert not actions(store, election, clock).acquire(free_snapshot(clock, None))
    assert election.role == Role.STANDBY and store.finished()


def test_acquire_that_lost_the_epoch_write_does_not_promote(clock):
    election = standby(clock)
    store = ScriptedStore(("acquire", None, True),
                          ("get", None, (42, entry(LEADER_KEY, {"site": "a"}, SESSION, index=42))),
                          ("put", None, False))
    assert not actions(store, election, clock).acquire(free_snapshot(clock, None))
    assert election.role == Role.STANDBY and store.finished()


def test_a_win_by_request_clears_the_request(clock):
    election = standby(clock)
    request = HandoverRequest(to="a", by="ops@h", state="accepted", requested_at=1_700_000_000.0,
                              expires_at=1_700_000_030.0, modify_index=8)
    store = ScriptedStore(("acquire", None, True),
                          ("get", None, (42, entry(LEADER_KEY, {"site": "a"}, SESSION, index=42))),
                          ("put", None, True),
                          ("delete", lambda key, cas: key.endswith("control/handover") and cas == 8, True),
                          ("get", None, (0, None)), ("put", None, True))
    assert actions(store, election, clock).acquire(free_snapshot(clock, LeaderRecord(site="b", epoch=3), request))
    assert election.reason.cause == Cause.HANDOVER and store.finished()


STEPPED_DOWN_B = LeaderRecord(site="b", epoch=3, released=Reason(Cause.CHECK_FAILED, "local check critical: api"))
FAILURES_B = "consulha/app/control/failures/b"


def test_a_win_from_a_leader_that_failed_counts_its_failure_after_the_history(clock):
    """The loser may be dead or cut off: the winner counts the loss for it, once."""
    store = ScriptedStore(
        ("acquire", None, True), ("get", None, (42, entry(LEADER_KEY, {"site": "a"}, SESSION, index=42))),
        ("put", None, True), ("get", lambda key: key == HISTORY_KEY, (0, None)), ("put", None, True),
        ("get", lambda key: key == FAILURES_B, (0, None)),
        ("put", lambda key, value, cas: key == FAILURES_B and cas == 0 and json.loads(value)["recent"][0]["epoch"] == 3
         and json.loads(value)["total"] == 1, True),
        ("get", lambda key: key == HISTORY_KEY, (43, entry(HISTORY_KEY, [], index=43))),
        ("put", lambda key, value, cas: json.loads(value)[-1]["kind"] == "failure" and cas == 43, True))
    assert actions(store, standby(clock), clock).acquire(free_snapshot(clock, STEPPED_DOWN_B))
    assert store.finished()


def test_a_win_whose_loser_recorded_its_failure_writes_nothing_more(clock):
    known = FailureRecord("b", penalty=1.0, recent=(Failure(3, 1.0, Reason(Cause.CHECK_FAILED)),))
    store = ScriptedStore(("acquire", None, True),
                          ("get", None, (42, entry(LEADER_KEY, {"site": "a"}, SESSION, index=42))),
                          ("put", None, True), ("get", None, (0, None)), ("put", None, True))
    snapshot = free_snapshot(clock, STEPPED_DOWN_B, failures={"b": known})
    assert actions(store, standby(clock), clock).acquire(snapshot) and store.finished()


def test_a_damped_win_says_so_in_the_history(clock):
    damped = Reason(Cause.DAMPED, "lock free, no other healthy candidate: leading although damped: ...")
    store = ScriptedStore(("acquire", None, True),
                          ("get", None, (42, entry(LEADER_KEY, {"site": "a"}, SESSION, index=42))),
                          ("put", None, True), ("get", None, (0, None)),
                          ("put", lambda key, value, cas: json.loads(value)[0]["cause"]
                           == "graceful stop; " + str(damped), True))
    graceful = LeaderRecord(site="a", epoch=3, released=Reason(Cause.GRACEFUL_STOP, "graceful stop"))
    assert actions(store, standby(clock), clock).acquire(free_snapshot(clock, graceful), damped)
    assert store.finished()


def test_hand_over_demotes_before_it_releases_with_the_reason(clock):
    election = standby(clock)
    election.promote(42, clock.now, Reason(Cause.INITIAL_ELECTION))
    seen_roles = []

    def released(key, session, value):
        seen_roles.append(election.role)
        return json.loads(value)["released"]["cause"] == "maintenance" and json.loads(value)["epoch"] == 42

    store = ScriptedStore(("release", released, True))
    actions(store, election, clock).hand_over(Reason(Cause.MAINTENANCE, "maintenance: kernel"))
    assert seen_roles == [Role.STANDBY] and store.finished()


def test_end_session_releases_the_candidate_key_before_destroying_the_session(clock):
    """Destroying first would put lock-delay on the candidate key for our next session."""
    memory = SessionMemory(session=SESSION, candidate_key_held=True)
    store = ScriptedStore(("release", lambda key, session, value: key == CANDIDATE_KEY, True),
                          ("destroy_session", lambda session: session == SESSION, None))
    actions(store, standby(clock), clock, memory).end_session()
    assert memory.session is None and store.finished()


def test_resume_promotes_at_the_same_epoch_on_a_fresh_read(clock):
    election = standby(clock)
    store = ScriptedStore(("get", None, (42, entry(LEADER_KEY, {"site": "a", "epoch": 42}, SESSION))))
    assert actions(store, election, clock).resume(42, Reason(Cause.LEASE_RESTORED))
    assert (election.role, election.epoch) == (Role.LEADER, 42) and store.finished()


def test_resume_does_nothing_when_the_fresh_read_shows_another_holder(clock):
    election = standby(clock)
    store = ScriptedStore(("get", None, (43, entry(LEADER_KEY, {"site": "b", "epoch": 43}, "s-b"))))
    assert not actions(store, election, clock).resume(42, Reason(Cause.LEASE_RESTORED))
    assert election.role == Role.STANDBY and store.finished()


def test_keep_candidate_key_is_retried_until_held(clock):
    memory = SessionMemory(session=SESSION)
    store = ScriptedStore(("acquire", lambda key, value, session: key == CANDIDATE_KEY, False),
                          ("acquire", None, True))
    lock = actions(store, standby(clock), clock, memory)
    lock.keep_candidate_key()
    assert not memory.candidate_key_held
    lock.keep_candidate_key()
    lock.keep_candidate_key()  # held: no third call
    assert memory.candidate_key_held and store.finished()


# -- observe ---------------------------------------------------------------------------------------

def observer(store, election, clock, watch=None) -> Observer:
    cfg = config()
    return Observer(store, Keys(cfg), ControlKeys(cfg.key_prefix), Timing.of(cfg.session), election,
                    "a", cfg, clock, wall_clock=lambda: 1_700_000_000.0, watch=watch)


class FreshWatch:
    def __init__(self, control, holders):
        self._view = GroupView(control, holders, answered_at=0.0)

    def view(self):
        return self._view


def test_a_fresh_watch_spares_the_control_read_while_the_key_is_held(clock):
    memory = SessionMemory(session=SESSION, next_renew=clock.now + 1, candidate_key_held=True)
    held = entry(LEADER_KEY, {"site": "b", "epoch": 3}, "s-b")
    store = ScriptedStore(("get", None, (9, held)))
    watch = FreshWatch(ControlState(pause=PauseMark(by="ops")), {"a": SESSION})
    snapshot = observer(store, standby(clock), clock, watch).observe(memory)
    assert snapshot.control.pause is not None and memory.candidate_key_held and store.finished()


def test_a_free_key_reads_control_directly_despite_the_watch(clock):
    """A request written while we blocked must be seen in the pass that sees the key free."""
    memory = SessionMemory(session=SESSION, next_renew=clock.now + 1, candidate_key_held=True)
    store = ScriptedStore(("get", None, (9, None)), ("get_prefix", None, (9, [])))
    watch = FreshWatch(ControlState(), {"a": SESSION})
    observer(store, standby(clock), clock, watch).observe(memory)
    assert store.finished()


def test_the_watch_notices_that_our_candidate_key_was_taken_from_us(clock):
    memory = SessionMemory(session=SESSION, next_renew=clock.now + 1, candidate_key_held=True)
    store = ScriptedStore(("get", None, (9, entry(LEADER_KEY, {"site": "b"}, "s-b"))))
    observer(store, standby(clock), clock, FreshWatch(ControlState(), {"a": None})).observe(memory)
    assert not memory.candidate_key_held


def test_a_standby_blocks_on_the_leader_key_then_reads_control(clock):
    memory = SessionMemory(session=SESSION, next_renew=clock.now + 1, leader_index=7)
    store = ScriptedStore(
        ("get", lambda key, index, wait: key == LEADER_KEY and index == 7 and 0 < wait <= 1, (9, None)),
        ("get_prefix", lambda prefix: prefix == "consulha/app/control/", (9, [])),
    )
    snapshot = observer(store, standby(clock), clock).observe(memory)
    assert not snapshot.leader.exists and snapshot.free_since == clock.now
    assert memory.leader_index == 9 and store.finished()


def test_an_index_that_went_backwards_starts_over(clock):
    memory = SessionMemory(session=SESSION, next_renew=clock.now + 1, leader_index=700)
    store = ScriptedStore(("get", None, (9, None)), ("get_prefix", None, (9, [])))
    observer(store, standby(clock), clock).observe(memory)
    assert memory.leader_index == 0


def test_a_due_renewal_that_fails_reports_the_session_gone(clock):
    memory = SessionMemory(session=SESSION, next_renew=clock.now)
    store = ScriptedStore(("renew_session", None, False), ("get_prefix", None, (9, [])))
    assert observer(store, standby(clock), clock).observe(memory).session_alive is False


def test_the_free_time_is_kept_while_the_key_stays_the_same(clock):
    memory = SessionMemory(session=SESSION, next_renew=clock.now + 100)
    free = entry(LEADER_KEY, {"site": "b", "epoch": 3}, None, index=30)
    store = ScriptedStore(("get", None, (30, free)), ("get_prefix", None, (30, [])),
                          ("get", None, (30, free)), ("get_prefix", None, (30, [])))
    watcher = observer(store, standby(clock), clock)
    first = watcher.observe(memory).free_since
    clock.now += 0.5
    assert watcher.observe(memory).free_since == first == 100.0


# -- the DNS publisher on a stale epoch --------------------------------------------------------------

class StaleProvider:
    def __init__(self):
        self.publishes = 0

    def publish(self, epoch):
        self.publishes += 1
        raise StaleEpochError(epoch, epoch + 5)


def test_a_stale_epoch_in_dns_holds_off_then_demotes_without_writing(clock):
    election = standby(clock)
    election.promote(10, clock.now, Reason(Cause.INITIAL_ELECTION))
    stop = threading.Event()
    order = []
    provider = StaleProvider()
    publisher = DnsPublisher(config().dns, provider, election, clock, metrics=Metrics(config()),
                             on_stale=lambda: (order.append(election.role), stop.set()))
    publisher.wake()
    publisher.run(stop)
    assert order == [Role.LEADER]  # held off while still leader: the HA loop cannot resume first
    assert election.role == Role.STANDBY and election.reason.cause == Cause.STALE_EPOCH
    assert provider.publishes == 1



# -- the agent's dispatch of a decision --------------------------------------------------------------

class QuietDns:
    """The agent's DNS provider is only used by the publisher thread, which these tests never start."""


def agent_with(store, clock):
    agent = Agent(config(), store=store, dns=QuietDns(), clock=clock)
    agent.stop_event.set()  # every wait in an action returns at once
    agent.memory.session, agent.memory.candidate_key_held = SESSION, True
    return agent


def leading_agent(store, clock, **observed):
    """An agent that leads at epoch 5, and the snapshot of a pass that found the lock ours."""
    agent = agent_with(store, clock)
    agent.election.candidate(Reason(Cause.SESSION_CREATED))
    agent.election.promote(5, clock.now, Reason(Cause.INITIAL_ELECTION))
    snapshot = Snapshot(**{"now": clock.now, "wall": 1.0, "role": Role.LEADER, "role_since": 0,
                           "control": ControlState(), "session": SESSION,
                           "leader": LeaderKey(True, SESSION, LeaderRecord("a", epoch=5)),
                           "read_sent_at": clock.now, **observed})
    return agent, snapshot


def decided(act, cause=Cause.COMPETING, **fields):
    return Decision(act, Reason(cause), **fields)


def test_withdraw_ends_the_session_and_leaves_the_election(clock):
    store = ScriptedStore(("release", None, True), ("destroy_session", None, None))
    agent = agent_with(store, clock)
    agent._act(decided(Act.WITHDRAW, Cause.MAINTENANCE), free_snapshot(clock, None))
    assert agent.election.role == Role.INELIGIBLE and agent.memory.session is None and store.finished()


def test_a_refused_request_is_written_back_with_the_reason(clock):
    request = HandoverRequest(to="b", by="ops@h", requested_at=1.0, expires_at=2e9, modify_index=4)
    store = ScriptedStore(("put", lambda key, value, cas: json.loads(value)["state"] == "refused" and cas == 4, True))
    agent, snapshot = leading_agent(store, clock, control=ControlState(request))
    agent._act(decided(Act.REFUSE_REQUEST, Cause.TARGET_UNHEALTHY, request=request), snapshot)
    assert agent.election.role == Role.LEADER and store.finished()


def test_an_accepted_handover_releases_after_the_request_is_marked(clock):
    request = HandoverRequest(to="b", by="ops@h", requested_at=1.0, expires_at=2e9, modify_index=4)
    store = ScriptedStore(("put", lambda key, value, cas: json.loads(value)["state"] == "accepted", True),
                          ("release", lambda key, session, value: key == LEADER_KEY, True))
    agent, snapshot = leading_agent(store, clock, control=ControlState(request))
    agent._act(decided(Act.HAND_OVER, Cause.HANDOVER, target="b", request=request), snapshot)
    assert agent.election.role == Role.STANDBY and store.finished()


def test_a_session_refused_for_a_failing_check_makes_the_site_ineligible(clock):

    class Refusing(ScriptedStore):
        def create_session(self, *args):
            raise CheckNotPassing("Check 'service:app-a-api' is in critical state")

    # Then it waits for a check of its node to change (a blocking query), not on a timer.
    store = Refusing(("node_name", None, "app-a"),
                     ("wait_node_checks", lambda node, index, wait: node == "app-a" and index == 0, 17),
                     ("wait_node_checks", lambda node, index, wait: index == 17 and wait > 0, 18))
    agent = agent_with(store, clock)
    agent.memory.session = None
    agent._act(decided(Act.CREATE_SESSION, Cause.SESSION_CREATED), free_snapshot(clock, None))
    assert agent.election.role == Role.INELIGIBLE and agent.election.reason.cause == Cause.NOT_A_CANDIDATE
    assert agent.memory.checks_index == 18 and store.finished()


def test_a_dropped_session_demotes_a_leader_to_ineligible(clock):
    agent = agent_with(ScriptedStore(), clock)
    agent.election.candidate(Reason(Cause.SESSION_CREATED))
    agent.election.promote(5, clock.now, Reason(Cause.INITIAL_ELECTION))
    agent._act(decided(Act.DROP_SESSION, Cause.SESSION_INVALIDATED), free_snapshot(clock, None))
    assert agent.election.role == Role.INELIGIBLE and agent.memory.session is None


FAILURES_A = "consulha/app/control/failures/a"
LOST = Reason(Cause.LOCK_RELEASED, "lock released (session invalidated, or released by an operator)")


def test_a_leadership_lost_through_our_fault_is_remembered_then_recorded_before_anything_else(clock):
    agent, snapshot = leading_agent(ScriptedStore(), clock, wall=1_700_000_000.0)
    agent._act(decided(Act.DEMOTE, Cause.LOCK_RELEASED, failure=LOST), snapshot)
    assert agent.memory.lost == Failure(5, 1_700_000_000.0, LOST) and agent.election.role == Role.STANDBY
    agent.store.expected = [
        ("get", lambda key: key == FAILURES_A, (0, None)),
        ("put", lambda key, value, cas: key == FAILURES_A and json.loads(value)["recent"][0]["detail"] == str(LOST),
         True),
        ("get", lambda key: key == HISTORY_KEY, (0, None)), ("put", None, True)]
    lost = replace(free_snapshot(clock, LeaderRecord("a", epoch=5)), lost=agent.memory.lost)
    agent._act(Decision(Act.RECORD_FAILURE, LOST, epoch=5), lost)
    assert agent.memory.lost is None and agent.store.finished()


def test_a_self_fence_is_a_failure_only_unless_the_lock_is_still_ours(clock):
    agent, _ = leading_agent(ScriptedStore(), clock)
    clock.now += 5
    agent.election.fence_if_expired()
    assert (agent.memory.lost.epoch, agent.memory.lost.reason.cause) == (5, Cause.SELF_FENCED)
    agent.store.expected = [("get", None, (5, entry(LEADER_KEY, {"site": "a", "epoch": 5}, SESSION)))]
    agent._act(decided(Act.RESUME, Cause.LEASE_RESTORED, epoch=5), free_snapshot(clock, None))
    assert agent.election.role == Role.LEADER and agent.memory.lost is None


def test_a_passed_over_site_says_so_once_per_free_lock(clock, caplog):
    caplog.set_level(logging.INFO, logger="consulha.damping")
    agent = agent_with(ScriptedStore(), clock)
    passed = decided(Act.WAIT_FOR_LOCK, Cause.DAMPED)
    for _ in range(3):
        agent._act(replace(passed, reason=Reason(Cause.DAMPED, "lock free, passed over for site b")),
                   free_snapshot(clock, LeaderRecord("a", epoch=5)))
    assert caplog.text.count("lock free, passed over for site b") == 1


def test_reanchor_reserves_the_lock_then_moves_it_to_the_new_session_at_the_same_epoch(clock):
    election = standby(clock)
    election.promote(42, clock.now, Reason(Cause.INITIAL_ELECTION))
    reservation = {"to": "a", "by": "consulha site a", "kind": "reanchor", "state": "accepted",
                   "requested_at": 1.0, "expires_at": 2e9}
    store = ScriptedStore(
        ("create_session", lambda name, checks, ttl, lock_delay: not any(c.startswith("service:") for c in checks),
         "s-new"),
        ("put", lambda key, value, cas: key.endswith("control/handover") and cas == 0
         and json.loads(value)["kind"] == "reanchor", True),
        ("release", lambda key, session, value: key == LEADER_KEY and session == SESSION, True),
        ("acquire", lambda key, value, session: session == "s-new" and json.loads(value)["epoch"] == 42, True),
        ("release", lambda key, session, value: key == CANDIDATE_KEY and session == SESSION, True),
        ("destroy_session", lambda session: session == SESSION, None),
        ("get", None, (50, entry("consulha/app/control/handover", reservation, index=50))),
        ("delete", lambda key, cas: cas == 50, True),
    )
    memory = SessionMemory(session=SESSION, candidate_key_held=True)
    actions(store, election, clock, memory).reanchor(paused=True, wall=1.0)
    assert (memory.session, memory.session_paused) == ("s-new", True)
    assert (election.role, election.epoch) == (Role.LEADER, 42) and store.finished()


def test_reanchor_waits_when_another_request_is_in_the_way(clock):
    election = standby(clock)
    election.promote(42, clock.now, Reason(Cause.INITIAL_ELECTION))
    store = ScriptedStore(("create_session", None, "s-new"), ("put", None, False),
                          ("destroy_session", lambda session: session == "s-new", None))
    memory = SessionMemory(session=SESSION, candidate_key_held=True)
    actions(store, election, clock, memory).reanchor(paused=True, wall=1.0)
    assert memory.session == SESSION and election.role == Role.LEADER and store.finished()


def test_local_truth_reads_critical_checks_that_have_run(clock):
    memory = SessionMemory()
    store = ScriptedStore(("local_checks", None, {
        "service:app-a-api": {"Status": "critical", "Output": "HTTP GET ...: 503"},
        "service:app-a-db": {"Status": "critical", "Output": ""},   # just registered: not run yet
    }), ("get_prefix", None, (1, [])))
    cfg = replace(config(), services=(ServiceConfig("api", CheckConfig("http", "http://x/")),
                                      ServiceConfig("db", CheckConfig("tcp", "127.0.0.1:5432"))))
    watcher = Observer(store, Keys(cfg), ControlKeys(cfg.key_prefix), Timing.of(cfg.session), standby(clock),
                       "a", cfg, clock)
    assert watcher.observe(memory).local_failing == ("api",) and store.finished()


def test_a_local_truth_step_down_says_which_node_blinds_the_catalog(clock):
    def released(key, session, value):
        detail = json.loads(value)["released"]["detail"]
        return "local check critical: api" in detail and "has ID old-id" in detail

    store = ScriptedStore(("local_node", None, ("app-a", "new-id")), ("catalog_node_id", None, "old-id"),
                          ("release", released, True))
    agent, snapshot = leading_agent(store, clock, local_failing=("api",))
    agent._act(Decision(Act.HAND_OVER, Reason(Cause.CHECK_FAILED, "local check critical: api")), snapshot)
    assert agent.election.role == Role.STANDBY and store.finished()


def test_a_pass_that_outlived_the_lease_fences_first_and_acts_on_nothing(clock):
    """Frozen mid-pass (SIGSTOP): on resume the pass finds our session gone, which the heartbeat
    lost meanwhile. The lease ran out before that, so that is when the leadership ended: the
    pass self-fences (as the watchdog would) instead of recording a later demotion for the
    session, whichever of the two threads runs first after the freeze."""
    store = ScriptedStore()  # no request: the next pass deals with the session
    agent, snapshot = leading_agent(store, clock)
    agent._publish_site_report = lambda: None
    moves = []
    agent.election.subscribe(moves.append)

    def observe_through_a_freeze(memory):
        clock.now += 10.0
        return replace(snapshot, now=clock.now, session_alive=False)

    agent.observer.observe = observe_through_a_freeze
    agent._pass()
    assert [(m.new, m.reason.cause) for m in moves] == [(Role.STANDBY, Cause.SELF_FENCED)]
    assert agent.memory.session == SESSION and store.finished()
