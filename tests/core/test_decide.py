"""The rule table: every rule of `decide` (and every fix the fault suite forced) as a row,
snapshot in, action and reason kind out. Pure: no Consul, no clock, milliseconds per row.

Bounds come from `Timing` (the defaults of conf/site-a/app.yaml), never from numbers typed here.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from consulha.config import SessionConfig
from consulha.core.control import ControlState, HandoverRequest, MaintenanceMark, PauseMark
from consulha.core.damping import Failure, FailureRecord
from consulha.core.decide import Act, Policy, Snapshot, cause_of_win, decide, loss_reason
from consulha.core.election import Role
from consulha.core.reasons import Cause, Reason
from consulha.core.records import LeaderKey, LeaderRecord
from consulha.core.targets import Peers
from consulha.core.timing import Timing

T = Timing.of(SessionConfig())
NOW = 1000.0
WALL = 1_700_000_000.0
OURS, THEIRS = "s-a", "s-b"
POLICY = Policy(site="a", timing=T)
PREFERRED = Policy(site="a", timing=T, preferred_site="a", failback_delay=300.0)
NO_DAMPING = Policy(site="a", timing=T, damping=False)


def leader_key(holder: str | None, site: str = "a", epoch: int | None = 7,
               released: Reason | None = None, index: int = 50) -> LeaderKey:
    return LeaderKey(True, holder, LeaderRecord(site=site, epoch=epoch, released=released), index)


ABSENT = LeaderKey(exists=False)
HELD_BY_US = leader_key(OURS)
HELD_BY_B = leader_key(THEIRS, site="b", epoch=9)
FREE_INVALIDATED = leader_key(None, site="b", epoch=9)        # session invalidated or operator release
FREE_RELEASED = leader_key(None, site="b", epoch=9, released=Reason(Cause.GRACEFUL_STOP, "graceful stop"))
BOTH_HEALTHY = Peers(live=frozenset({"a", "b"}), healthy=frozenset({"a", "b"}))


def request(to: str | None = "b", state: str = "pending", kind: str = "handover",
            expires_in: float = 30.0) -> HandoverRequest:
    return HandoverRequest(to=to, by="ops@host", kind=kind, state=state, requested_at=WALL,
                           expires_at=WALL + expires_in, modify_index=3)


def control(handover: HandoverRequest | None = None, pause: PauseMark | None = None,
            failures: tuple[FailureRecord, ...] = (), **marks: MaintenanceMark) -> ControlState:
    return ControlState(handover=handover, maintenance=dict(marks), pause=pause,
                        failures={record.site: record for record in failures})


def damped(site: str = "a", left: float = 30.0) -> FailureRecord:
    """A failure record whose hold-down has `left` seconds to run at WALL (negative: over)."""
    return FailureRecord(site=site, penalty=1.0, as_of=WALL - 5, damped_until=WALL + left,
                         since=WALL - 5, streak=1, total=1)


def snap(role: Role = Role.STANDBY, leader: LeaderKey | None = HELD_BY_B, **changes) -> Snapshot:
    base = Snapshot(now=NOW, wall=WALL, role=role, role_since=NOW - 10, control=control(),
                    session=OURS, leader=leader, read_sent_at=NOW, free_since=None)
    return replace(base, **changes)


def leading(**changes) -> Snapshot:
    return snap(**{"role": Role.LEADER, "leader": HELD_BY_US, "peers": BOTH_HEALTHY, **changes})


def free_lock(state: ControlState, **changes) -> Snapshot:
    """A standby seeing the lock free (invalidated, one lease ago), b a healthy candidate."""
    return snap(**{"leader": FREE_INVALIDATED, "free_since": NOW - T.lease, "control": state,
                   "peers": BOTH_HEALTHY, **changes})


LOST = Failure(epoch=7, at=WALL - 0.2, reason=Reason(Cause.LOCK_RELEASED, "lock released"))
FENCED = Failure(epoch=7, at=WALL - 0.2, reason=Reason(Cause.SELF_FENCED, "self-fenced"))
PAUSE = PauseMark(by="ops@host", reason="network work")
MARK = MaintenanceMark(reason="kernel upgrade", by="ops@host")
FORCED = MaintenanceMark(reason="rack move", by="ops@host", force=True)

ROWS = [
    # -- no session
    ("no session: create one", snap(session=None, leader=None), POLICY, Act.CREATE_SESSION, Cause.SESSION_CREATED),
    ("no session, maintenance: withdraw", snap(session=None, leader=None, control=control(a=MARK)), POLICY,
     Act.WITHDRAW, Cause.MAINTENANCE),
    ("no session, DNS held a newer epoch: hold off", snap(session=None, leader=None, hold_off_until=NOW + 3), POLICY,
     Act.HOLD_OFF, Cause.STALE_EPOCH),
    ("no session, hold-off over: create", snap(session=None, leader=None, hold_off_until=NOW), POLICY,
     Act.CREATE_SESSION, Cause.SESSION_CREATED),
    # -- eligibility with a session
    ("standby marked for maintenance: withdraw", snap(control=control(a=MARK)), POLICY, Act.WITHDRAW, Cause.MAINTENANCE),
    ("maintenance of another site: no effect", snap(control=control(b=MARK)), POLICY, Act.STAND_BY, Cause.COMPETING),
    ("renewal found the session gone", snap(session_alive=False), POLICY, Act.DROP_SESSION, Cause.SESSION_INVALIDATED),
    ("leader whose session is gone", leading(session_alive=False), POLICY, Act.DROP_SESSION, Cause.SESSION_INVALIDATED),
    # -- leader
    ("leader, key deleted: demote", leading(leader=ABSENT), POLICY, Act.DEMOTE, Cause.LEADER_KEY_DELETED),
    ("leader, key released by an operator: demote", leading(leader=FREE_INVALIDATED), POLICY, Act.DEMOTE,
     Cause.LOCK_RELEASED),
    ("leader, key held by another session: demote", leading(leader=HELD_BY_B), POLICY, Act.DEMOTE,
     Cause.LOCK_HELD_BY_OTHER),
    ("leader, lock ours: confirm", leading(), POLICY, Act.CONFIRM, Cause.COMPETING),
    ("leader, accepted request in flight: confirm", leading(control=control(request(state="accepted"))), POLICY,
     Act.CONFIRM, Cause.COMPETING),
    ("leader, request expired unhonoured: clear it", leading(control=control(request(expires_in=-1))), POLICY,
     Act.EXPIRE_REQUEST, Cause.HANDOVER),
    ("leader, handover to a healthy candidate", leading(control=control(request("b"))), POLICY, Act.HAND_OVER,
     Cause.HANDOVER),
    ("leader, handover to any site", leading(control=control(request(None))), POLICY, Act.HAND_OVER, Cause.HANDOVER),
    ("leader, takeover request", leading(control=control(request("b", kind="takeover"))), POLICY, Act.HAND_OVER,
     Cause.TAKEOVER),
    ("leader, failback request", leading(control=control(request("b", kind="failback"))), POLICY, Act.HAND_OVER,
     Cause.FAILBACK),
    ("leader, request names itself: refuse", leading(control=control(request("a"))), POLICY, Act.REFUSE_REQUEST,
     Cause.TARGET_IS_LEADER),
    ("leader, target not a live candidate: refuse",
     leading(control=control(request("b")), peers=Peers(frozenset({"a"}), frozenset({"a", "b"}))), POLICY,
     Act.REFUSE_REQUEST, Cause.TARGET_NOT_CANDIDATE),
    ("leader, target with failing checks: refuse",
     leading(control=control(request("b")), peers=Peers(frozenset({"a", "b"}), frozenset({"a"}))), POLICY,
     Act.REFUSE_REQUEST, Cause.TARGET_UNHEALTHY),
    ("leader, target in maintenance: refuse", leading(control=control(request("b"), b=MARK)), POLICY,
     Act.REFUSE_REQUEST, Cause.TARGET_IN_MAINTENANCE),
    ("leader, any site but nobody eligible: refuse",
     leading(control=control(request(None)), peers=Peers(frozenset({"a"}), frozenset({"a"}))), POLICY,
     Act.REFUSE_REQUEST, Cause.NO_TARGET),
    ("leader marked for maintenance: hand over", leading(control=control(a=MARK)), POLICY, Act.HAND_OVER,
     Cause.MAINTENANCE),
    ("leader marked, nobody to take over: stay", leading(control=control(a=MARK), peers=Peers(frozenset(), frozenset())),
     POLICY, Act.CONFIRM, Cause.NO_TARGET),
    ("leader marked with force, nobody to take over: leave anyway",
     leading(control=control(a=FORCED), peers=Peers(frozenset(), frozenset())), POLICY, Act.HAND_OVER, Cause.MAINTENANCE),
    # -- standby, the lock is ours (we fenced ourselves)
    ("self-fenced, lock never left: resume at the same epoch", snap(leader=HELD_BY_US), POLICY, Act.RESUME,
     Cause.LEASE_RESTORED),
    ("lock ours but held off (stale epoch): give it back", snap(leader=HELD_BY_US, hold_off_until=NOW + 1), POLICY,
     Act.RELEASE_OURS, Cause.STALE_EPOCH),
    ("lock ours without an epoch: give it back", snap(leader=leader_key(OURS, epoch=None)), POLICY,
     Act.RELEASE_OURS, Cause.STALE_EPOCH),
    # -- standby, held by another site
    ("held by b: stand by", snap(), POLICY, Act.STAND_BY, Cause.COMPETING),
    ("ineligible after a Consul outage, held by b: stand by", snap(role=Role.INELIGIBLE), POLICY, Act.STAND_BY,
     Cause.COMPETING),
    ("preferred site, healthy for the failback delay: ask", snap(role_since=NOW - 300), PREFERRED, Act.ASK_FAILBACK,
     Cause.FAILBACK),
    ("preferred site, not yet for the whole delay: wait", snap(role_since=NOW - 299), PREFERRED, Act.STAND_BY,
     Cause.COMPETING),
    ("preferred site, a request already exists: wait", snap(role_since=NOW - 600, control=control(request("b"))),
     PREFERRED, Act.STAND_BY, Cause.COMPETING),
    ("preferred site while ineligible: no failback", snap(role=Role.INELIGIBLE, role_since=NOW - 600), PREFERRED,
     Act.STAND_BY, Cause.COMPETING),
    # -- standby, the lock is free
    ("released on purpose: acquire at once", snap(leader=FREE_RELEASED, free_since=NOW), POLICY, Act.ACQUIRE,
     Cause.COMPETING),
    ("free without a release: wait one lease for the old leader to fence",
     snap(leader=FREE_INVALIDATED, free_since=NOW - T.lease + 0.01), POLICY, Act.WAIT_FOR_LOCK, Cause.COMPETING),
    ("free without a release, one lease later: acquire", snap(leader=FREE_INVALIDATED, free_since=NOW - T.lease),
     POLICY, Act.ACQUIRE, Cause.COMPETING),
    ("key deleted by an operator: wait one lease", snap(leader=ABSENT, free_since=NOW), POLICY, Act.WAIT_FOR_LOCK,
     Cause.COMPETING),
    ("key absent for a lease (first election): acquire", snap(leader=ABSENT, free_since=NOW - T.lease), POLICY,
     Act.ACQUIRE, Cause.COMPETING),
    ("free but held off after a stale epoch: wait", snap(leader=FREE_RELEASED, free_since=NOW, hold_off_until=NOW + 5),
     POLICY, Act.WAIT_FOR_LOCK, Cause.COMPETING),
    ("free, a live request names another site: stand back",
     snap(leader=FREE_RELEASED, free_since=NOW, control=control(request("c", state="accepted"))), POLICY,
     Act.WAIT_FOR_LOCK, Cause.HANDOVER),
    ("free, a live request names us: acquire",
     snap(leader=FREE_RELEASED, free_since=NOW, control=control(request("a", state="accepted"))), POLICY,
     Act.ACQUIRE, Cause.COMPETING),
    ("free, a request for any site: acquire",
     snap(leader=FREE_RELEASED, free_since=NOW, control=control(request(None))), POLICY, Act.ACQUIRE, Cause.COMPETING),
    ("free, the request naming another site expired: acquire",
     snap(leader=FREE_RELEASED, free_since=NOW, control=control(request("c", expires_in=-1))), POLICY,
     Act.ACQUIRE, Cause.COMPETING),
    # -- local truth: the local agent sees one of our checks critical (the catalog may not)
    ("leader, local check critical: step down", leading(local_failing=("api",)), POLICY, Act.HAND_OVER,
     Cause.CHECK_FAILED),
    ("paused leader, local check critical: keep the lock",
     leading(local_failing=("api",), control=control(pause=PAUSE), session_paused=True), POLICY, Act.CONFIRM,
     Cause.COMPETING),
    ("standby, local check critical: withdraw", snap(local_failing=("api",)), POLICY, Act.WITHDRAW, Cause.CHECK_FAILED),
    ("no session, local check critical: stay out", snap(session=None, leader=None, local_failing=("api",)), POLICY,
     Act.WITHDRAW, Cause.CHECK_FAILED),
    # -- own probes: the leader finds its service failing before Consul's copy of the check does
    ("leader, own probe critical: step down", leading(own_failing=("api",)), POLICY, Act.HAND_OVER,
     Cause.CHECK_FAILED),
    ("paused leader, own probe critical: keep the lock",
     leading(own_failing=("api",), control=control(pause=PAUSE), session_paused=True), POLICY, Act.CONFIRM,
     Cause.COMPETING),
    ("standby, own script verdict critical: withdraw", snap(own_failing=("api",)), POLICY, Act.WITHDRAW,
     Cause.CHECK_FAILED),
    ("leader that lost the lock, own probe critical: demote", leading(own_failing=("api",), leader=HELD_BY_B),
     POLICY, Act.DEMOTE, Cause.LOCK_HELD_BY_OTHER),
    # -- pause: nobody takes a free lock, no service check in the sessions, handover still works
    ("paused, standby with a full session: swap it", snap(control=control(pause=PAUSE)), POLICY, Act.SWAP_SESSION,
     Cause.PAUSED),
    ("paused, leader with a full session: swap it", leading(control=control(pause=PAUSE)), POLICY, Act.SWAP_SESSION,
     Cause.PAUSED),
    ("paused, leader that lost the lock: demote first", leading(control=control(pause=PAUSE), leader=HELD_BY_B),
     POLICY, Act.DEMOTE, Cause.LOCK_HELD_BY_OTHER),
    ("resumed, paused session: swap back", snap(session_paused=True), POLICY, Act.SWAP_SESSION, Cause.PAUSED),
    ("paused leader: confirm", leading(control=control(pause=PAUSE), session_paused=True), POLICY, Act.CONFIRM,
     Cause.COMPETING),
    ("paused leader, planned handover: hand over",
     leading(control=control(request("b"), pause=PAUSE), session_paused=True), POLICY, Act.HAND_OVER, Cause.HANDOVER),
    ("paused, lock free: nobody takes it",
     snap(leader=FREE_INVALIDATED, free_since=NOW - 10, control=control(pause=PAUSE), session_paused=True), POLICY,
     Act.WAIT_FOR_LOCK, Cause.PAUSED),
    ("paused, lock released for us by a handover: acquire",
     snap(leader=FREE_RELEASED, free_since=NOW, control=control(request("a", state="accepted"), pause=PAUSE),
          session_paused=True), POLICY, Act.ACQUIRE, Cause.COMPETING),
    ("paused, preferred site: no failback request",
     snap(role_since=NOW - 600, control=control(pause=PAUSE), session_paused=True), PREFERRED, Act.STAND_BY,
     Cause.COMPETING),
    ("free, the request naming another site was refused: acquire",
     snap(leader=FREE_RELEASED, free_since=NOW, control=control(request("c", state="refused"))), POLICY,
     Act.ACQUIRE, Cause.COMPETING),
    # -- flap damping: a site that lost leadership through its own fault is passed over, never banned
    ("damped, lock free, a healthy candidate: pass over", free_lock(control(failures=(damped(),))), POLICY,
     Act.WAIT_FOR_LOCK, Cause.DAMPED),
    ("damped, lock released on purpose, a healthy candidate: pass over",
     free_lock(control(failures=(damped(),)), leader=FREE_RELEASED, free_since=NOW), POLICY,
     Act.WAIT_FOR_LOCK, Cause.DAMPED),
    ("damped, the other candidate failing: lead anyway",
     free_lock(control(failures=(damped(),)), peers=Peers(frozenset({"a", "b"}), frozenset({"a"}))), POLICY,
     Act.ACQUIRE, Cause.DAMPED),
    ("damped, the only candidate: lead anyway",
     free_lock(control(failures=(damped(),)), peers=Peers(frozenset({"a"}), frozenset({"a"}))), POLICY,
     Act.ACQUIRE, Cause.DAMPED),
    ("damped, the other candidate in maintenance: lead anyway", free_lock(control(failures=(damped(),), b=MARK)),
     POLICY, Act.ACQUIRE, Cause.DAMPED),
    ("damped, the other candidate damped too: compete", free_lock(control(failures=(damped(), damped("b")))),
     POLICY, Act.ACQUIRE, Cause.DAMPED),
    ("damped, passed over for a whole session TTL: lead anyway",
     free_lock(control(failures=(damped(),)), free_since=NOW - T.lease - T.ttl), POLICY, Act.ACQUIRE, Cause.DAMPED),
    ("damped, the hold-down over: compete on equal terms", free_lock(control(failures=(damped(left=-1),))),
     POLICY, Act.ACQUIRE, Cause.COMPETING),
    ("damped, damping off: the record is ignored", free_lock(control(failures=(damped(),))), NO_DAMPING,
     Act.ACQUIRE, Cause.COMPETING),
    ("another site damped: acquire", free_lock(control(failures=(damped("b"),))), POLICY, Act.ACQUIRE,
     Cause.COMPETING),
    ("damped, a handover names us: acquire",
     free_lock(control(request("a", state="accepted"), failures=(damped(),)), leader=FREE_RELEASED,
               free_since=NOW), POLICY, Act.ACQUIRE, Cause.COMPETING),
    ("damped, a takeover names us: acquire",
     free_lock(control(request("a", kind="takeover", state="accepted"), failures=(damped(),))), POLICY,
     Act.ACQUIRE, Cause.COMPETING),
    ("damped, a request for any site: pass over",
     free_lock(control(request(None), failures=(damped(),)), leader=FREE_RELEASED, free_since=NOW), POLICY,
     Act.WAIT_FOR_LOCK, Cause.DAMPED),
    ("damped leader: keeps the lock", leading(control=control(failures=(damped(),))), POLICY, Act.CONFIRM,
     Cause.COMPETING),
    ("preferred site damped: failback waits for the hold-down",
     snap(role_since=NOW - 300, control=control(failures=(damped(),))), PREFERRED, Act.STAND_BY, Cause.DAMPED),
    ("preferred site, hold-down over: failback",
     snap(role_since=NOW - 300, control=control(failures=(damped(left=-1),))), PREFERRED, Act.ASK_FAILBACK,
     Cause.FAILBACK),
    ("lost leadership not yet recorded: record it before anything else", snap(leader=FREE_INVALIDATED, lost=LOST),
     POLICY, Act.RECORD_FAILURE, Cause.LOCK_RELEASED),
    ("lost leadership, no session: record it before a new session", snap(session=None, leader=None, lost=LOST),
     POLICY, Act.RECORD_FAILURE, Cause.LOCK_RELEASED),
    ("self-fenced, the lock still ours: resume, nothing to record", snap(leader=HELD_BY_US, lost=FENCED), POLICY,
     Act.RESUME, Cause.LEASE_RESTORED),
    ("self-fenced, the lock moved on: record it", snap(leader=HELD_BY_B, lost=FENCED), POLICY,
     Act.RECORD_FAILURE, Cause.SELF_FENCED),
    ("self-fenced, the session gone: record it", snap(leader=HELD_BY_US, session_alive=False, lost=FENCED), POLICY,
     Act.RECORD_FAILURE, Cause.SELF_FENCED),
]


@pytest.mark.parametrize("name,snapshot,policy,act,cause", ROWS, ids=[row[0] for row in ROWS])
def test_rule(name, snapshot, policy, act, cause):
    decision = decide(snapshot, policy)
    assert (decision.act, decision.reason.cause) == (act, cause), decision


def test_a_leader_waits_out_the_confirm_interval_from_the_send_time_of_its_read():
    decision = decide(leading(read_sent_at=NOW - T.confirm / 4), POLICY)
    assert decision.wait == pytest.approx(T.confirm * 3 / 4)
    assert decide(leading(read_sent_at=NOW - 2 * T.confirm), POLICY).wait == 0.0


def test_a_held_off_site_waits_exactly_until_the_hold_off_ends():
    decision = decide(snap(session=None, leader=None, hold_off_until=NOW + 2.5), POLICY)
    assert decision.wait == pytest.approx(2.5)


def test_waiting_for_a_free_lock_retries_on_the_acquire_timer():
    decision = decide(snap(leader=FREE_INVALIDATED, free_since=NOW), POLICY)
    assert decision.wait == T.acquire_retry


def test_hand_over_names_the_target_and_the_request_it_answers():
    pending = request(None)
    decision = decide(leading(control=control(pending)), POLICY)
    assert (decision.target, decision.request) == ("b", pending)


def test_resume_keeps_the_epoch_written_in_the_key():
    assert decide(snap(leader=leader_key(OURS, epoch=41)), POLICY).epoch == 41


def test_a_withdrawn_site_rereads_its_mark_on_a_timer():
    assert decide(snap(control=control(a=MARK)), POLICY).wait > 0


# -- why we lost / why we won ----------------------------------------------------------------------

@pytest.mark.parametrize("key,cause", [
    (ABSENT, Cause.LEADER_KEY_DELETED), (FREE_INVALIDATED, Cause.LOCK_RELEASED),
    (HELD_BY_B, Cause.LOCK_HELD_BY_OTHER)])
def test_loss_reason(key, cause):
    assert loss_reason(key).cause == cause


HB = "consulha-app-b-heartbeat"
PREVIOUS_B = LeaderRecord(site="b", epoch=9)


@pytest.mark.parametrize("name,previous,handover,failing,cause,detail", [
    ("first leader", None, None, [], Cause.INITIAL_ELECTION, "initial election"),
    ("a request naming us", PREVIOUS_B, request("a", state="accepted"), [], Cause.HANDOVER, "handover by ops@host"),
    ("a takeover for us", PREVIOUS_B, request("a", kind="takeover", state="accepted"), [], Cause.TAKEOVER,
     "takeover by ops@host"),
    ("the old leader's own word", LeaderRecord(site="b", released=Reason(Cause.GRACEFUL_STOP, "graceful stop")),
     None, [], Cause.GRACEFUL_STOP, "graceful stop"),
    ("a failing service check", PREVIOUS_B, None, [("api", "service:app-b-api"), (None, HB)], Cause.CHECK_FAILED,
     "check failed: api"),
    ("the agent's heartbeat", PREVIOUS_B, None, [(None, HB)], Cause.HEARTBEAT_LOST, "agent lost heartbeat"),
    ("gossip", PREVIOUS_B, None, [(None, "serfHealth")], Cause.NODE_UNREACHABLE,
     "node unreachable (serfHealth critical)"),
    ("nothing failing: TTL or destroy", PREVIOUS_B, None, [], Cause.LEADER_SESSION_ENDED,
     "session of the leader expired or was destroyed"),
    ("an expired request does not count", PREVIOUS_B, request("a", expires_in=-1), [], Cause.LEADER_SESSION_ENDED,
     "session of the leader expired or was destroyed"),
])
def test_cause_of_win(name, previous, handover, failing, cause, detail):
    reason, to_clear = cause_of_win("a", previous, handover, WALL, failing, HB)
    assert (reason.cause, str(reason)) == (cause, detail)
    assert to_clear == (handover if cause in (Cause.HANDOVER, Cause.TAKEOVER) else None)


# -- the intervals ---------------------------------------------------------------------------------

def test_default_intervals_and_their_order():
    assert 0 < T.confirm < T.lease < T.lock_delay <= T.ttl
    assert T.lease == pytest.approx(0.8)          # 1 s lock-delay less 20 %
    assert T.standby_wait <= T.renew < T.ttl / 2


@pytest.mark.parametrize("ttl,lock_delay", [(10, 0.5), (10, 1), (10, 15), (30, 60), (86400, 60)])
def test_every_valid_session_config_gives_consistent_intervals(ttl, lock_delay):
    timing = Timing.of(SessionConfig(ttl=ttl, lock_delay=lock_delay, heartbeat_ttl=3))
    assert timing.lease < min(ttl, lock_delay)


def test_a_broken_relation_is_refused_at_construction():
    with pytest.raises(ValueError, match="lease < lock_delay"):
        replace(T, lease=T.lock_delay)


def test_the_step_down_names_the_source_of_the_failure():
    own = decide(leading(own_failing=("api", "db")), POLICY)
    local = decide(leading(local_failing=("api",), own_failing=("db",)), POLICY)
    assert (own.reason.detail, local.reason.detail) == ("check failed: api, db (own probe)",
                                                         "local check critical: api")
    assert own.failure == own.reason  # a lost leadership of our own fault: damping counts it
