"""Chaos scenarios on Consul itself: 7 witness down, 10 leader's local client agent SIGKILL /
SIGSTOP, 11 quorum lost, 12 Raft leader server killed."""

from __future__ import annotations

import pytest

from lab.invariants import Window
from lab.pair import wait_until
from tests.chaos.conftest import settle_unchanged

pytestmark = pytest.mark.chaos


def test_07_witness_down(scenario):
    lab = scenario.lab
    scenario.metric("raft_leader", lab.raft_leader())
    fault = scenario.now()
    lab.consul["sw"].kill()
    scenario.hold(10)
    heal = scenario.now()
    lab.wait_cluster()
    scenario.metric("cluster_back_s", scenario.now() - heal)
    scenario.hold(3)
    settle_unchanged(scenario, fault, heal)


@pytest.mark.parametrize("how", ["sigkill", "sigstop"])
def test_10_leader_local_consul_client_fails(scenario, how):
    lab = scenario.lab
    client = lab.consul["ha"]
    fault = scenario.now()
    client.kill() if how == "sigkill" else client.pause()
    demoted = wait_until(lambda: scenario.demotions("a", since=fault), 6, step=0.05,
                         what="a fences itself", logs=lab.logs)
    scenario.metric("self_fenced_s", demoted[0].monotonic - fault)
    assert demoted[0].monotonic - fault < 3.5, demoted    # lease 0.8 s + one 2 s request
    after = scenario.wait_names("b", 25, since=fault, key="failover_s")
    assert demoted[0].monotonic < after.t
    heal = scenario.now()
    client.start() if how == "sigkill" else client.resume()
    scenario.verify_failover_then_heal(fault, heal, "client down", bound=25)
    assert "a" not in scenario.leader_sites(since=fault)


def test_11_quorum_lost(scenario):
    lab = scenario.lab
    fault = scenario.now()
    lab.consul["sb"].kill()
    lab.consul["sw"].kill()
    demoted = wait_until(lambda: scenario.demotions("a", since=fault), 6, step=0.05,
                         what="a fences itself", logs=lab.logs)
    scenario.metric("self_fenced_s", demoted[0].monotonic - fault)
    scenario.hold(8)
    assert scenario.leader_sites(since=demoted[0].monotonic) == []   # zero leaders is fine
    heal = scenario.now()
    lab.consul["sb"].start()
    lab.consul["sw"].start()
    # Samples taken from now on need a quorum (consistent reads): any holder seen is current.
    # The old leader may keep its lock (same epoch) if its session survived.
    after = lab.sampler.wait(lambda s: s.holder_site is not None and s.holder_epoch is not None
                             and s.holder_epoch >= scenario.epoch0 and lab.names(s, s.holder_site),
                             40, what="one leader after quorum is back", logs=lab.logs)
    scenario.metric("relead_after_recovery_s", after.t - heal)
    scenario.metric("new_leader", after.holder_site)
    scenario.hold(2)
    scenario.verify(Window("no quorum", fault, heal, max_changes=0),
                    Window("quorum back", heal, bound=40, max_changes=1))


def test_12_raft_leader_server_killed(scenario):
    lab = scenario.lab
    raft = lab.raft_leader()
    assert raft in ("sa", "sb", "sw")
    scenario.metric("raft_leader", raft)
    fault = scenario.now()
    lab.consul[raft].kill()
    wait_until(lambda: lab.raft_leader() not in (None, raft), 20, step=0.2, what="new Raft leader")
    scenario.metric("raft_reelected_s", scenario.now() - fault)
    scenario.hold(5)
    heal = scenario.now()
    lab.wait_cluster()
    scenario.hold(3)
    settle_unchanged(scenario, fault, heal)
