"""Every rule of the election in one pure function: `decide(snapshot, policy) -> Decision`.

A pass of the agent is observe -> decide -> act. The observer (consulha.agent.observe) reads what the
pass needs into a Snapshot; `decide` picks one action with a typed reason; the agent carries it
out (consulha.agent). Nothing here does I/O or reads a clock: the snapshot carries both clocks,
so every rule is a row in a table test.

The rules, in the order they are tried:
    lost leadership    a leadership of ours ended through our own fault (or we fenced ourselves
                       and the lock did not stay ours) and is not in our failure record yet ->
                       RECORD_FAILURE (flap damping, consulha.core.damping)
    no session         maintenance or a check the local Consul agent sees critical -> WITHDRAW;
                       held off (stale epoch) -> HOLD_OFF; else CREATE_SESSION
    not leader, marked for maintenance or a local check critical -> WITHDRAW (the leader
                       hands over first, below)
    session gone       a renewal found it invalidated -> DROP_SESSION
    pause changed      the session is tied to the wrong checks for the pause state (paused: no
                       service checks) -> SWAP_SESSION (a leader only while the lock is ours)
    leader             the lock not ours -> DEMOTE (a failure of ours unless a takeover explains
                       it); else (the read confirms the lease)
                       a local check or own probe critical (not paused) -> HAND_OVER to anyone, a
                       failure (local truth: the catalog may not know yet, or ever); expired request -> EXPIRE_REQUEST; own maintenance -> HAND_OVER to the
                       chosen site (or stay when none and not forced); pending request ->
                       HAND_OVER or REFUSE_REQUEST; else CONFIRM
    standby, lock ours we fenced ourselves and the lock never left us: RESUME at the same epoch,
                       unless held off or the key has no epoch -> RELEASE_OURS
    standby, held      the preferred site, healthy for the failback delay and not damped ->
                       ASK_FAILBACK; else STAND_BY
    standby, free      the old leader may still lead (a free key that was not released on
                       purpose: wait one lease from first sight), held off, paused (unless a
                       live request names us), or a live request names another site ->
                       WAIT_FOR_LOCK; damped (our failures' hold-down runs) while another
                       healthy candidate that is not damped could take it, for at most one
                       session TTL, unless a live request names us -> WAIT_FOR_LOCK; else
                       ACQUIRE (damped: the only healthy candidate still leads, and says so)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from consulha.core.control import ControlState, HandoverRequest
from consulha.core.damping import Failure, FailureRecord
from consulha.core.election import Role
from consulha.core.reasons import Cause, Reason
from consulha.core.records import LeaderKey, LeaderRecord
from consulha.core.targets import Peers, choose_target
from consulha.core.timing import Timing

WITHDRAW_WAIT = 0.5  # a withdrawn site re-reads its mark this often


class Act(str, Enum):
    WITHDRAW = "withdraw"
    HOLD_OFF = "hold_off"
    CREATE_SESSION = "create_session"
    DROP_SESSION = "drop_session"
    SWAP_SESSION = "swap_session"
    DEMOTE = "demote"
    CONFIRM = "confirm"
    EXPIRE_REQUEST = "expire_request"
    HAND_OVER = "hand_over"
    REFUSE_REQUEST = "refuse_request"
    RECORD_FAILURE = "record_failure"
    RESUME = "resume"
    RELEASE_OURS = "release_ours"
    ASK_FAILBACK = "ask_failback"
    STAND_BY = "stand_by"
    WAIT_FOR_LOCK = "wait_for_lock"
    ACQUIRE = "acquire"


@dataclass(frozen=True)
class Policy:
    """What does not change while the agent runs."""
    site: str
    timing: Timing
    preferred_site: str | None = None
    failback_delay: float = 300.0
    damping: bool = True  # record our lost leaderships and honour every site's failure record


@dataclass(frozen=True)
class Snapshot:
    """Everything one pass decides on. `now` is the monotonic clock, `wall` the epoch clock
    (handover requests expire by wall time, since the CLI writes them on another host)."""
    now: float
    wall: float
    role: Role
    role_since: float
    control: ControlState
    session: str | None = None
    session_alive: bool = True       # False: a renewal in this pass found the session gone
    session_paused: bool = False     # our session was made for a paused group (no service checks)
    local_failing: tuple[str, ...] = ()  # our services whose check the local agent sees critical
    own_failing: tuple[str, ...] = ()    # ... whose own probes are critical (consulha.agent.ownchecks)
    leader: LeaderKey | None = None  # read in this pass whenever we have a session
    read_sent_at: float = 0.0        # send time of that read: what a confirmation proves
    free_since: float | None = None  # when we first saw the leader key free in its current state
    hold_off_until: float = 0.0      # no lock before this (DNS held a newer epoch than ours)
    peers: Peers | None = None       # read when a leader must choose whom to hand over to, and
                                     # when a damped standby sees the lock free
    lost: Failure | None = None      # a leadership of ours that ended through our own fault (a
                                     # self-fence: perhaps), not yet in our failure record


@dataclass(frozen=True)
class Decision:
    act: Act
    reason: Reason
    wait: float = 0.0                        # sleep this long after acting
    target: str | None = None                # HAND_OVER: to whom
    request: HandoverRequest | None = None   # the request this action answers
    epoch: int | None = None                 # RESUME: the epoch we keep; RECORD_FAILURE: the one we lost
    failure: Reason | None = None            # this action ends our leadership through our own fault


def decide(s: Snapshot, policy: Policy) -> Decision:
    if s.lost is not None and s.role != Role.LEADER and not _lock_ours(s):
        # Before anything else, competing included: a site must not win back the lock it lost
        # before its failure record says it lost it.
        return Decision(Act.RECORD_FAILURE, s.lost.reason, epoch=s.lost.epoch)
    mark = s.control.in_maintenance(policy.site)
    unhealthy = _local_truth(s)
    if s.session is None:
        if mark is not None:
            return Decision(Act.WITHDRAW, mark.why(), wait=WITHDRAW_WAIT)
        if unhealthy is not None:
            return Decision(Act.WITHDRAW, unhealthy, wait=WITHDRAW_WAIT)
        if s.now < s.hold_off_until:
            return Decision(Act.HOLD_OFF, Reason(Cause.STALE_EPOCH, "held off: DNS carried a "
                            "newer epoch than ours"), wait=s.hold_off_until - s.now)
        return Decision(Act.CREATE_SESSION, Reason(Cause.SESSION_CREATED))
    if s.role != Role.LEADER and (mark is not None or unhealthy is not None):
        return Decision(Act.WITHDRAW, mark.why() if mark is not None else unhealthy, wait=WITHDRAW_WAIT)
    if not s.session_alive:
        gone = Reason(Cause.SESSION_INVALIDATED, "session invalidated (a check went critical or the TTL expired)")
        return Decision(Act.DROP_SESSION, gone,
                        failure=_own_fault(s, policy, gone) if s.role == Role.LEADER else None)
    assert s.leader is not None, "a pass with a session reads the leader key"
    paused = s.control.pause is not None
    if paused != s.session_paused and (s.role != Role.LEADER or s.leader.holder == s.session):
        if paused:
            return Decision(Act.SWAP_SESSION, Reason(Cause.PAUSED, f"failover paused by "
                            f"{s.control.pause.by}: session without the service checks"))
        return Decision(Act.SWAP_SESSION, Reason(Cause.PAUSED, "failover resumed: session tied "
                                                 "to every check again"))
    if s.role == Role.LEADER:
        return _lead(s, policy)
    return _stand_by(s, policy)


def _lock_ours(s: Snapshot) -> bool:
    return s.session is not None and s.session_alive and s.leader is not None and s.leader.holder == s.session


def _own_fault(s: Snapshot, policy: Policy, reason: Reason) -> Reason | None:
    """`reason` when our leadership ends through our own fault, for the failure record; None
    when damping is off or an operator's request explains it (a takeover destroyed our session)."""
    request = s.control.handover
    if not policy.damping or (request is not None and request.names_other_than(policy.site, s.wall)):
        return None
    return reason


