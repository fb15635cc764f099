"""The chaos suite's invariant checker, on synthetic timelines (pure: no servers)."""

from __future__ import annotations

import json
import math

from lab.invariants import (
    Sample,
    TransitionRecord,
    Window,
    check,
    convergence_time,
    dns_changes,
    fence_violations,
    leader_intervals,
    load_samples,
    load_transitions,
    overlapping_leaders,
    overlaps,
)

VALUES = {"a": "192.0.2.1", "b": "192.0.2.2"}


def tr(site, t, role, old, epoch=None, reason="", cause="", seconds=None):
    return TransitionRecord(site=site, monotonic=t, role=role, old=old, epoch=epoch, reason=reason,
                            cause=cause, seconds=seconds)


def sample(t, site=None, epoch=None, dns_site=None, dns_epoch=None, dns_ok=True, key_ok=True):
    return Sample(t=t, dns_ok=dns_ok, dns_values=(VALUES[dns_site],) if dns_site else (),
                  fence_epoch=dns_epoch, fence_site=dns_site, key_ok=key_ok, holder_site=site,
                  holder_epoch=epoch, holder_session=f"s-{site}" if site else None)


def clean_failover():
    transitions = [tr("a", 1.0, "leader", "standby", 10), tr("b", 1.2, "standby", "ineligible"),
                   tr("a", 5.0, "standby", "leader", 10, "lock released"),
                   tr("b", 6.1, "leader", "standby", 20)]
    samples = ([sample(t / 10, "a", 10, "a", 10) for t in range(10, 50)]
               + [sample(t / 10, None, None, "a", 10) for t in range(50, 61)]
               + [sample(6.15, "b", 20, "a", 10)]
               + [sample(t / 10, "b", 20, "b", 20) for t in range(62, 80)])
    return transitions, samples


def test_clean_failover_passes_every_invariant():
    transitions, samples = clean_failover()
    report = check(transitions, samples, VALUES,
                   [Window("failover", 4.9, 7.0, bound=2.0, expect_site="b", max_changes=1),
                    Window("after", 7.0, bound=1.0, expect_site="b", max_changes=0)])
    assert report.ok, report.summary()
    assert [c.after for c in report.changes] == [(VALUES["b"],)]
    assert math.isclose(report.convergence["failover"], 6.2 - 4.9)
    assert report.overlaps == []


def test_overlapping_leaders_are_reported_and_tolerance_forgives_short_ones():
    transitions = [tr("a", 1.0, "leader", "standby", 10), tr("b", 3.0, "leader", "standby", 20),
                   tr("a", 3.15, "standby", "leader", 10, "lock now held by another session")]
    intervals = leader_intervals(transitions)
    assert len(overlapping_leaders(intervals)) == 1
    assert overlapping_leaders(intervals, tolerance=0.2) == []
    assert [round(x, 3) for x in overlaps(intervals)] == [0.15]


def test_self_fence_after_a_freeze_ends_leadership_at_the_lease_expiry():
    # a was frozen (SIGSTOP) from 2.0 on; b took over at 6.0; a resumed at 9.0 and fenced itself.
    transitions = [tr("a", 1.0, "leader", "standby", 10), tr("b", 6.0, "leader", "standby", 20),
                   tr("a", 9.0, "standby", "leader", 10,
                      "self-fenced: lease expired 6.200s ago without a confirmation from Consul",
                      cause="self_fenced", seconds=6.2)]
    intervals = leader_intervals(transitions)
    a = next(i for i in intervals if i.site == "a")
    assert math.isclose(a.end, 2.8)
    assert overlapping_leaders(intervals) == []


def test_killed_leader_ends_at_process_death_and_open_interval_runs_to_infinity():
    transitions = [tr("a", 1.0, "leader", "standby", 10), tr("b", 5.0, "leader", "standby", 20)]
    assert overlapping_leaders(leader_intervals(transitions))          # a never demoted
    intervals = leader_intervals(transitions, process_ends={"a": [2.0]})
    assert overlapping_leaders(intervals) == []
    assert [i.end for i in intervals] == [2.0, math.inf]


def test_dns_written_with_an_epoch_the_key_never_showed_is_a_violation():
    samples = [sample(1.0, "a", 10, "a", 10), sample(1.1, "a", 10, "b", 15)]
    problems = fence_violations(samples, VALUES)
    assert any("never showed" in p for p in problems)


def test_dns_epoch_going_down_is_a_violation():
    samples = [sample(1.0, "b", 20, "b", 20), sample(1.1, "a", 10, "a", 10)]
    assert any("went down" in p for p in fence_violations(samples, VALUES))


def test_dns_answer_not_matching_its_fence_site_is_a_violation():
    bad = Sample(t=1.0, dns_values=(VALUES["b"],), fence_epoch=10, fence_site="a",
                 holder_site="a", holder_epoch=10)
    assert any("fence names site a" in p for p in fence_violations([bad], VALUES))


def test_unreadable_samples_and_a_fresh_empty_zone_are_ignored():
    samples = [sample(0.5, None, None), sample(0.9, "a", 10, dns_ok=False),
               sample(1.0, "a", 10, "a", 10), sample(1.1, key_ok=False, dns_site="a", dns_epoch=10)]
    assert fence_violations(samples, VALUES) == []
    assert len(dns_changes(samples)) == 1      # absent -> a, unreadable samples skipped


def test_flapping_beyond_the_allowed_changes_is_a_violation():
    samples = []
    for i, (site, epoch) in enumerate([("a", 10), ("b", 20), ("a", 30), ("b", 40)]):
        samples += [sample(i + k / 10, site, epoch, site, epoch) for k in range(10)]
    report = check([], samples, VALUES, [Window("flap", 0.0, 10.0, max_changes=1)])
    assert not report.ok and "3 DNS answer changes" in report.violations[0]


def test_no_convergence_within_the_bound_is_a_violation():
    samples = [sample(t / 10, "b", 20, "a", 10) for t in range(0, 50)]
    assert convergence_time(samples, 0.0, VALUES, "b") is None
    report = check([], samples, VALUES, [Window("stuck", 0.0, bound=3.0, expect_site="b")])
    assert any("did not name site b" in v for v in report.violations)


def test_convergence_requires_the_holder_epoch_not_only_the_value():
    # b re-acquired with epoch 21: DNS still carries 20 -> not converged until it says 21.
    samples = [sample(1.0, "b", 21, "b", 20), sample(1.5, "b", 21, "b", 21)]
    assert convergence_time(samples, 0.0, VALUES, "b") == 1.5


def test_loaders_read_json_lines(tmp_path):
    transitions = tmp_path / "t.jsonl"
    transitions.write_text("\n".join(json.dumps(d) for d in [
        {"site": "b", "monotonic": 2.0, "wall": 0, "role": "leader", "old": "standby", "epoch": 5,
         "reason": "won"},
        {"site": "a", "monotonic": 1.0, "wall": 0, "role": "standby", "old": "starting",
         "epoch": None, "reason": "x"}]) + "\n")
    loaded = load_transitions(transitions)
    assert [r.site for r in loaded] == ["a", "b"] and loaded[1].epoch == 5
    samples = tmp_path / "s.jsonl"
    samples.write_text(sample(1.0, "a", 10, "a", 10).to_json() + "\n")
    assert load_samples(samples) == [sample(1.0, "a", 10, "a", 10)]
    assert load_transitions(tmp_path / "missing") == []
