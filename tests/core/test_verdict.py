"""Consul's counting of check results (consulha.core.verdict), row by row; the same rules held
against a real Consul in tests/agent/test_verdict_vs_consul.py."""

from __future__ import annotations

import pytest

from consulha.core.verdict import CheckVerdict, http_status

P, W, C = "passing", "warning", "critical"


@pytest.mark.parametrize("code,status", [
    (200, P), (201, P), (204, P), (299, P), (429, W), (300, C), (302, C), (304, C), (400, C), (404, C),
    (428, C), (430, C), (500, C), (503, C), (199, C)])
def test_an_answer_is_judged_by_its_code(code, status):
    assert http_status(code) == status


ROWS = [
    # (name, failures_before_critical, success_before_passing, start, results, reported after each)
    ("no debounce follows every result", 1, 1, "registered", [P, C, W, P, C], [P, C, W, P, C]),
    ("just registered: the first result counts at once", 3, 3, "registered", [C], [C]),
    ("just registered: a first pass counts at once too", 3, 3, "registered", [P], [P]),
    ("leading: two failures in a row before critical", 2, 1, "passing", [C, C], [P, C]),
    ("a warning restarts the failure count", 2, 1, "passing", [C, W, C, C], [P, W, W, C]),
    ("a warning counts towards passing after critical", 1, 2, "critical", [W, P], [C, P]),
    ("a warning is reported as warning once it rises", 1, 2, "critical", [P, W], [C, W]),
    ("a failure restarts the success count", 1, 2, "critical", [P, C, P, P], [C, C, C, P]),
    ("standing by: critical until enough passes", 2, 3, "critical", [P, P, P], [C, C, P]),
]


@pytest.mark.parametrize("fall,rise,start,results,reported", [row[1:] for row in ROWS],
                         ids=[row[0] for row in ROWS])
def test_consul_counts_results_so(fall, rise, start, results, reported):
    verdict = (CheckVerdict(fall, rise) if start == "registered"
               else CheckVerdict(fall, rise, reported=start, registered=False))
    assert [verdict.observe(r) for r in results] == reported


def test_thresholds_below_one_are_refused():
    with pytest.raises(ValueError):
        CheckVerdict(0, 1)
