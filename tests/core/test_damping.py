"""Flap damping, pure: the penalty arithmetic, the record as stored, and which ends of a
leadership count as the site's own failure (the rows of the rule table are in test_decide.py)."""

from __future__ import annotations

import json
import math

import pytest

from consulha.config import DampingConfig
from consulha.core.control import ControlKeys, control_state
from consulha.core.damping import Damping, Failure, FailureRecord
from consulha.core.decide import Act, decide
from consulha.core.reasons import Cause, Reason
from consulha.core.records import KvEntry
from consulha.core.targets import Peers, choose_target
from tests.core.test_decide import (ABSENT, FREE_INVALIDATED, HELD_BY_B, MARK, NO_DAMPING, NOW, POLICY, WALL,
                                    control, leading, request, snap)

HALF_LIFE = DampingConfig.half_life
DAMPING = Damping(DampingConfig())
CHECK = Reason(Cause.CHECK_FAILED, "check failed: api")


def fail(record: FailureRecord | None, at: float, epoch: int | None = None, damping: Damping = DAMPING,
         ) -> FailureRecord:
    updated = damping.add("a", record, Failure(epoch, at, CHECK))
    assert updated is not None
    return updated


def failures_at(times: list[float], damping: Damping = DAMPING) -> FailureRecord:
    record = None
    for at in times:
        record = fail(record, WALL + at, damping=damping)
    return record


# -- the arithmetic ----------------------------------------------------------------------------

def test_one_failure_damps_for_one_half_life():
    record = failures_at([0])
    assert record.damped(WALL + HALF_LIFE - 0.01) and not record.damped(WALL + HALF_LIFE)
    assert record.hold_down(WALL) == pytest.approx(HALF_LIFE)


def test_every_further_failure_lengthens_the_hold_down_up_to_the_maximum():
    holds = [failures_at([2.0 * i for i in range(n)]).hold_down(WALL + 2.0 * (n - 1)) for n in range(1, 40)]
    assert all(later > earlier for earlier, later in zip(holds, holds[1:]) if earlier < DampingConfig.max_hold_down)
    assert holds[1] == pytest.approx(HALF_LIFE * 2, rel=0.05)   # two failures: the penalty doubles
    assert max(holds) == pytest.approx(DampingConfig.max_hold_down)


def test_failures_fade_a_repaired_site_starts_again_from_one_half_life():
    record = failures_at([0, 2, 4, 6])
    later = fail(record, WALL + 6 + 20 * HALF_LIFE)
    assert later.hold_down(later.as_of) == pytest.approx(HALF_LIFE, rel=0.01)
    assert (later.streak, later.total) == (1, 5)


def test_below_suppress_a_site_is_not_damped_yet():
    damping = Damping(DampingConfig(suppress=2.5))
    assert not failures_at([0], damping).damped(WALL + 1)
    assert not failures_at([0, 1], damping).damped(WALL + 2)
    third = failures_at([0, 1, 2], damping)
    # Reaching the threshold holds the site down until the penalty decays to half of it.
    assert third.hold_down(WALL + 2) == pytest.approx(HALF_LIFE * math.log2(third.penalty / 1.25))
    assert third.penalty == pytest.approx(3, rel=0.02)


def test_one_lost_epoch_counts_once_whoever_reports_it():
    record = fail(None, WALL, epoch=41)
    assert DAMPING.add("a", record, Failure(41, WALL + 1, CHECK)) is None
    assert fail(record, WALL + 1, epoch=42).total == 2


def test_a_writer_whose_clock_is_behind_never_shortens_the_hold_down():
    record = fail(None, WALL)
    behind = fail(record, WALL - 30)
    assert behind.damped_until >= record.damped_until
    assert behind.penalty == pytest.approx(2.0)   # no negative decay: no growth from skew


def test_the_reason_says_how_many_failures_in_how_long_and_the_hold_down_left():
    assert failures_at([0]).describe(WALL) == "damped: 1 failure just now, hold-down 60 s left"
    record = failures_at([0, 20, 40])
    left = record.hold_down(WALL + 60)
    assert record.describe(WALL + 60) == f"damped: 3 failures in 60 s, hold-down {left:.0f} s left"
    assert record.describe(record.damped_until) == "not damped: 3 failures recorded"


