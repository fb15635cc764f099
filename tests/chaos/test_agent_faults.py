"""Chaos scenarios on the agents and their services: 1 check fails, 2 SIGKILL, 3 SIGSTOP past the
lease, 13 operator deletes the key or destroys the session, 16 both sites unhealthy."""

from __future__ import annotations

import signal

import pytest

from consulha.core.reasons import Cause
from lab.invariants import Window
from lab.pair import wait_until

pytestmark = pytest.mark.chaos


def test_01_service_check_fails_on_leader(scenario):
    lab = scenario.lab
    fault = scenario.now()
    lab.toys["a"].fail()
    after = scenario.wait_names("b", 15, since=fault, key="failover_s")
    assert after.holder_epoch > scenario.epoch0
    assert scenario.demotions("a", since=fault), lab.logs()
    heal = scenario.now()
    lab.toys["a"].recover()
    # a gets healthy again and must come back as a standby, not take leadership back.
    scenario.verify_failover_then_heal(fault, heal, "failover", bound=15, hold=3)
    assert scenario.leader_sites(since=heal) == []


def test_02_leader_agent_sigkill(scenario):
    lab = scenario.lab
    fault = scenario.now()
    lab.agents["a"].kill()
    scenario.killed("a", fault)
    after = scenario.wait_names("b", 20, since=fault, key="failover_s")
    # Consul invalidates a's session (its heartbeat probes are refused), which puts lock-delay
    # (1 s) on the key: sooner would mean the lock was not tied to a's heartbeat at all.
    assert after.t - fault >= 1.0
    heal = scenario.now()
    lab.start_agent("a")
    scenario.verify_failover_then_heal(fault, heal, "failover", bound=20)


def test_03_leader_agent_sigstop_past_lease(scenario):
    lab = scenario.lab
    fault = scenario.now()
    lab.agents["a"].send(signal.SIGSTOP)
    try:
        scenario.wait_names("b", 20, since=fault, key="failover_s")
        scenario.hold(2)    # a stays frozen well past its lease and b's DNS write
    finally:
        lab.agents["a"].send(signal.SIGCONT)
    resumed = scenario.now()
    scenario.metric("frozen_s", resumed - fault)
    demoted = wait_until(lambda: scenario.demotions("a", since=fault), 5, step=0.05,
                         what="a demotes after SIGCONT", logs=lab.logs)
    assert demoted[0].cause in (Cause.SELF_FENCED, Cause.LOCK_HELD_BY_OTHER, Cause.LOCK_RELEASED), demoted
    scenario.metric("demoted_after_cont_s", demoted[0].monotonic - resumed)
    scenario.hold(4)
    assert lab.leader()[0] == "b"
    assert "a" not in scenario.leader_sites(since=fault)
    report = scenario.verify(
        Window("failover", fault, resumed, bound=20, expect_site="b", max_changes=1),
        Window("resume", resumed, bound=5, expect_site="b", max_changes=0))
    # a's leadership ended at its lease expiry, long before b's began.
    a_end = [i for i in report.intervals if i.site == "a"][0].end
    b_start = [i for i in report.intervals if i.site == "b"][0].start
    assert a_end < b_start


@pytest.mark.parametrize("how", ["delete_key", "destroy_session"])
def test_13_operator_frees_the_lock(scenario, how):
    lab = scenario.lab
    fault = scenario.now()
    if how == "delete_key":
        status, _ = lab.api("/v1/kv/consulha/app/leader", method="DELETE")
    else:
        status, _ = lab.api(f"/v1/session/destroy/{scenario.steady.holder_session}", method="PUT")
    assert status == 200
    demoted = wait_until(lambda: scenario.demotions("a", since=fault), 5, step=0.02,
                         what="a steps down", logs=lab.logs)
    scenario.metric("stepped_down_s", demoted[0].monotonic - fault)
    assert demoted[0].monotonic - fault < 1.0, demoted   # at once: within a confirm interval or so
    # Someone (either site) leads again with a newer epoch, and DNS names it.
    after = lab.sampler.wait(lambda s: s.holder_epoch is not None and s.holder_epoch > scenario.epoch0
                             and lab.names(s, s.holder_site), 15, what="new leader", logs=lab.logs)
    scenario.metric("new_leader", after.holder_site)
    scenario.metric("relead_s", after.t - fault)
    scenario.hold(2)
    # Neither frees the lock with a lock-delay (Consul semantics); the standby waits one lease
    # before it takes a key freed this way, so the old leader has stepped down first: no overlap.
    scenario.verify(Window(how, fault, bound=15, max_changes=1))


def test_16_both_sites_unhealthy(scenario):
    lab = scenario.lab
    fault = scenario.now()
    lab.toys["b"].fail()
    lab.toys["a"].fail()
    wait_until(lambda: scenario.demotions("a", since=fault), 10, step=0.05,
               what="a steps down", logs=lab.logs)
    lab.sampler.wait(lambda s: s.key_ok and s.holder_site is None, 10, what="lock free")
    scenario.hold(5)
    assert lab.leader() == (None, None)
    assert scenario.leader_sites(since=fault) == []
    ok, values, _ = lab.dns()
    assert ok and values == (lab.values["a"],)     # DNS left as is
    heal = scenario.now()
    lab.toys["a"].recover()
    lab.toys["b"].recover()
    after = lab.sampler.wait(lambda s: s.holder_site is not None and lab.names(s, s.holder_site),
                             20, what="a leader again", logs=lab.logs)
    scenario.metric("relead_s", after.t - heal)
    scenario.metric("new_leader", after.holder_site)
    scenario.hold(2)
    scenario.verify(Window("unhealthy", fault, heal, max_changes=0),
                    Window("recovered", heal, bound=20, max_changes=1))
