"""Generated blocks in the docs: `<!-- NAME -->` ... `<!-- /NAME -->`, rewritten from a
benchmark's results so that the README and docs/ cannot disagree with bench/results."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def replaced(text: str, name: str, lines: list[str], where: str = "the text") -> str:
    """`text` with block `name` holding `lines`; ValueError naming `where` when it has none."""
    pattern = re.compile(rf"(<!-- {re.escape(name)} -->\n).*?(<!-- /{re.escape(name)} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"{where}: no <!-- {name} --> ... <!-- /{name} --> block")
    return pattern.sub(lambda m: m.group(1) + "\n".join(lines) + "\n" + m.group(2), text)


def render(path: Path, name: str, lines: list[str]) -> None:
    path.write_text(replaced(path.read_text(), name, lines, str(path)))


def block(path: Path, name: str) -> list[str]:
    """The lines block `name` of `path` holds now."""
    text = path.read_text()
    start, end = f"<!-- {name} -->\n", f"<!-- /{name} -->"
    return text[text.index(start) + len(start):text.index(end)].rstrip("\n").split("\n")
