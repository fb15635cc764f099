"""Many groups on one host: a directory of group configs (`*.yaml`), one file per group.

Each file is one group's config exactly as for a single agent. Loading a directory keeps the
files apart: a broken file is reported as FILE:LINE: key: message and the other groups still
load; two files claiming the same group, or key prefixes of which one contains the other (their
locks, candidate keys and history would mix), are refused with both file names, and neither of
them runs (nothing can tell which one is meant).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from consulha.config import Config, ConfigError, load_config


@dataclass(frozen=True)
class GroupConfigs:
    configs: tuple[Config, ...]   # the groups that may run, sorted by file name
    errors: tuple[str, ...]       # one line per file that may not: FILE[:LINE]: key: message


def config_files(path: str | os.PathLike) -> list[Path]:
    """The group config files under `path`: the file itself, or a directory's `*.yaml`."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.glob("*.yaml") if p.is_file())
    return [path]


def load_groups(path: str | os.PathLike) -> GroupConfigs:
    """Every group config under `path` (a file or a directory), with the reason for each one
    that cannot run. A directory without any `*.yaml` is one error."""
    files = config_files(path)
    if not files:
        return GroupConfigs((), (f"{os.fspath(path)}: no *.yaml group configs in this directory",))
    configs: list[Config] = []
    errors: list[str] = []
    for file in files:
        try:
            configs.append(load_config(file))
        except ConfigError as error:
            errors.append(str(error))
    clashing = set()
    for index, first in enumerate(configs):
        for second in configs[index + 1:]:
            problem = clash(first, second)
            if problem:
                errors.append(f"{first.path} and {second.path}: {problem}; neither group runs")
                clashing.update((first.path, second.path))
    return GroupConfigs(tuple(c for c in configs if c.path not in clashing), tuple(errors))


def clash(first: Config, second: Config) -> str | None:
    """Why two group configs cannot run side by side, or None."""
    if first.group == second.group:
        return f"both claim group {first.group!r}"
    a, b = f"{first.key_prefix}/", f"{second.key_prefix}/"
    if a.startswith(b) or b.startswith(a):
        return f"key prefixes {first.key_prefix!r} and {second.key_prefix!r} overlap"
    return None
