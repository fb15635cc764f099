"""bench/wan.py's judging of both systems (pure functions over polls and events)."""

from bench.wan_outcome import (Poll, converged_at, dns_moves, emulator_verdict, estimate_minutes, judge_run,
                               leadership_moves, soak_counts, stale_writes, summarise_runs,
                               two_leaders)


def event(t, site, kind):
    return {"t": t, "site": site, "event": kind}


FAILOVER = [event(0, "a", "active"), event(0.1, "a", "dns_write"), event(5, "a", "standby"),
            event(6, "b", "active"), event(6.1, "b", "dns_write")]


def test_converged_needs_every_verify_server_on_the_new_site():
    polls = [Poll(9, ("a",), ("a", "a")), Poll(10.5, ("b",), ("b", "a")), Poll(11.2, ("b",), ("b", "b"))]
    assert abs(converged_at(polls, 10, "b") - 1.2) < 1e-9
    assert converged_at(polls, 12, "b") is None


def test_dns_moves_skip_unreadable_polls():
    polls = [Poll(1, (), ("a",)), Poll(2, (), (None,)), Poll(3, (), ("a",)), Poll(4, (), ("b",)),
             Poll(5, (), ("a",))]
    assert dns_moves(polls) == 2
    assert dns_moves(polls, since=4.5) == 1


def test_a_leader_that_fences_itself_and_resumes_is_no_move():
    events = [event(0, "a", "active"), event(3, "a", "standby"), event(3.5, "a", "active")]
    assert leadership_moves(events) == 0
    assert leadership_moves(FAILOVER) == 1
    assert leadership_moves(FAILOVER, since=7) == 0


def test_two_leaders_and_a_stale_writer():
    both = [event(0, "a", "active"), event(6, "b", "active"), event(7, "a", "dns_write"),
            event(8, "b", "dns_write"), event(9, "a", "standby")]
    assert two_leaders(both, {}) == [3]
    assert stale_writes(both, {}) == 1       # a wrote at 7 while b, newer, led
    assert two_leaders(FAILOVER, {}) == [] and stale_writes(FAILOVER, {}) == 0


def test_a_killed_agent_leads_until_its_kill():
    killed = [event(0, "a", "active"), event(6, "b", "active")]
    assert two_leaders(killed, {}) != []
    assert two_leaders(killed, {"a": [2.0]}) == []


def test_a_run_judged_late_missed_and_summarised():
    polls = [Poll(t, (), ("a",)) for t in (0, 1)] + [Poll(40, ("b",), ("b",))]
    late = judge_run(polls, FAILOVER, 1, 45, "b", {})
    missed = judge_run(polls[:2], FAILOVER, 1, 45, "b", {}, ["two leaders: ..."])
    assert late.late and not late.missed and late.moves == 1   # b took over at 6
    assert missed.missed and not missed.late
    row = summarise_runs([late, missed])
    assert (row["runs"], row["late"], row["missed"], row["invariant_violations"]) == (1, 1, 1, 1)


def test_every_move_in_a_soak_is_a_false_failover():
    flap = [event(0, "a", "active"), event(100, "b", "active"), event(130, "a", "active")]
    counts = soak_counts([], flap, 10, 200, {})
    assert counts["false_failovers"] == 2 and counts["promotions"] == 2


def test_a_profile_is_invalid_when_any_emulator_measurement_was():
    good = {"valid": True, "invalid_reasons": []}
    lagging = {"valid": False, "invalid_reasons": ["delayer in ha lags: p99 3 ms > 10% of 15 ms"]}
    assert emulator_verdict([good, None])["valid"]
    verdict = emulator_verdict([good, lagging, lagging])
    assert not verdict["valid"] and verdict["invalid_reasons"] == lagging["invalid_reasons"]
    assert verdict["measurements"] == 3


def test_the_estimate_uses_each_profiles_own_times_and_the_mean_for_the_others():
    report = {"profiles": {
        "lan": {"durations_s": {"soak_s": 70, "check_run_s": 10, "sigkill_run_s": 20}, "soak": {"seconds": 60}},
        "bad": {"durations_s": {"soak_s": 90, "check_run_s": 30}, "soak": {"seconds": 60}}}}
    minutes = estimate_minutes(report, {"lan": 2, "bad": 1, "metro": 3}, 600)
    assert minutes["timed"] == ["check", "sigkill"]
    assert minutes["soaks"] * 60 == (610 + 630 + 620)           # setups 10, 30, mean 20
    # lan 2 x (10 + 20); bad 1 x (30 + mean sigkill 20); metro 3 x (mean check 20 + 20)
    assert minutes["faults"] * 60 == 2 * 30 + 1 * 50 + 3 * 40