# -- the record as stored ----------------------------------------------------------------------

def entry(key: str, value: bytes, index: int = 9) -> KvEntry:
    return KvEntry(key=key, value=value, session=None, modify_index=index, lock_index=0)


def test_record_round_trip_and_what_the_consul_ui_shows():
    record = fail(fail(None, WALL, epoch=40), WALL + 3, epoch=41)
    stored = record.encode()
    decoded = FailureRecord.decode(entry("consulha/app/control/failures/a", stored))
    assert decoded.to_json() == record.to_json() and decoded.modify_index == 9
    shown = json.loads(stored)
    assert shown["damped_until_time"].endswith("+00:00") and shown["recent"][-1]["detail"] == "check failed: api"


def test_control_state_holds_every_readable_failure_record():
    keys = ControlKeys("consulha/app")
    entries = [entry(keys.failures("a"), fail(None, WALL).encode()),
               entry(keys.failures("b"), b"not json"), entry(keys.failures("c"), b'{"no": "site"}')]
    assert list(control_state(entries, keys).failures) == ["a"]


# -- which ends of a leadership are the site's own failure -------------------------------------

@pytest.mark.parametrize("name,snapshot,policy,act,failure", [
    ("lock released by Consul", leading(leader=FREE_INVALIDATED), POLICY, Act.DEMOTE, Cause.LOCK_RELEASED),
    ("leader key deleted", leading(leader=ABSENT), POLICY, Act.DEMOTE, Cause.LEADER_KEY_DELETED),
    ("lock taken by another session", leading(leader=HELD_BY_B), POLICY, Act.DEMOTE, Cause.LOCK_HELD_BY_OTHER),
    ("a takeover destroyed our session", leading(leader=FREE_INVALIDATED,
                                                 control=control(request("b", kind="takeover", state="accepted"))),
     POLICY, Act.DEMOTE, None),
    ("leader's session invalidated", leading(session_alive=False), POLICY, Act.DROP_SESSION,
     Cause.SESSION_INVALIDATED),
    ("standby's session invalidated", snap(session_alive=False), POLICY, Act.DROP_SESSION, None),
    ("local truth", leading(local_failing=("api",)), POLICY, Act.HAND_OVER, Cause.CHECK_FAILED),
    ("planned handover", leading(control=control(request("b"))), POLICY, Act.HAND_OVER, None),
    ("maintenance", leading(control=control(a=MARK)), POLICY, Act.HAND_OVER, None),
    ("damping off", leading(leader=FREE_INVALIDATED), NO_DAMPING, Act.DEMOTE, None),
    ("still leading", leading(), POLICY, Act.CONFIRM, None),
])
def test_own_failure(name, snapshot, policy, act, failure):
    decision = decide(snapshot, policy)
    assert decision.act == act
    assert (decision.failure.cause if decision.failure else None) == failure


def test_a_leader_handing_over_to_any_site_prefers_one_that_is_not_damped():
    peers = Peers(live=frozenset("abc"), healthy=frozenset("abc"))
    state = control(a=MARK, failures=(FailureRecord("b", damped_until=WALL + 30),))
    assert decide(leading(control=state, peers=peers), POLICY).target == "c"
    # Named explicitly, a damped site is chosen: the operator's word overrides damping.
    assert choose_target("b", "a", peers, (), damped={"b"}) == ("b", None)
    assert choose_target(None, "a", Peers(frozenset("ab"), frozenset("ab")), (), damped={"b"}) == ("b", None)


def test_the_wait_of_a_passed_over_site_is_the_acquire_timer():
    state = control(failures=(FailureRecord("a", damped_until=WALL + 30),))
    decision = decide(snap(leader=FREE_INVALIDATED, free_since=NOW - POLICY.timing.lease, control=state,
                           peers=Peers(frozenset("ab"), frozenset("ab"))), POLICY)
    assert decision.act == Act.WAIT_FOR_LOCK and decision.wait == POLICY.timing.acquire_retry
    assert str(decision.reason).startswith("lock free, passed over for site b: damped: 1 failure")
