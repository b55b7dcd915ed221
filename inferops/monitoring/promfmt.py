"""Prometheus formats: durations, and Python twins of its Go template ``humanize`` functions.

The twins exist so the rendered ``promtool`` unit tests can state the exact
annotation text an alert must carry (promtool compares annotations verbatim).
They follow ``prometheus/template/template.go``.
"""

from __future__ import annotations

import math

from inferops.exitcodes import UsageError
from inferops.units import parse_duration


def prom_duration(seconds: float) -> str:
    """``300`` -> ``5m``, ``90`` -> ``1m30s``, ``0.5`` -> ``500ms``, ``0`` -> ``0s``."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    if ms:
        parts.append(f"{ms}ms")
    return "".join(parts)


def duration_knob(value: str, *, name: str, minimum: float = 0.0) -> str:
    """A user's duration (``30s``, ``2m``, ``1h30m``, ``90``) as a Prometheus duration."""
    seconds = parse_duration(value, name=name)
    if seconds < minimum:
        raise UsageError(f"{name}: must be at least {prom_duration(minimum)}, got {value!r}")
    return prom_duration(seconds)


def seconds(prom: str) -> float:
    """A Prometheus duration this module wrote, back to seconds."""
    return parse_duration(prom)


def _g4(value: float) -> str:
    return f"{value:.4g}"


def humanize(value: float) -> str:
    """Go ``humanize``: SI prefixes, 4 significant digits."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return _g4(value)
    prefix = ""
    if abs(value) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(value) < 1000:
                break
            prefix, value = p, value / 1000
        return f"{_g4(value)}{prefix}"
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return f"{_g4(value)}{prefix}"


def humanize_duration(value: float) -> str:
    """Go ``humanizeDuration``: seconds as ``1m 5s``, ``2.5s``, ``250ms``."""
    if math.isnan(value) or math.isinf(value):
        return _g4(value)
    if value == 0:
        return f"{_g4(value)}s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        value = abs(value)
        whole = int(value)
        secs, mins = whole % 60, (whole // 60) % 60
        hours, days = (whole // 3600) % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {mins}m {secs}s"
        if hours:
            return f"{sign}{hours}h {mins}m {secs}s"
        if mins:
            return f"{sign}{mins}m {secs}s"
        return f"{sign}{_g4(value)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return f"{_g4(value)}{prefix}s"


def humanize_percentage(value: float) -> str:
    """Go ``humanizePercentage``: a ratio as ``12.5%``."""
    return f"{_g4(value * 100)}%"


#: template function name -> its Python twin
FORMATTERS = {
    "humanize": humanize,
    "humanizeDuration": humanize_duration,
    "humanizePercentage": humanize_percentage,
}
