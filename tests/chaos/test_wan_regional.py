"""Chaos scenarios across the `regional` WAN (30 ms RTT +-5 ms, 0.5 % loss between the sites;
lab/wan.py), so that the suite keeps the WAN path honest: 1w the leader's service check fails,
4w the leader host (site a's app host alone) is isolated. The LAN suite's scenarios (4 isolates
the whole site), the same invariants: never two leaders in the transition files, fenced DNS,
convergence, one DNS change per fault and none on heal. Each scenario ends with the emulator
measuring itself under the run's load; a run whose emulator did not deliver the profile (e.g. a
delayer whose median lag is over 10 % of its delay) fails as invalid. The lag's tail is the
kernel's stalls, allowed up to half the delay (lab/wanprobe.py).

A lone isolated host comes back slower than a site: its Consul client rejoins through serf's
reconnect (every 30 s), and until then its serfHealth stays critical and it cannot create a
session (16-29 s after the heal here, within the 40 s that a has to be a standby again)."""

from __future__ import annotations

import pytest

from lab.wan import PROFILES, Wan, preflight
# The scenarios themselves are the LAN suite's, run again across the WAN: one definition each.
from tests.chaos import test_agent_faults as agent_faults
from tests.chaos import test_partitions as partitions

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
    for figure in ("lag_p50_ms", "lag_p99_ms", "lag_max_ms"):
        values = [s[figure] for s in measurement["delayers"].values() if s.get(figure) is not None]
        scenario.metric(f"wan_{figure}", max(values) if values else None)
    scenario.metric("wan_valid", measurement["valid"])
    assert measurement["valid"], f"WAN emulation invalid: {measurement['invalid_reasons']}"


def test_01w_service_check_fails_on_leader_regional(scenario, wan):
    agent_faults.test_01_service_check_fails_on_leader(scenario)
    measured(scenario, wan)


def test_04w_leader_host_isolated_regional(scenario, wan):
    partitions.isolated_leader_fails_over(scenario, ["ha"])
    measured(scenario, wan)
