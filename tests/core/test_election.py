"""Pure unit tests of the election state machine and the self-fencing lease (fake clock, no I/O)."""

from __future__ import annotations

import pytest

from consulha.core.election import Election, Lease, Role, Transition
from consulha.core.reasons import Cause, Reason
from consulha.core.timing import lease_duration


class FakeClock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock(100.0)


@pytest.fixture
def wall():
    return FakeClock(1_700_000_000.0)


def make_election(clock, wall=None, duration: float = 4.0) -> Election:
    wall = wall or FakeClock(1_700_000_000.0)
    return Election(Lease(duration, clock), clock, wall)


def make_leader(clock, epoch: int = 7, sent_at: float | None = None, duration: float = 4.0) -> Election:
    election = make_election(clock, duration=duration)
    election.candidate(r("session created"))
    assert election.promote(epoch, clock.now if sent_at is None else sent_at, r("won the lock"))
    return election


# -- Lease ----------------------------------------------------------------------------------------


class TestLease:
    def test_new_lease_is_not_valid(self, clock):
        lease = Lease(4.0, clock)
        assert not lease.valid()
        assert lease.remaining() == 0.0

    def test_confirm_extends_to_sent_at_plus_duration(self, clock):
        lease = Lease(4.0, clock)
        lease.confirm(99.0)
        assert lease.expires_at == 103.0
        assert lease.remaining() == 3.0
        lease.confirm(101.0)
        assert lease.expires_at == 105.0

    def test_older_confirmation_never_shortens(self, clock):
        lease = Lease(4.0, clock)
        lease.confirm(101.0)
        lease.confirm(98.0)
        assert lease.expires_at == 105.0
        lease.confirm(101.0)
        assert lease.expires_at == 105.0

    def test_valid_and_remaining_at_boundaries(self, clock):
        lease = Lease(4.0, clock)
        lease.confirm(100.0)  # expires at 104.0
        clock.now = 103.999
        assert lease.valid()
        assert lease.remaining() == pytest.approx(0.001)
        clock.now = 104.0
        assert not lease.valid()
        assert lease.remaining() == 0.0
        clock.now = 110.0
        assert not lease.valid()
        assert lease.remaining() == 0.0  # never negative

    def test_revoke(self, clock):
        lease = Lease(4.0, clock)
        lease.confirm(100.0)
        assert lease.valid()
        lease.revoke()
        assert not lease.valid()
        assert lease.remaining() == 0.0
        assert lease.expires_at == float("-inf")
        # A confirmation after a revoke starts afresh from its own send time.
        lease.confirm(99.0)
        assert lease.expires_at == 103.0

    @pytest.mark.parametrize("duration", [0.0, -1.0, -0.001])
    def test_non_positive_duration_is_refused(self, clock, duration):
        with pytest.raises(ValueError, match="positive"):
            Lease(duration, clock)


class TestLeaseDuration:
    def test_lock_delay_is_the_limit(self):
        assert lease_duration(10, 1) == pytest.approx(0.8)

    def test_ttl_is_the_limit(self):
        assert lease_duration(10, 15) == pytest.approx(8.0)

    @pytest.mark.parametrize("ttl, lock_delay, expected", [
        (10, 0.5, 0.4),    # MIN_LOCK_DELAY: 20 % would be 0.1, the floor is also 0.1
        (10, 0.3, 0.2),    # 20 % = 0.06 < 100 ms floor
        (0.4, 10, 0.3),
    ])
    def test_small_values_keep_a_100ms_margin(self, ttl, lock_delay, expected):
        duration = lease_duration(ttl, lock_delay)
        assert duration == pytest.approx(expected)
        assert duration > 0
        assert min(ttl, lock_delay) - duration >= 0.1 - 1e-9

    @pytest.mark.parametrize("ttl, lock_delay", [(10, 1), (10, 15), (30, 2), (1, 1), (10, 0.5)])
    def test_margin_is_at_least_20_percent_and_100ms(self, ttl, lock_delay):
        grace = min(ttl, lock_delay)
        duration = lease_duration(ttl, lock_delay)
        assert 0 < duration < grace
        assert grace - duration >= max(0.1, 0.2 * grace) - 1e-9


# -- Election -------------------------------------------------------------------------------------


