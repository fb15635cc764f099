"""Durations as written in consulha configs: "500ms", "10s", "2m", "1h", "1.5s", "1m30s" or bare seconds."""

import math
import re

_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# "ms" comes before "m" so that "500ms" is never read as 500 minutes followed by a stray "s".
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+")
_BARE_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(text: str | int | float) -> float:
    """Return the duration in seconds; ints, floats and unit-less strings count as seconds.

    Raises ValueError naming the text when it is not a non-negative finite duration
    (booleans are refused so that a YAML `yes` never becomes one second).
    """
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"expected a duration such as 500ms, 10s, 2m or 1h, got {type(text).__name__}")
    if isinstance(text, str):
        compact = text.strip()
        if _BARE_SECONDS.fullmatch(compact):
            seconds = float(compact)
        elif _DURATION.fullmatch(compact):
            seconds = sum(float(number) * _SECONDS_PER_UNIT[unit] for number, unit in _PART.findall(compact))
        else:
            raise ValueError(f"invalid duration {text!r}: expected a number with unit ms, s, m or h, e.g. 500ms or 2m")
    else:
        seconds = float(text)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {text!r}: must be a finite number of seconds, not negative")
    return seconds


def format_duration(seconds: float) -> str:
    """Return the shortest unit spelling that parse_duration reads back, e.g. 0.5 -> "500ms", 300 -> "5m"."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{_plain_number(seconds / 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{_plain_number(seconds / 60)}m"
    if 0 < seconds < 1:
        return f"{_plain_number(seconds * 1000)}ms"
    return f"{_plain_number(seconds)}s"


def _plain_number(value: float) -> str:
    # Millisecond precision without exponent notation or float noise such as 100.00000000000001.
    return f"{value:.3f}".rstrip("0").rstrip(".")
