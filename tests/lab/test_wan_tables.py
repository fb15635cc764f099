"""bench/wan_tables.py: the README's WAN summary, generated from wan.json (never copied by hand)."""

from bench.docblocks import replaced as _replace_block
from bench.wan_tables import summary_lines


def row(median, p95, runs):
    return {"runs": runs, "of": runs, "median_s": median, "p95_s": p95, "max_s": p95}


REPORT = {"at": "2026-12-08T03:00:00Z", "profiles": {
    "lan": {"soak": {"seconds": 600, "systems": {"consulha": {"false_failovers": 0, "two_leaders": 0},
                                                "zookeeper": {"false_failovers": 1, "two_leaders": 2}}},
            "emulator_verdict": {"valid": True},
            "faults": {"check": {"consulha": row(0.61, 0.9, 10), "consulha-consul-only": row(1.5, 2.06, 10),
                                 "zookeeper": row(0.7, 0.75, 10) | {"two_leaders": 10}},
                       "handover": {"consulha": row(0.25, 0.82, 10), "zookeeper": {"skipped": "none"}}}},
    "regional": {"soak": None, "emulator_verdict": {"valid": False, "invalid_reasons": ["x"]},
                 "faults": {"check": {"consulha": row(1.08, 1.3, 10)}}},
}}


def test_every_system_in_the_legend_order_and_a_dash_where_it_has_no_figure():
    lines = summary_lines(REPORT)
    assert "c = consulha, c-co = consulha-consul-only, zk = zookeeper" in lines[0]
    header, _, lan, regional = lines[2:]
    assert "| check c/c-co/zk |" in header and "| handover c/c-co/zk |" in header
    assert lan.startswith("| lan | valid | 600 | 0/-/1 | 0/-/2 | ")
    assert "0.61 (p95 0.90, n=10) / 1.50 (p95 2.06, n=10) / 0.70 (p95 0.75, n=10, 10 with two leaders)" in lan
    assert "0.25 (p95 0.82, n=10) / - / -" in lan
    assert regional.startswith("| regional | INVALID | 0 | -/-/- |")
    assert "1.08 (p95 1.30, n=10) / - / -" in regional


def test_the_block_is_replaced_between_its_markers_only():
    text = "intro\n<!-- wan summary -->\nold\n<!-- /wan summary -->\noutro\n"
    assert _replace_block(text, "wan summary", ["new"]) == \
        "intro\n<!-- wan summary -->\nnew\n<!-- /wan summary -->\noutro\n"