class TestTransitions:
    def test_initial_role_is_starting(self, clock):
        election = make_election(clock)
        assert election.role == Role.STARTING
        assert str(election.reason) == "starting"
        assert election.epoch is None
        assert election.since == 100.0
        assert election.history == []
        assert not election.is_leader()

    @pytest.mark.parametrize("setup", ["starting", "ineligible"])
    def test_candidate_moves_to_standby_with_reason(self, clock, setup):
        election = make_election(clock)
        if setup == "ineligible":
            election.ineligible(r("check web critical"))
            assert election.role == Role.INELIGIBLE
        clock.now = 101.5
        election.candidate(r("session abc created"))
        assert election.role == Role.STANDBY
        assert str(election.reason) == "session abc created"
        assert election.since == 101.5
        assert election.history[-1].old == Role(setup)
        assert election.history[-1].new == Role.STANDBY

    def test_candidate_is_ignored_when_already_standby_or_leader(self, clock):
        election = make_election(clock)
        election.candidate(r("first"))
        election.candidate(r("second"))
        assert str(election.reason) == "first"
        assert len(election.history) == 1
        election.promote(3, 100.0, r("won"))
        election.candidate(r("third"))
        assert election.role == Role.LEADER
        assert len(election.history) == 2

    @pytest.mark.parametrize("role", ["starting", "ineligible", "leader", "stopped"])
    def test_promote_only_from_standby(self, clock, role):
        election = make_election(clock)
        if role == "ineligible":
            election.ineligible(r("no session"))
        elif role == "leader":
            election.candidate(r("session"))
            assert election.promote(1, 100.0, r("won"))
        elif role == "stopped":
            election.stop(r("bye"))
        before_role, before_history = election.role, len(election.history)
        assert election.promote(2, 100.0, r("won again")) is False
        assert election.role == before_role
        assert len(election.history) == before_history
        if role != "leader":
            assert not election.lease.valid()
            assert election.epoch is None

    def test_promote_sets_epoch_and_transition_carries_it(self, clock):
        election = make_election(clock)
        seen: list[Transition] = []
        election.subscribe(seen.append)
        election.candidate(r("session"))
        clock.now = 100.5
        assert election.promote(42, 100.25, r("won the lock")) is True
        assert election.role == Role.LEADER
        assert election.epoch == 42
        assert election.is_leader()
        assert election.lease.expires_at == 104.25  # sent_at + duration, not now + duration
        assert seen[-1].old == Role.STANDBY and seen[-1].new == Role.LEADER
        assert seen[-1].epoch == 42
        assert str(seen[-1].reason) == "won the lock"
        assert seen[-1].monotonic == 100.5

    def test_promote_with_stale_proof_is_refused(self, clock):
        election = make_election(clock)  # lease duration 4.0
        election.candidate(r("session"))
        clock.now = 110.0
        # A read sent at 105.0 proves ownership only until 109.0, already past.
        assert election.promote(5, 105.0, r("won late")) is False
        assert election.role == Role.STANDBY
        assert election.epoch is None
        assert not election.lease.valid()
        assert election.lease.expires_at == float("-inf")  # no leftover lease
        assert len(election.history) == 1

    def test_promote_with_proof_exactly_at_lease_end_is_refused(self, clock):
        election = make_election(clock)
        election.candidate(r("session"))
        clock.now = 104.0
        assert election.promote(5, 100.0, r("won")) is False  # expires_at == now: no time left
        assert election.role == Role.STANDBY

    def test_promote_with_proof_leaving_a_little_time_is_accepted(self, clock):
        election = make_election(clock)
        election.candidate(r("session"))
        clock.now = 103.5
        assert election.promote(5, 100.0, r("won")) is True
        assert election.lease.remaining() == pytest.approx(0.5)

    def test_confirm_extends_only_while_leader(self, clock):
        election = make_election(clock)
        election.candidate(r("session"))
        election.confirm(100.0)  # standby: ignored
        assert election.lease.expires_at == float("-inf")
        assert election.promote(1, 100.0, r("won"))
        assert election.lease.expires_at == 104.0
        clock.now = 102.0
        election.confirm(101.5)
        assert election.lease.expires_at == 105.5
        election.confirm(100.5)  # older: never shortens
        assert election.lease.expires_at == 105.5
        election.demote(r("lost the lock"))
        election.confirm(103.0)  # no longer leader: ignored
        assert election.lease.expires_at == float("-inf")
        assert not election.is_leader()

    def test_fence_if_expired_exactly_at_expiry(self, clock):
        election = make_leader(clock, epoch=9, sent_at=100.0)  # expires at 104.0
        seen: list[Transition] = []
        election.subscribe(seen.append)
        clock.now = 103.999
        assert election.fence_if_expired() is False
        assert election.role == Role.LEADER
        assert election.is_leader()
        assert seen == []
        clock.now = 104.0
        assert election.fence_if_expired() is True
        assert election.role == Role.STANDBY
        assert "self-fenced" in str(election.reason)
        assert election.epoch is None
        assert len(seen) == 1
        assert seen[0].old == Role.LEADER and seen[0].new == Role.STANDBY
        assert seen[0].epoch == 9  # the epoch we were fenced out of
        assert "self-fenced" in str(seen[0].reason)
        # Nothing left to fence.
        clock.now = 200.0
        assert election.fence_if_expired() is False
        assert len(seen) == 1

    def test_fence_reason_reports_the_overdue_time(self, clock):
        election = make_leader(clock, sent_at=100.0)
        clock.now = 105.25
        assert election.fence_if_expired()
        assert "1.250s" in str(election.reason)

    def test_fence_if_expired_does_nothing_when_not_leader(self, clock):
        election = make_election(clock)
        election.candidate(r("session"))
        clock.now = 1000.0
        assert election.fence_if_expired() is False
        assert election.role == Role.STANDBY

    def test_is_leader_false_after_expiry_before_fencing(self, clock):
        election = make_leader(clock, sent_at=100.0)
        assert election.is_leader()
        clock.now = 104.0
        assert election.role == Role.LEADER  # watchdog has not run yet
        assert not election.is_leader()
        # A confirmation re-validates it (the read proved we still held the lock).
        election.confirm(103.5)
        assert election.is_leader()

    def test_demote_returns_false_when_not_leader(self, clock):
        election = make_election(clock)
        assert election.demote(r("no")) is False
        election.candidate(r("session"))
        assert election.demote(r("no")) is False
        assert election.role == Role.STANDBY
        election.stop(r("bye"))
        assert election.demote(r("no")) is False
        assert election.role == Role.STOPPED

    def test_demote_to_standby_by_default(self, clock):
        election = make_leader(clock, epoch=3)
        assert election.demote(r("someone else holds the lock")) is True
        assert election.role == Role.STANDBY
        assert str(election.reason) == "someone else holds the lock"
        assert election.epoch is None
        assert not election.lease.valid()
        assert election.history[-1].epoch == 3

    def test_demote_to_ineligible(self, clock):
        election = make_leader(clock, epoch=3)
        assert election.demote(r("check web critical"), to=Role.INELIGIBLE) is True
        assert election.role == Role.INELIGIBLE
        assert not election.is_leader()
        assert election.lease.expires_at == float("-inf")
        # Ineligible can become a candidate again.
        election.candidate(r("session again"))
        assert election.role == Role.STANDBY

    def test_ineligible_from_leader_revokes_lease(self, clock):
        election = make_leader(clock, epoch=4)
        election.ineligible(r("consul unavailable"))
        assert election.role == Role.INELIGIBLE
        assert not election.lease.valid()
        assert election.epoch is None
        assert election.history[-1].epoch == 4

    def test_a_new_reason_for_the_same_role_is_not_a_transition(self, clock):
        election = make_election(clock)
        seen = []
        election.subscribe(seen.append)
        election.ineligible(r("check web critical"))
        election.ineligible(r("check web critical"))
        election.ineligible(r("consul down"))
        assert len(election.history) == 1 and len(seen) == 1
        assert str(election.reason) == "consul down"

    @pytest.mark.parametrize("role", ["starting", "ineligible", "standby", "leader"])
    def test_stop_from_any_role(self, clock, role):
        election = make_election(clock)
        if role == "ineligible":
            election.ineligible(r("no session"))
        elif role in ("standby", "leader"):
            election.candidate(r("session"))
            if role == "leader":
                assert election.promote(1, 100.0, r("won"))
        election.stop(r("graceful stop"))
        assert election.role == Role.STOPPED
        assert str(election.reason) == "graceful stop"
        assert election.history[-1].old == Role(role)
        assert election.history[-1].new == Role.STOPPED
        assert not election.is_leader()
        assert not election.lease.valid()

    def test_no_transition_out_of_stopped(self, clock):
        election = make_election(clock)
        election.stop(r("graceful stop"))
        history = len(election.history)
        election.ineligible(r("consul down"))
        election.candidate(r("session"))
        assert election.promote(1, 100.0, r("won")) is False
        assert election.demote(r("x")) is False
        election.stop(r("again"))
        assert election.role == Role.STOPPED
        assert str(election.reason) == "graceful stop"
        assert len(election.history) == history


