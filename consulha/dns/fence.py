"""The fence: each zone with managed records has the TXT `_consulha.<its alphabetically first
name>` holding `"epoch=<n> site=<name>"` of the leader that wrote the zone last."""

from __future__ import annotations

import re

EPOCH_PATTERN = re.compile(r"\bepoch=(\d+)\b")
SITE_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")


def parse_epoch(fence_txt: tuple[str, ...]) -> int | None:
    """The epoch written in the fence TXT rdata, or None. If several rdata
    carry one, the highest wins: fencing must err towards "stale"."""
    epochs = [int(m.group(1)) for txt in fence_txt for m in EPOCH_PATTERN.finditer(txt)]
    return max(epochs, default=None)


def fence_text(epoch: int, site: str) -> str:
    """The fence TXT's content (without the quotes of its presentation form)."""
    return f"epoch={epoch} site={site}"


def check_site_name(site: str) -> None:
    """Raises ValueError for a site name that cannot go into the fence TXT."""
    if not SITE_PATTERN.match(site):
        raise ValueError(f"site name {site!r} must match {SITE_PATTERN.pattern}")
