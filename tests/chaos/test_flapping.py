"""Chaos scenarios on flap damping (docs/damping.md): 19 the leader's service flapping (sub-second,
seconds, irregular), 20 the same while the standby is slow to take the free lock (today's rules
give the lock back to the flapping site every time), 20b the same while the standby is gone (the
flapping site leads although damped), 21 the standby's service flapping, 22 both flapping then one
settling, 23 the only healthy site flapping.

Each counts leadership changes (the transition files), DNS answer changes (the sampler), the
hooks' calls, and looks for role re-entry on the flapping site; the overlap checker runs with
zero tolerance, as in every scenario.
"""

from __future__ import annotations

import math
import signal

import pytest

from lab.flap import Flapper, irregular, periodic
from lab.invariants import Window
from lab.pair import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.record_hooks]

FLAP_SECONDS = 25.0
SETTLE = 6.0  # after the flapping: the last move, its DNS write and the hooks have happened


def entries(scenario, site: str, since: float) -> list:
    """`site` entering the leader role at or after `since` (a resume at the same epoch after a
    self-fence is no new leadership: its lock never left)."""
    return [t for t in scenario.lab.transitions() if t.site == site and t.role == "leader"
            and t.old != "leader" and t.monotonic >= since and t.cause != "lease_restored"]


def hook_counts(scenario, site: str, before: int) -> dict[str, int]:
    calls = scenario.lab.hook_calls(site)[before:]
    return {event: sum(1 for called, _ in calls if called == event) for event in ("promote", "demote")}


def flap(toy, schedule, seconds: float = FLAP_SECONDS) -> Flapper:
    return Flapper(toy, schedule, seconds).start()


def assert_moved_once_to_b(scenario, fault: float, hooks: dict[str, int]) -> None:
    """One leadership change (to b), one DNS change, one demote hook on a, one promote hook on
    b, and a never leading again after the fault."""
    lab = scenario.lab
    assert lab.leader()[0] == "b", lab.logs()
    assert entries(scenario, "a", fault) == [], f"a re-entered the leader role\n{lab.logs()}"
    assert len(entries(scenario, "b", fault)) == 1, lab.transitions()
    report = scenario.verify(Window("flapping", fault, bound=20, expect_site="b", max_changes=1))
    assert len([c for c in report.changes if c.t >= fault]) == 1, report.summary()
    assert hook_counts(scenario, "a", hooks["a"]) == {"promote": 0, "demote": 1}
    assert hook_counts(scenario, "b", hooks["b"]) == {"promote": 1, "demote": 0}
    recorded = lab.failures()["a"]
    assert recorded["total"] >= 1 and recorded["recent"][0]["epoch"] == scenario.epoch0, recorded
    scenario.metric("failures_recorded_a", recorded["total"])


def start(scenario) -> tuple[float, dict[str, int]]:
    """The fault time and how many hook calls each site had made before it."""
    return scenario.now(), {site: len(scenario.lab.hook_calls(site)) for site in ("a", "b")}


@pytest.mark.parametrize("schedule", ["0.4s-0.4s", "1.5s-1.5s", "4s-4s", "irregular"])
def test_19_leader_service_flapping_moves_leadership_once(scenario, schedule):
    lab = scenario.lab
    phases = irregular(seed=19) if schedule == "irregular" else periodic(
        *(float(part.rstrip("s")) for part in schedule.split("-")))
    fault, hooks = start(scenario)
    flapper = flap(lab.toys["a"], phases)
    flapper.wait()
    scenario.hold(SETTLE)
    scenario.metric("failures_of_a", flapper.failures)
    assert_moved_once_to_b(scenario, fault, hooks)


# b's freeze must end well inside the window in which a frozen agent still counts as a live
# candidate: its heartbeat check turns critical after three timed-out probes of heartbeat_ttl / 3
# each, at the earliest ~5/3 heartbeat_ttl into the freeze (5 s with the lab's 3 s), and its
# session lapses 2 x ttl after its last renewal. With 10 s the freeze below (~3-5 s) has a margin
# of ten seconds; with 3 s it raced the heartbeat (issue 36: failed one run in four).
FROZEN_CANDIDATE = {"heartbeat_ttl": "10s"}
FREEZE_LIMIT = 9.0  # never frozen longer, whatever happens: b must stay a live candidate


@pytest.mark.agent_session(**FROZEN_CANDIDATE)
@pytest.mark.parametrize("damping", [
    "on", pytest.param("off", marks=pytest.mark.agent_sections(election={"damping": {"enabled": False}}))])