def _damped(s: Snapshot, policy: Policy) -> FailureRecord | None:
    """Our failure record while its hold-down runs (and damping is on), else None."""
    record = s.control.failures.get(policy.site) if policy.damping else None
    return record if record is not None and record.damped(s.wall) else None


def _damped_sites(s: Snapshot, policy: Policy) -> set[str]:
    if not policy.damping:
        return set()
    return {site for site, record in s.control.failures.items() if record.damped(s.wall)}


def _local_truth(s: Snapshot) -> Reason | None:
    """While not paused, a check the local agent sees critical disqualifies us, whatever the
    catalog says (it can be blind: a local agent the servers refuse to sync), and so does a
    service our own probes find critical (Consul's copy lags one failure while we lead)."""
    if s.control.pause is not None:
        return None
    if s.local_failing:
        return Reason(Cause.CHECK_FAILED, f"local check critical: {', '.join(s.local_failing)}")
    if s.own_failing:
        return Reason(Cause.CHECK_FAILED, f"check failed: {', '.join(s.own_failing)} (own probe)")
    return None


def _lead(s: Snapshot, policy: Policy) -> Decision:
    if s.leader.holder != s.session:
        loss = loss_reason(s.leader)
        return Decision(Act.DEMOTE, loss, failure=_own_fault(s, policy, loss))
    unhealthy = _local_truth(s)
    if unhealthy is not None:
        return Decision(Act.HAND_OVER, unhealthy, failure=_own_fault(s, policy, unhealthy))
    wait = max(0.0, s.read_sent_at + policy.timing.confirm - s.now)
    request = s.control.handover
    if request is not None and request.state in ("pending", "accepted") and request.expired(s.wall):
        return Decision(Act.EXPIRE_REQUEST, Reason(Cause.HANDOVER, f"{request.kind} request by "
                        f"{request.by} expired unhonoured"), wait=wait, request=request)
    mark = s.control.in_maintenance(policy.site)
    if mark is not None:
        target, why = _choose(None, s, policy)
        if target is None and not mark.force:
            # The CLI refuses this; a mark written by hand waits for a candidate.
            return Decision(Act.CONFIRM, why, wait=wait)
        return Decision(Act.HAND_OVER, mark.why(), target=target)
    if request is None or request.state != "pending":
        return Decision(Act.CONFIRM, Reason(Cause.COMPETING, "lock confirmed"), wait=wait)
    target, why = _choose(request.to, s, policy)
    if target is None:
        return Decision(Act.REFUSE_REQUEST, why, wait=wait, request=request)
    kind = {"takeover": Cause.TAKEOVER, "failback": Cause.FAILBACK}.get(request.kind, Cause.HANDOVER)
    return Decision(Act.HAND_OVER, Reason(kind, f"{request.kind} to {target} requested by {request.by}"),
                    target=target, request=request)