class TestListenersAndHistory:
    def test_listeners_called_in_order_with_transitions(self, clock, wall):
        election = make_election(clock, wall)
        calls: list[tuple[str, Transition]] = []
        election.subscribe(lambda t: calls.append(("first", t)))
        election.subscribe(lambda t: calls.append(("second", t)))
        clock.now, wall.now = 101.0, 1_700_000_001.0
        election.candidate(r("session s1"))
        clock.now, wall.now = 102.0, 1_700_000_002.0
        election.promote(11, 101.5, r("won"))
        clock.now, wall.now = 103.0, 1_700_000_003.0
        election.demote(r("lost"), to=Role.INELIGIBLE)

        assert [name for name, _ in calls] == ["first", "second"] * 3
        transitions = [t for name, t in calls if name == "first"]
        assert transitions == [t for name, t in calls if name == "second"]
        assert transitions == [
            Transition(101.0, 1_700_000_001.0, Role.STARTING, Role.STANDBY, r("session s1"), None),
            Transition(102.0, 1_700_000_002.0, Role.STANDBY, Role.LEADER, r("won"), 11),
            Transition(103.0, 1_700_000_003.0, Role.LEADER, Role.INELIGIBLE, r("lost"), 11),
        ]
        assert election.history == transitions

    def test_listener_sees_the_new_state(self, clock):
        election = make_election(clock)
        observed = []
        election.subscribe(lambda t: observed.append((election.role, election.reason)))
        election.candidate(r("session"))
        assert observed == [(Role.STANDBY, r("session"))]

    def test_history_keeps_the_last_100(self, clock):
        election = make_election(clock)
        for i in range(150):
            clock.now = 100.0 + i
            if i % 2:
                election.candidate(r(f"reason {i}"))
            else:
                election.ineligible(r(f"reason {i}"))
        assert len(election.history) == 100
        assert str(election.history[0].reason) == "reason 50"
        assert str(election.history[-1].reason) == "reason 149"
        assert election.history[0].old == Role.STANDBY
        assert election.history[-1].monotonic == 249.0


