"""Hooks that only count: every on_promote / on_demote call appends one line to a file, so a
test or a benchmark can say how often the operator's hooks would have run."""

from __future__ import annotations

import shlex
from pathlib import Path


def recording_hooks(path: Path) -> dict[str, str]:
    """The `hooks:` section whose calls append `promote <epoch>` / `demote <epoch>` to `path`."""
    target = shlex.quote(str(path))
    return {event: f'echo "{name} $CONSULHA_EPOCH" >> {target}'
            for event, name in (("on_promote", "promote"), ("on_demote", "demote"))}


def hook_calls(path: Path) -> list[tuple[str, str]]:
    """(event, epoch) of every recorded call, in order."""
    if not path.exists():
        return []
    return [tuple(line.split(" ", 1)) if " " in line else (line, "")
            for line in path.read_text().splitlines() if line.strip()]