def _choose(wanted: str | None, s: Snapshot, policy: Policy) -> tuple[str | None, Reason | None]:
    assert s.peers is not None, "a leader with a request or a mark reads its peers"
    return choose_target(wanted, policy.site, s.peers, s.control.maintenance.keys(), _damped_sites(s, policy))


def _stand_by(s: Snapshot, policy: Policy) -> Decision:
    leader = s.leader
    if leader.holder == s.session:
        epoch = leader.record.epoch if leader.record else None
        if epoch is None or s.now < s.hold_off_until:
            return Decision(Act.RELEASE_OURS, Reason(Cause.STALE_EPOCH, "released a lock we held "
                                                     "after standing down"))
        return Decision(Act.RESUME, Reason(Cause.LEASE_RESTORED, "lease restored: the lock never "
                                           "left us"), epoch=epoch)
    if leader.held:
        if _failback_due(s, policy):
            damped = _damped(s, policy)
            if damped is not None:
                return Decision(Act.STAND_BY, Reason(Cause.DAMPED, f"failback waits for the "
                                                     f"hold-down: {damped.describe(s.wall)}"))
            return Decision(Act.ASK_FAILBACK, Reason(Cause.FAILBACK, f"healthy for "
                            f"{policy.failback_delay:.0f}s as preferred site: asking "
                            f"{leader.holder_site} for a failback"))
        return Decision(Act.STAND_BY, Reason(Cause.COMPETING, "consul answers again: competing"))
    released = leader.record is not None and leader.record.released is not None
    # A key released on purpose: its old leader demoted first. Any other way it became free
    # may leave the old leader in charge until its next confirmation: an invalidated session is
    # covered by lock-delay (longer than the lease), but an operator's delete or release is not.
    old_leader_gone_at = (s.free_since if s.free_since is not None else s.now) + (
        0.0 if released else policy.timing.lease)
    request = s.control.handover
    if s.control.pause is not None and not (request is not None and request.live(s.wall)
                                            and request.to == policy.site):
        return Decision(Act.WAIT_FOR_LOCK, Reason(Cause.PAUSED, f"lock free, failover paused by "
                        f"{s.control.pause.by}: {s.control.pause.reason or 'no reason given'}"),
                        wait=policy.timing.acquire_retry)
    if s.now < max(s.hold_off_until, old_leader_gone_at):
        return Decision(Act.WAIT_FOR_LOCK, Reason(Cause.COMPETING, "lock free: waiting one lease "
                        "for the old leader to fence itself"), wait=policy.timing.acquire_retry)
    if request is not None and request.names_other_than(policy.site, s.wall):
        return Decision(Act.WAIT_FOR_LOCK, Reason(Cause.HANDOVER, f"lock free: reserved for site "
                        f"{request.to} by a {request.kind} request"), wait=policy.timing.acquire_retry)
    damped = _damped(s, policy)
    if damped is None or (request is not None and request.live(s.wall) and request.to == policy.site):
        return Decision(Act.ACQUIRE, Reason(Cause.COMPETING, "lock free: acquiring"))
    return _acquire_damped(s, policy, damped, old_leader_gone_at)


