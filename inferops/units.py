"""Parsing of the units users type: durations the way Locust writes them."""

from __future__ import annotations

import re

from inferops.exitcodes import UsageError

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str | int | float, *, name: str = "duration") -> float:
    """Return seconds for ``30``, ``30s``, ``2m``, ``1h30m``, ``250ms`` or ``1.5``.

    Raises :class:`UsageError` naming ``name`` for anything else, including
    negative values.
    """
    if isinstance(value, bool):
        raise UsageError(f"{name}: expected a duration like 30s, 2m or 1h30m, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for match in _PART.finditer(text):
                if match.start() != pos:
                    break
                number, unit = float(match.group(1)), match.group(2)
                seconds += number * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
                pos = match.end()
            if pos != len(text) or not text:
                raise UsageError(
                    f"{name}: expected a duration like 30s, 2m or 1h30m, got {value!r}"
                ) from None
    if not 0 <= seconds < float("inf"):  # negative, NaN or infinite
        raise UsageError(f"{name}: must be a finite, non-negative duration, got {value!r}")
    return seconds
