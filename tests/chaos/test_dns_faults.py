"""Chaos scenario 14: the DNS server is unreachable during a failover; DNS converges on the new
leader once it is back, and the old leader never writes."""

from __future__ import annotations

import pytest

from lab.invariants import Window

pytestmark = pytest.mark.chaos


def test_14_dns_unreachable_during_failover(scenario):
    lab = scenario.lab
    fault = scenario.now()
    lab.net.cut(["ha", "hb"], ["dns"])        # the observer still sees BIND
    lab.toys["a"].fail()
    after = lab.sampler.wait(lambda s: s.key_ok and s.holder_site == "b" and s.holder_epoch, 15,
                             what="b holds the lock", logs=lab.logs)
    scenario.metric("lock_moved_s", after.t - fault)
    scenario.hold(4)
    ok, values, _ = lab.dns()
    assert ok and values == (lab.values["a"],)   # b could not write yet
    heal = scenario.now()
    lab.net.heal()
    scenario.wait_names("b", 15, since=heal, key="converged_after_dns_back_s")
    scenario.hold(2)
    assert lab.leader()[0] == "b"
    scenario.verify(Window("dns cut", fault, heal, max_changes=0),
                    Window("dns back", heal, bound=15, expect_site="b", max_changes=1))