def _acquire_damped(s: Snapshot, policy: Policy, damped: FailureRecord, free_from: float) -> Decision:
    """Passed over, never banned: a damped site leaves a free lock to another healthy candidate
    that is not damped, for one session TTL at most (a candidate that looks healthy but has not
    taken a free lock by then will not: leading beats leaving the group without a leader)."""
    assert s.peers is not None, "a damped standby that sees the lock free reads its peers"
    rival, _ = choose_target(None, policy.site, s.peers,
                             {*s.control.maintenance.keys(), *_damped_sites(s, policy)})
    if rival is not None and s.now < free_from + policy.timing.ttl:
        return Decision(Act.WAIT_FOR_LOCK, Reason(Cause.DAMPED, f"lock free, passed over for site "
                        f"{rival}: {damped.describe(s.wall)}"), wait=policy.timing.acquire_retry)
    why = (f"site {rival} has not taken it in {policy.timing.ttl:g}s" if rival is not None
           else "no other healthy candidate that is not damped")
    return Decision(Act.ACQUIRE, Reason(Cause.DAMPED, f"lock free, {why}: leading although "
                                        f"{damped.describe(s.wall)}"))


def _failback_due(s: Snapshot, policy: Policy) -> bool:
    return (policy.preferred_site == policy.site and s.leader.holder_site not in (None, policy.site)
            and s.role == Role.STANDBY and s.now - s.role_since >= policy.failback_delay
            and s.control.handover is None and s.control.pause is None)


def loss_reason(leader: LeaderKey) -> Reason:
    """Why a leader no longer holds the lock, from the key as it reads now."""
    if not leader.exists:
        return Reason(Cause.LEADER_KEY_DELETED, "leader key deleted")
    if not leader.held:
        return Reason(Cause.LOCK_RELEASED, "lock released (session invalidated, or released by an operator)")
    return Reason(Cause.LOCK_HELD_BY_OTHER, f"lock now held by another session "
                                            f"(site {leader.holder_site or '?'})")


def cause_of_win(site: str, previous: LeaderRecord | None, request: HandoverRequest | None,
                 wall: float, failing: list[tuple[str | None, str]], heartbeat_check_id: str
                 ) -> tuple[Reason, HandoverRequest | None]:
    """Why the lock came to us, for the history: a request naming us (returned, to be cleared),
    the old leader's own word on release, or the checks of its site failing now. `failing`:
    (service name or None, check ID) of the old leader's site's critical checks."""
    if request is not None and request.live(wall) and request.to in (None, site):
        kind = {"takeover": Cause.TAKEOVER, "failback": Cause.FAILBACK}.get(request.kind, Cause.HANDOVER)
        return Reason(kind, f"{request.kind} by {request.by}"), request
    if previous is None:
        return Reason(Cause.INITIAL_ELECTION, "initial election"), None
    if previous.released is not None:
        return previous.released, None
    if not failing and previous.site != site:
        return Reason(Cause.LEADER_SESSION_ENDED, "session of the leader expired or was destroyed"), None
    return fault_of(failing, heartbeat_check_id) or Reason(Cause.LEADER_SESSION_ENDED,
                                                           "session of the leader invalidated"), None


def fault_of(failing: list[tuple[str | None, str]], heartbeat_check_id: str) -> Reason | None:
    """Which of a site's checks explains the end of its session: a service check, its agent's
    heartbeat, its node's gossip; None when none of them is critical. `failing`: (service name
    or None, check ID) of the site's critical checks."""
    names = sorted({service for service, _ in failing if service})
    if names:
        return Reason(Cause.CHECK_FAILED, f"check failed: {', '.join(names)}")
    check_ids = {check_id for _, check_id in failing}
    if heartbeat_check_id in check_ids:
        return Reason(Cause.HEARTBEAT_LOST, "agent lost heartbeat")
    if "serfHealth" in check_ids:
        return Reason(Cause.NODE_UNREACHABLE, "node unreachable (serfHealth critical)")
    return None
