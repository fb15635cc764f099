"""Fixtures for the fault-injection suite: a three-site lab in network namespaces (needs root).

Each test module gets its own topology (module scope); every scenario starts from `reset()`:
fresh agents, healed network, every process running, a leads with DNS on a, b standby.
Per-scenario metrics (duration, failover times) are appended as JSON lines to
$CONSULHA_CHAOS_METRICS if set, else to <pytest basetemp>/chaos-metrics.jsonl.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest

from lab.chaoslab import ChaosLab
from lab.invariants import Report, Window, check
from lab.netns import preflight, sweep_stale
from lab.pair import wait_until


def pytest_configure(config):
    config.addinivalue_line("markers", "chaos: fault injection in network namespaces (root)")
    config.addinivalue_line("markers", "agent_session(**keys): extra session: keys for the scenario's agents")
    config.addinivalue_line("markers", "agent_sections(**sections): extra top-level config sections for them")
    config.addinivalue_line("markers", "record_hooks: the agents' hooks count their calls (ChaosLab.hook_calls)")


_swept = False


@pytest.fixture(scope="module")
def lab(tmp_path_factory, request):
    global _swept
    reason = preflight()
    if reason:
        pytest.skip(f"chaos suite skipped: {reason}")
    if not _swept:
        sweep_stale()
        _swept = True
    workdir = tmp_path_factory.mktemp(f"chaos-{request.module.__name__.rsplit('.', 1)[-1]}")
    the_lab = ChaosLab(workdir)
    try:
        the_lab.start()
        yield the_lab
    finally:
        the_lab.close()


class Scenario:
    """One scenario on the shared lab: times, checks and metrics."""

    def __init__(self, lab: ChaosLab, name: str, metrics_path: Path, session: dict,
                 sections: dict | None = None, record_hooks: bool = False):
        self.lab = lab
        self.name = name
        self.metrics_path = metrics_path
        self.started = time.monotonic()
        self.steady = lab.reset(name, sections=sections, record_hooks=record_hooks, **session)
        self.epoch0 = self.steady.holder_epoch
        self.metrics: dict[str, object] = {"scenario": name,
                                           "reset_s": round(time.monotonic() - self.started, 2)}
        self.process_ends: dict[str, list[float]] = {}
        self.report: Report | None = None

    def now(self) -> float:
        return time.monotonic()

    def metric(self, key: str, value) -> None:
        self.metrics[key] = round(value, 3) if isinstance(value, float) else value

    def killed(self, site: str, at: float) -> None:
        self.process_ends.setdefault(site, []).append(at)

    def wait_names(self, site: str, timeout: float, since: float | None = None, key: str | None = None):
        sample = self.lab.wait_dns_names(site, timeout)
        if key:
            self.metric(key, sample.t - (since if since is not None else self.started))
        return sample

    def hold(self, seconds: float) -> None:
        time.sleep(seconds)

    def leader_sites(self, since: float = -math.inf) -> list[str]:
        """Sites that entered the leader role at or after `since`."""
        return [t.site for t in self.lab.transitions() if t.role == "leader" and t.monotonic >= since]

    def demotions(self, site: str, since: float = -math.inf):
        return [t for t in self.lab.transitions()
                if t.site == site and t.old == "leader" and t.monotonic >= since]

    def back_as_standby(self, site: str, timeout: float = 40) -> None:
        """Wait until `site` is a candidate again; AssertionError with the logs after `timeout`."""
        wait_until(lambda: self.lab.candidate(site), timeout, step=0.1,
                          what=f"{site} standby again", logs=self.lab.logs)

    def verify_failover_then_heal(self, fault: float, heal: float, fault_name: str, bound: float,
                                  old: str = "a", new: str = "b", hold: float = 2) -> Report:
        """The common end of a failover scenario, called right after the heal at `heal`:
        `old` comes back as a standby, does not lead again, `new` still holds the lock `hold`
        seconds later, and the invariants hold with exactly one DNS change (to `new`, within
        `bound`) during the fault and none after the heal."""
        self.back_as_standby(old)
        self.metric(f"{old}_standby_after_heal_s", self.now() - heal)
        self.hold(hold)
        assert self.lab.leader()[0] == new
        assert old not in self.leader_sites(since=heal)
        # The new leader may renew its leadership with a new epoch if the healed site disrupts
        # Raft (A record unchanged, fence epoch higher): recorded, not an error.
        self.metric(f"{new}_releads_on_heal", self.leader_sites(since=heal).count(new))
        return self.verify(Window(fault_name, fault, heal, bound=bound, expect_site=new, max_changes=1),
                           Window("healed", heal, bound=10, expect_site=new, max_changes=0))

    def verify(self, *windows: Window, overlap_tolerance: float = 0.0) -> Report:
        samples = self.lab.sampler.stop() if self.lab.sampler else []
        # From the steady state on: earlier samples show the previous scenario's DNS state.
        samples = [s for s in samples if s.t >= self.steady.t]
        report = check(self.lab.transitions(), samples, self.lab.values, windows, self.process_ends,
                       overlap_tolerance)
        self.report = report
        self.metric("samples", len(samples))
        self.metric("dns_changes", len(report.changes))
        self.metric("leaderships", len(report.intervals))
        if report.overlaps:
            self.metric("leader_overlap_s", max(report.overlaps))
        for name, took in report.convergence.items():
            if took is not None:
                self.metric(f"converged_{name}_s", took)
        assert report.ok, f"{self.name}: invariants violated\n{report.summary()}\n{self.lab.logs()}"
        return report

    def done(self) -> None:
        self.metric("duration_s", time.monotonic() - self.started)
        with open(self.metrics_path, "a") as out:
            out.write(json.dumps(self.metrics) + "\n")


@pytest.fixture
def scenario(lab, request, tmp_path_factory):
    path = Path(os.environ.get("CONSULHA_CHAOS_METRICS")
                or tmp_path_factory.getbasetemp() / "chaos-metrics.jsonl")
    # @pytest.mark.agent_session(node_checks=[]): extra `session:` keys for this scenario's agents
    marker = request.node.get_closest_marker("agent_session")
    sections = request.node.get_closest_marker("agent_sections")
    the_scenario = Scenario(lab, request.node.name, path, marker.kwargs if marker else {},
                            sections.kwargs if sections else None,
                            request.node.get_closest_marker("record_hooks") is not None)
    try:
        yield the_scenario
    finally:
        outcome = getattr(request.node, "rep_call", None)
        the_scenario.metric("passed", bool(outcome and outcome.passed))
        the_scenario.done()
        if lab.sampler:
            lab.sampler.stop()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report


def settle_unchanged(scenario: Scenario, fault: float, heal: float, expected: str = "a") -> None:
    """For faults after which nothing should change: the safety invariants hold (one leader at
    a time, fenced DNS, DNS names the holder after heal), `expected` still holds the lock, and
    the DNS answer never changed. A leadership move here is a failure, with what happened."""
    lab = scenario.lab
    moved = [s for s in scenario.leader_sites(since=fault) if s != expected]
    def held():  # one read can fail while the cluster settles after the heal: ask again
        site_and_epoch = lab.leader()
        return site_and_epoch if site_and_epoch[0] else None
    site, epoch = wait_until(held, 20, what="a lock holder after the heal")
    scenario.metric("epoch_changed", epoch != scenario.epoch0)
    scenario.metric("leader_moved", bool(moved) or site != expected)
    report = scenario.verify(Window("fault", fault, heal, max_changes=1),
                             Window("healed", heal, bound=40, max_changes=1))
    reasons = [f"{t.site}:{t.old}->{t.role} ({t.reason})" for t in lab.transitions()
               if t.monotonic >= fault and t.role in ("leader", "ineligible") and t.old != t.role]
    assert not moved and site == expected, (
        f"leadership moved from {expected} although nothing should change: " + "; ".join(reasons[:6]))
    assert not report.changes, report.summary()
