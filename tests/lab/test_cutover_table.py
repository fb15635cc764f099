"""bench/cutover.py's README table, generated from cutover.json (never copied by hand)."""

import pytest

from bench.cutover import CASE, render_readme, table_lines

REPORT = {"at": "2026-12-08T04:00:00Z", "machine": {"cpus": 2}, "cases": {
    "flushed-ttl30": {"authoritative": {"runs": 5, "median_s": 0.9, "p95_s": 1.2, "max_s": 1.3},
                      "client": {"runs": 5, "median_s": 1.1, "p95_s": 1.4, "max_s": 1.5}, "failures": []},
    "unflushed-ttl30": {"authoritative": {"runs": 4, "median_s": 0.95, "p95_s": 1.1, "max_s": 1.1},
                        "client": {"runs": 4, "median_s": 22.4, "p95_s": 29.0, "max_s": 29.0},
                        "failures": ["run 5: timed out"]},
}}


def test_one_row_per_case_with_both_figures_and_failed_runs():
    lines = table_lines(REPORT)
    assert lines[0].startswith("Recorded 2026-12-08T04:00:00Z (`bench/results/cutover.json`, 2 cores)")
    assert lines[4] == "| flushed-ttl30 | yes | 30 s | 5 | 0.90 / 1.20 / 1.30 s | 1.10 / 1.40 / 1.50 s |"
    assert lines[5] == "| unflushed-ttl30 | no | 30 s | 4 (1 failed) | 0.95 / 1.10 / 1.10 s | 22.40 / 29.00 / 29.00 s |"


def test_the_readme_block_is_replaced_and_a_missing_one_is_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- cutover -->\nold\n<!-- /cutover -->\nb\n")
    render_readme(REPORT, readme)
    text = readme.read_text()
    assert "old" not in text and "| flushed-ttl30 |" in text and text.endswith("<!-- /cutover -->\nb\n")
    readme.write_text("no block\n")
    with pytest.raises(ValueError, match="no <!-- cutover -->"):
        render_readme(REPORT, readme)


@pytest.mark.parametrize("case, ok", [("flushed-ttl30", True), ("unflushed-ttl5", True),
                                      ("flushed", False), ("ttl30", False)])
def test_case_names(case, ok):
    assert bool(CASE.fullmatch(case)) is ok
