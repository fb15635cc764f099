"""Chaos scenarios across the `regional` WAN (30 ms RTT +-5 ms, 0.5 % loss between the sites;
lab/wan.py), so that the suite keeps the WAN path honest: 1w the leader's service check fails,
4w the leader host is isolated. Same invariants as on the LAN: never two leaders in the
transition files, fenced DNS, convergence, one DNS change per fault and none on heal. Each
scenario ends with the emulator measuring itself under the run's load; a run whose emulator did
not deliver the profile (e.g. a delayer lagging more than 10 % of its delay) fails as invalid."""

from __future__ import annotations

import pytest

from lab.pair import wait_until
from lab.wan import PROFILES, Wan, preflight

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module", autouse=True)
def wan(lab):
    reason = preflight()
    if reason:
        pytest.skip(f"WAN scenarios skipped: {reason}")
    emulator = Wan(lab.net)
    try:
        emulator.apply(PROFILES["regional"])
        yield emulator
    finally:
        emulator.close()


def measured(scenario, wan: Wan) -> None:
    """The emulator's own figures beside the scenario's, and its verdict."""
    measurement = wan.measure(count=10)
    for link in measurement["pairs"]:
        name = f"wan_{link['src']}{link['dst']}"
        scenario.metric(f"{name}_rtt_p50_ms", link["observed"]["rtt_p50_ms"])
        scenario.metric(f"{name}_rtt_p99_ms", link["observed"]["rtt_p99_ms"])
    lags = [s["lag_p99_ms"] for s in measurement["delayers"].values() if s.get("lag_p99_ms") is not None]
    scenario.metric("wan_lag_p99_ms", max(lags) if lags else None)
    scenario.metric("wan_valid", measurement["valid"])
    assert measurement["valid"], f"WAN emulation invalid: {measurement['invalid_reasons']}"


def test_01w_service_check_fails_on_leader_regional(scenario, wan):
    lab = scenario.lab
    fault = scenario.now()
    lab.toys["a"].fail()
    after = scenario.wait_names("b", 15, since=fault, key="failover_s")
    assert after.holder_epoch > scenario.epoch0
    assert scenario.demotions("a", since=fault), lab.logs()
    heal = scenario.now()
    lab.toys["a"].recover()
    scenario.verify_failover_then_heal(fault, heal, "failover", bound=15, hold=3)
    assert scenario.leader_sites(since=heal) == []
    measured(scenario, wan)


def test_04w_leader_host_isolated_regional(scenario, wan):
    lab = scenario.lab
    fault = scenario.now()
    lab.net.isolate(["ha"])
    demoted = wait_until(lambda: scenario.demotions("a", since=fault), 6, step=0.05,
                         what="a fences itself", logs=lab.logs)
    scenario.metric("self_fenced_s", demoted[0].monotonic - fault)
    after = scenario.wait_names("b", 25, since=fault, key="failover_s")
    assert after.holder_epoch > scenario.epoch0
    assert demoted[0].monotonic < after.t
    scenario.hold(1)
    heal = scenario.now()
    lab.net.heal()
    scenario.verify_failover_then_heal(fault, heal, "isolated", bound=25, hold=3)
    measured(scenario, wan)
