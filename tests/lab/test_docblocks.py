"""Every generated block in the README and docs/ holds what its generator makes of the committed
results: the README and the docs cannot disagree with bench/results (or with each other)."""

from __future__ import annotations

import json

import pytest

from bench import cutover, damping_models, scale, wan_tables
from bench.docblocks import ROOT, block, replaced

RESULTS = ROOT / "bench" / "results"


def results(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


BLOCKS = {
    "README what clients see": (ROOT / "README.md", "cutover", lambda: cutover.table_lines(results("cutover.json"))),
    "README WAN summary": (ROOT / "README.md", "wan summary", lambda: wan_tables.summary_lines(results("wan.json"))),
    "docs/damping.md models": (damping_models.DOCS, "damping models",
                               lambda: damping_models.docs_lines(results("damping_models.json"))),
    "docs/scale.md table": (scale.DOCS, "scale table",
                            lambda: scale.docs_lines(results("scale.json")[scale.DOCS_LAYOUT])),
}


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_a_generated_block_is_what_its_generator_makes(name):
    path, block_name, lines = BLOCKS[name]
    assert block(path, block_name) == lines(), f"{path}: regenerate the {block_name} block"


def test_docs_wan_md_is_rendered_from_its_results(tmp_path):
    page, readme = tmp_path / "wan.md", tmp_path / "README.md"
    page.write_text((ROOT / "docs" / "wan.md").read_text())
    readme.write_text((ROOT / "README.md").read_text())
    wan_tables.render_docs(results("wan.json"), page, readme)
    assert page.read_text() == (ROOT / "docs" / "wan.md").read_text()


def test_a_missing_block_is_an_error_naming_where():
    with pytest.raises(ValueError, match="somewhere: no <!-- x --> ... <!-- /x --> block"):
        replaced("no block here\n", "x", ["y"], "somewhere")