def test_20_leader_flapping_while_the_standby_is_slow_to_acquire(scenario, damping):
    """The race today's rules lose: a's service fails and is back before lock-delay ends,
    while b's agent is busy (frozen) until after it. Without damping (`off`: today's rules) a
    takes the free lock back, the leader role leaves a and re-enters it: what this scenario
    reproduces. With damping a is passed over for b, a live candidate with every check
    passing, which acquires once it runs again.

    b stays a live candidate throughout: its freeze ends once a has let the free lock be (on)
    or taken it (off), and long before its heartbeat check or session could lapse (asserted,
    not hoped for). The other case, b no longer a candidate, is scenario 20b."""
    lab = scenario.lab
    fault, hooks = start(scenario)
    lab.agents["b"].send(signal.SIGSTOP)
    try:
        lab.toys["a"].fail()
        wait_until(lambda: scenario.demotions("a", since=fault), 5, step=0.02, what="a steps down",
                   logs=lab.logs)
        lab.toys["a"].recover()
        if damping == "off":
            back_as_leader = wait_until(lambda: entries(scenario, "a", fault), 8, step=0.05,
                                        what="today's rules: a takes the free lock back", logs=lab.logs)
            scenario.metric("a_reentered_after_s", back_as_leader[0].monotonic - fault)
        else:
            # a is a candidate again, the lock is free (lock-delay is over), and a lets it be.
            wait_until(lambda: "lock free, passed over for site b" in lab.agents["a"].log_text(),
                       FREEZE_LIMIT - (scenario.now() - fault), step=0.05, what="a passed over for b",
                       logs=lab.logs)
            scenario.metric("a_passed_over_after_s", scenario.now() - fault)
        # The premise, checked rather than assumed: b was a live candidate the whole time.
        assert lab.candidate("b"), f"b's candidacy lapsed while frozen: the scenario's premise\n{lab.logs()}"
    finally:
        lab.agents["b"].send(signal.SIGCONT)
    continued = scenario.now()
    scenario.metric("b_frozen_s", continued - fault)
    if damping == "off":
        scenario.verify(Window("race", fault, bound=20))
        return
    scenario.wait_names("b", 15, since=continued, key="b_leads_after_cont_s")
    flapper = flap(lab.toys["a"], irregular(seed=20), 15)  # and a goes on flapping
    flapper.wait()
    scenario.hold(SETTLE)
    assert_moved_once_to_b(scenario, fault, hooks)


def test_20b_leader_flapping_while_the_standby_is_gone_leads_although_damped(scenario):
    """Scenario 20's other case: b is frozen long enough for its heartbeat check to turn critical,
    so its session and candidacy are gone, before a fails. When a's service is back, a is the
    only live candidate: it leads although damped (availability beats damping), and says so.
    Once b runs again it is a standby, and a keeps the lead: damping moves no healthy leader."""
    lab = scenario.lab
    lab.agents["b"].send(signal.SIGSTOP)
    try:
        wait_until(lambda: not lab.candidate("b"), 20, step=0.1, what="b's candidacy gone",
                   logs=lab.logs)
        fault, hooks = start(scenario)
        lab.toys["a"].fail()
        wait_until(lambda: scenario.demotions("a", since=fault), 5, step=0.02, what="a steps down",
                   logs=lab.logs)
        lab.toys["a"].recover()
        back = wait_until(lambda: entries(scenario, "a", fault), 10, step=0.05,
                          what="a leads again", logs=lab.logs)
        scenario.metric("a_leads_again_after_s", back[0].monotonic - fault)
        assert "leading although damped" in back[0].reason, lab.transitions()
    finally:
        lab.agents["b"].send(signal.SIGCONT)
    continued = scenario.now()
    scenario.back_as_standby("b")
    scenario.metric("b_standby_after_cont_s", scenario.now() - continued)
    scenario.hold(3)
    assert lab.leader()[0] == "a", lab.logs()
    assert len(entries(scenario, "a", fault)) == 1 and entries(scenario, "b", fault) == [], lab.transitions()
    # DNS named a throughout: the lock left a and came back to it, at a new epoch only.
    report = scenario.verify(Window("b gone", fault, bound=20, expect_site="a", max_changes=0))
    assert not report.changes, report.summary()
    assert hook_counts(scenario, "a", hooks["a"]) == {"promote": 1, "demote": 1}
    assert hook_counts(scenario, "b", hooks["b"]) == {"promote": 0, "demote": 0}
    assert lab.failures()["a"]["total"] >= 1


