"""The ZooKeeper design's agent decision (bench/peers/zkdecide.py), pure."""

from __future__ import annotations

from dataclasses import replace

from bench.peers.zkdecide import Role, View, decide

API = frozenset({"api"})
NONE: frozenset[str] = frozenset()
STANDBY_B = View(site="b", services=API, healthy=API, connected=True, active="a", peer_up=API,
                 held=API, role=Role.STANDBY)


def test_nothing_while_not_connected_even_with_the_peer_gone():
    plan = decide(replace(STANDBY_B, connected=False, peer_up=NONE, held=NONE))
    assert (plan.create, plan.delete, plan.claim, plan.take_over, plan.announce) == (NONE, NONE, False, False, None)


def test_first_healthy_site_creates_its_znode_and_claims_active():
    plan = decide(View(site="a", services=API, healthy=API, connected=True, active=None,
                       peer_up=NONE, held=NONE, role=None))
    assert plan.create == API and plan.claim and not plan.take_over


def test_no_claim_while_unhealthy():
    plan = decide(View(site="a", services=API, healthy=NONE, connected=True, active=None,
                       peer_up=NONE, held=NONE, role=None))
    assert plan.create == NONE and not plan.claim


def test_active_site_announces_once_and_drops_the_znode_of_a_failed_service():
    active = replace(STANDBY_B, site="a", active="a", role=None)
    assert decide(active).announce is Role.ACTIVE
    failed = decide(replace(active, role=Role.ACTIVE, healthy=NONE))
    assert failed.delete == API and failed.announce is None and not failed.take_over


def test_standby_with_the_active_site_complete_does_nothing():
    plan = decide(STANDBY_B)
    assert (plan.create, plan.delete, plan.take_over, plan.announce) == (NONE, NONE, False, None)


def test_standby_takes_over_when_a_znode_of_the_active_site_is_gone():
    plan = decide(replace(STANDBY_B, peer_up=NONE))
    assert plan.take_over and plan.announce is Role.ACTIVE and "api" in plan.reason


def test_take_over_is_decided_again_until_active_names_this_site():
    plan = decide(replace(STANDBY_B, peer_up=NONE, role=Role.ACTIVE))
    assert plan.take_over and plan.announce is None


def test_unhealthy_standby_does_not_take_over():
    plan = decide(replace(STANDBY_B, peer_up=NONE, healthy=NONE))
    assert not plan.take_over and plan.delete == API


def test_no_take_over_before_the_children_watch_answered():
    assert not decide(replace(STANDBY_B, peer_up=None)).take_over


def test_old_active_becomes_standby_when_active_names_the_peer():
    plan = decide(replace(STANDBY_B, site="a", active="b", role=Role.ACTIVE, healthy=NONE, held=NONE))
    assert plan.announce is Role.STANDBY and not plan.take_over


def test_znodes_are_created_again_on_a_new_session():
    plan = decide(replace(STANDBY_B, held=NONE))   # the loop empties `held` on a lost session
    assert plan.create == API
