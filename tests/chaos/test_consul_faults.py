"""Chaos scenarios on Consul itself: 7 witness down, 10 leader's local client agent SIGKILL /
SIGSTOP, 11 quorum lost, 12 Raft leader server killed, 17 leader's client rebuilt with its
data dir lost (a blind catalog) and then a service failing."""

from __future__ import annotations

import shutil

import pytest

from consulha.core.reasons import Cause
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


@pytest.mark.parametrize("probes", [
    pytest.param("own", marks=pytest.mark.agent_sections(election={"leader_probes": True})),
    pytest.param("consul", marks=pytest.mark.agent_sections(election={"leader_probes": False}))])
def test_17_leader_client_data_dir_lost_then_a_service_fails(scenario, probes):
    """The leader host's Consul client restarts with its data dir lost: new node ID, same name,
    so the servers refuse its every sync and the catalog keeps a's old checks passing. Then a's
    service fails: only the local agent knows, and a's own probe. With own probes
    a steps down on its probe; with Consul's checks alone, local truth makes it step down and
    names the stale node. Either way DNS must name b."""
    lab = scenario.lab
    client = lab.consul["ha"]
    node_id = (client.dir / "data" / "node-id").read_text()
    wiped = scenario.now()
    client.kill()
    shutil.rmtree(client.dir / "data")
    client.start()
    wait_until(lambda: "reserved by node" in client.log_tail(80), 30, step=0.2,
               what="the servers refuse the rebuilt client's sync", logs=lab.logs)
    scenario.hold(4)  # a re-registers on the rebuilt client and renews: nothing moves
    assert lab.leader()[0] == "a" and "b" not in scenario.leader_sites(since=wiped)
    fault = scenario.now()
    lab.toys["a"].fail()
    scenario.wait_names("b", 20, since=fault, key="failover_s")
    stepped = scenario.demotions("a", since=fault)
    assert stepped and stepped[0].cause == Cause.CHECK_FAILED, stepped
    if probes == "own":
        assert stepped[0].reason == "check failed: api (own probe)", stepped[0].reason
    else:
        assert "has ID" in stepped[0].reason, stepped[0].reason  # names the stale node
    heal = scenario.now()
    # Give the client its old identity back, so the next scenarios see a synced catalog.
    client.kill()
    shutil.rmtree(client.dir / "data")
    (client.dir / "data").mkdir(parents=True)
    (client.dir / "data" / "node-id").write_text(node_id)
    client.start()
    lab.toys["a"].recover()
    scenario.verify_failover_then_heal(fault, heal, "blind catalog", bound=20)