def test_21_standby_service_flapping_changes_nothing(scenario):
    lab = scenario.lab
    fault, hooks = start(scenario)
    flapper = flap(lab.toys["b"], irregular(seed=21, shortest=0.2, longest=3.0))
    flapper.wait()
    scenario.hold(SETTLE)
    scenario.metric("failures_of_b", flapper.failures)
    assert lab.leader() == ("a", scenario.epoch0), lab.logs()
    assert entries(scenario, "b", fault) == [] and scenario.demotions("a", since=fault) == []
    report = scenario.verify(Window("standby flapping", fault, bound=5, expect_site="a", max_changes=0))
    assert not report.changes, report.summary()
    assert hook_counts(scenario, "a", hooks["a"]) == hook_counts(scenario, "b", hooks["b"]) == {
        "promote": 0, "demote": 0}
    assert lab.failures() == {}, "a standby's failing checks are no lost leadership"


def test_22_both_flapping_then_one_settles(scenario):
    lab = scenario.lab
    fault, hooks = start(scenario)
    a_flaps = flap(lab.toys["a"], periodic(1.2, 1.8), FLAP_SECONDS + 20)
    b_flaps = flap(lab.toys["b"], irregular(seed=22, shortest=0.3, longest=3.0), FLAP_SECONDS)
    b_flaps.wait()
    # b healthy from here on, a still flapping. For one check interval b's check may still show
    # its last failure, and a few seconds more pass before b is a candidate again (a passing
    # probe, a session): meanwhile a, the only healthy candidate, may still lead.
    settled = scenario.now()
    late = settled + 5.0
    wait_until(lambda: lab.leader()[0] == "b" and scenario.now() > late, 25, step=0.1,
               what="b leads after it settled", logs=lab.logs)
    a_flaps.wait()
    scenario.hold(SETTLE)
    assert lab.leader()[0] == "b", lab.logs()
    # Once b was a healthy candidate for good, the flapping a never led again.
    assert entries(scenario, "a", late) == [], lab.logs()
    report = scenario.verify(Window("both flapping", fault, settled),
                             Window("b settled", late, bound=25, expect_site="b", max_changes=1))
    scenario.metric("leaderships", {site: len(entries(scenario, site, fault)) for site in ("a", "b")})
    scenario.metric("dns_changes_while_both_flapped", len([c for c in report.changes if fault <= c.t < late]))
    # Every leadership ran the operator's hooks once each way, and no more.
    for site in ("a", "b"):
        assert hook_counts(scenario, site, hooks[site]) == {
            "promote": len([t for t in lab.transitions() if t.site == site and t.role == "leader"
                            and t.monotonic >= fault]),
            "demote": len(scenario.demotions(site, since=fault))}, (site, lab.transitions())
    assert lab.failures()["a"]["total"] >= 1


def test_23_only_healthy_site_flapping_still_leads_whenever_it_is_up(scenario):
    lab = scenario.lab
    lab.toys["b"].fail()
    wait_until(lambda: not lab.candidate("b"), 15, step=0.1, what="b out of the election", logs=lab.logs)
    fault, hooks = start(scenario)
    flapper = flap(lab.toys["a"], periodic(2.0, 6.0), 40)
    flapper.wait()
    scenario.hold(SETTLE)
    assert lab.leader()[0] == "a", lab.logs()
    # Every up phase of a long enough to win the lock (check, session, one lease) saw a lead.
    ups = [(t, end) for (t, healthy), (end, _) in zip(flapper.phases, flapper.phases[1:] + [(math.inf, True)])
           if healthy]
    wins = [t.monotonic for t in entries(scenario, "a", fault)]
    for up, end in ups:
        assert any(up <= won <= end for won in wins), (up, end, wins, lab.logs())
    assert entries(scenario, "b", fault) == []
    report = scenario.verify(Window("only a", fault, bound=20, expect_site="a", max_changes=0))
    assert not report.changes, report.summary()      # DNS named a throughout (new epochs only)
    recorded = lab.failures()["a"]
    assert recorded["total"] >= flapper.failures - 1, recorded   # the last one may be in flight
    # Damped, and said so; but never banned: the hold-down stays within max_hold_down (5 min).
    assert 0 < recorded["damped_until"] - recorded["as_of"] <= 300.0 + 1, recorded
    calls = hook_counts(scenario, "a", hooks["a"])
    assert calls["promote"] == len([t for t in lab.transitions() if t.site == "a" and t.role == "leader"
                                    and t.monotonic >= fault]), lab.transitions()
    assert any("leading although damped" in t.reason for t in entries(scenario, "a", fault)), lab.transitions()
    lab.toys["b"].recover()
    scenario.back_as_standby("b")
    scenario.hold(3)
    assert lab.leader()[0] == "a"       # a healthy leader stays: damping moves nothing by itself
