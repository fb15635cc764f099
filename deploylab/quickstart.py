"""The README's quick-start commands, read from the README itself: what `make fresh-test` runs
is what a reader is told to type, so an edit of the README cannot drift from what is tested."""

from __future__ import annotations

HEADING = "## Quick start"
FENCE = "```"


def quick_start_commands(readme: str) -> list[str]:
    """The lines of the first fenced block under the quick-start heading, in order, each as
    written (a trailing `# comment` stays: the shell ignores it); blank and comment-only lines
    are skipped. ValueError naming the README line when there is no such block or it is empty."""
    lines = readme.splitlines()
    try:
        start = next(n for n, line in enumerate(lines) if line.strip() == HEADING)
    except StopIteration:
        raise ValueError(f"README.md: no '{HEADING}' heading") from None
    commands: list[str] = []
    in_block = False
    for number, line in enumerate(lines[start + 1:], start + 2):
        stripped = line.strip()
        if not in_block and stripped.startswith("## "):
            break
        if stripped.startswith(FENCE):
            if in_block:
                if not commands:
                    raise ValueError(f"README.md:{number}: the quick-start block has no command")
                return commands
            in_block = True
        elif in_block and stripped and not stripped.startswith("#"):
            commands.append(stripped)
    raise ValueError(f"README.md:{start + 1}: no closed code block under '{HEADING}'")
