"""Chaos scenarios on the network (nftables drops on the bridge): 4 leader site isolated,
5 standby site isolated, 6 a and b cut from each other, 8 gossip-only partition, 9 RPC-only
partition, 15 flapping link with random loss, 18 no node checks: gossip partition vs isolation."""

from __future__ import annotations

import pytest

from lab.invariants import Window
from lab.pair import wait_until
from tests.chaos.conftest import settle_unchanged

pytestmark = pytest.mark.chaos


def test_04_leader_site_isolated(scenario):
    isolated_leader_fails_over(scenario, ["sa", "ha"])


def isolated_leader_fails_over(scenario, hosts: list[str]) -> None:
    """Site a leads; `hosts` (of site a) are cut from every other host but the observer: a
    fences itself within its lease, b takes over with a new epoch, a comes back as a standby
    after the heal. Also run across the regional WAN (test_wan_regional.py)."""
    lab = scenario.lab
    fault = scenario.now()
    lab.net.isolate(hosts)
    demoted = wait_until(lambda: scenario.demotions("a", since=fault), 5, step=0.05,
                         what="a fences itself", logs=lab.logs)
    scenario.metric("self_fenced_s", demoted[0].monotonic - fault)
    assert demoted[0].monotonic - fault < 3.0, demoted   # lease 0.8 s + one 2 s request at most
    after = scenario.wait_names("b", 25, since=fault, key="failover_s")
    assert after.holder_epoch > scenario.epoch0
    assert demoted[0].monotonic < after.t
    scenario.hold(1)
    heal = scenario.now()
    lab.net.heal()
    scenario.verify_failover_then_heal(fault, heal, "isolated", bound=25, hold=3)


def test_05_standby_site_isolated(scenario):
    lab = scenario.lab
    raft = lab.raft_leader()
    scenario.metric("raft_leader", raft)
    fault = scenario.now()
    lab.net.isolate(["sb", "hb"])
    scenario.hold(10)
    heal = scenario.now()
    lab.net.heal()
    scenario.back_as_standby("b")
    scenario.hold(3)
    settle_unchanged(scenario, fault, heal)


def test_06_a_and_b_cut_witness_reaches_both(scenario):
    lab = scenario.lab
    scenario.metric("raft_leader", lab.raft_leader())
    fault = scenario.now()
    lab.net.cut(["sa", "ha"], ["sb", "hb"])
    scenario.hold(12)
    heal = scenario.now()
    lab.net.heal()
    scenario.hold(3)
    settle_unchanged(scenario, fault, heal)


def test_08_gossip_only_partition_of_leader_host(scenario):
    lab = scenario.lab
    fault = scenario.now()
    lab.net.block_port("ha", 8301)
    after = scenario.wait_names("b", 25, since=fault, key="failover_s")
    released = next(s for s in lab.sampler.samples if s.t > fault and s.key_ok and s.holder_site != "a")
    scenario.metric("lock_released_s", released.t - fault)
    demoted = scenario.demotions("a", since=fault)
    assert demoted, lab.logs()
    # a steps down within lock_delay (1 s) of Consul invalidating its session.
    scenario.metric("stepdown_after_release_s", demoted[0].monotonic - released.t)
    assert demoted[0].monotonic - released.t < 1.0, (demoted[0], released)
    assert demoted[0].monotonic < after.t
    heal = scenario.now()
    lab.net.heal()
    scenario.verify_failover_then_heal(fault, heal, "gossip blocked", bound=25)


def test_09_rpc_only_partition_of_leader_host(scenario):
    lab = scenario.lab
    fault = scenario.now()
    lab.net.block_port("ha", 8300)
    demoted = wait_until(lambda: scenario.demotions("a", since=fault), 6, step=0.05,
                         what="a fences itself", logs=lab.logs)
    scenario.metric("self_fenced_s", demoted[0].monotonic - fault)
    # serfHealth stays passing: only the session TTL (10 s, up to 2x by Consul) frees the lock.
    after = scenario.wait_names("b", 40, since=fault, key="failover_s")
    assert after.t - fault < 2 * 10 + 1 + 2.5 + 5, after.t - fault
    heal = scenario.now()
    lab.net.heal()
    scenario.verify_failover_then_heal(fault, heal, "rpc blocked", bound=40)


def test_15_flapping_link_random_loss(scenario):
    lab = scenario.lab
    fault = scenario.now()
    lab.net.isolate(["ha"], extra="numgen random mod 100 < 30")
    scenario.hold(20)
    heal = scenario.now()
    lab.net.heal()
    after = lab.sampler.wait(lambda s: s.holder_site is not None and lab.names(s, s.holder_site),
                             30, what="one leader named by DNS after the flapping", logs=lab.logs)
    scenario.metric("settled_after_heal_s", after.t - heal)
    scenario.hold(3)
    leaderships = [t for t in lab.transitions() if t.role == "leader" and t.monotonic >= fault]
    # A leader that fenced itself on a lost confirmation and resumed at the same epoch ("lease
    # restored") did not fail over: failovers are new epochs.
    failovers = {t.epoch for t in leaderships if t.epoch != scenario.epoch0}
    scenario.metric("leader_entries", len(leaderships))
    scenario.metric("failovers", len(failovers))
    assert len(failovers) <= 4, leaderships
    scenario.verify(Window("flapping", fault, heal, max_changes=4),
                    Window("healed", heal, bound=30, max_changes=1))


@pytest.mark.agent_session(node_checks=[])
def test_18_no_node_checks_gossip_partition_moves_nothing_isolation_fails_over(scenario):
    """With `session.node_checks: []` (what WAN users choose: gossip flaps first), a
    gossip-only partition of the leader host frees nothing; a full isolation still fails over,
    through the session TTL: the isolated host cannot renew, and the catalog never hears its
    heartbeat lapse (the local agent cannot sync), so the TTL is what frees the lock."""
    lab = scenario.lab
    fault = scenario.now()
    lab.net.block_port("ha", 8301)
    scenario.hold(12)  # serfHealth of app-a goes critical after ~6 s: not in the session now
    assert lab.leader()[0] == "a" and "b" not in scenario.leader_sites(since=fault)
    lab.net.heal()
    isolated = scenario.now()
    lab.net.isolate(["ha"])
    after = scenario.wait_names("b", 45, since=isolated, key="isolation_failover_s")
    assert after.holder_site == "b"
    heal = scenario.now()
    lab.net.heal()
    scenario.verify(Window("gossip blocked", fault, isolated, max_changes=0),
                    Window("isolated", isolated, heal, bound=45, expect_site="b", max_changes=1))