class TestSnapshot:
    def test_snapshot_of_standby(self, clock):
        election = make_election(clock)
        clock.now = 101.0
        election.candidate(r("session s1"))
        clock.now = 103.5
        assert election.snapshot() == {
            "role": "standby",
            "reason": "session s1",
            "cause": "competing",
            "epoch": None,
            "role_for_s": 2.5,
            "lease_remaining_s": None,
        }

    def test_snapshot_of_leader(self, clock):
        election = make_election(clock)
        election.candidate(r("session s1"))
        clock.now = 101.0
        assert election.promote(12, 100.5, r("won the lock"))
        clock.now = 102.25
        assert election.snapshot() == {
            "role": "leader",
            "reason": "won the lock",
            "cause": "competing",
            "epoch": 12,
            "role_for_s": 1.25,
            "lease_remaining_s": 2.25,  # 100.5 + 4.0 - 102.25
        }

    def test_snapshot_of_expired_leader_reports_zero_remaining(self, clock):
        election = make_leader(clock, epoch=2, sent_at=100.0)
        clock.now = 106.0
        snap = election.snapshot()
        assert snap["role"] == "leader"
        assert snap["lease_remaining_s"] == 0.0
        assert snap["epoch"] == 2

    def test_snapshot_after_demote_hides_epoch(self, clock):
        election = make_leader(clock, epoch=2)
        clock.now = 101.0
        election.demote(r("lost"))
        snap = election.snapshot()
        assert snap["role"] == "standby"
        assert snap["epoch"] is None
        assert snap["lease_remaining_s"] is None
        assert snap["role_for_s"] == 0.0


def r(text: str) -> Reason:
    """A reason for the state-machine tests: the kind does not matter to them, the text does."""
    return Reason(Cause.COMPETING, text)
