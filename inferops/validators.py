"""Argument validators shared by every subcommand (``type=`` for argparse and Locust's parser).

Each validator takes the text the user typed and returns the parsed value, or
raises :class:`argparse.ArgumentTypeError` with one line saying what was
expected; argparse turns that into ``inferops CMD: error: argument --flag: ...``
and exit 2. Numbers must be finite: ``inf``, ``nan`` and ``1e999`` are
rejected everywhere, so no flag can switch a bound or a loop off by accident.
Code that checks a value after parsing (a config file, a request) calls
:func:`check`, which raises :class:`~inferops.exitcodes.UsageError` instead.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable
from typing import TypeVar

from inferops.exitcodes import UsageError

T = TypeVar("T")


def _float(text: str | float, expected: str) -> float:
    if isinstance(text, bool):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number ({expected}), got {text!r}")
    return value


def _int(text: str | int, expected: str) -> int:
    if isinstance(text, bool):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    try:
        return int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def number(text: str | float) -> float:
    """Any finite number."""
    return _float(text, "a number")


def positive(text: str | float) -> float:
    """A finite number > 0."""
    value = _float(text, "a positive number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative(text: str | float) -> float:
    """A finite number >= 0."""
    value = _float(text, "a number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def fraction(text: str | float) -> float:
    """A share in [0, 1) (headroom: 1 would leave nothing to use)."""
    value = _float(text, "a number in [0, 1)")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def open_fraction(text: str | float) -> float:
    """A share strictly between 0 and 1 (a precision)."""
    value = _float(text, "a number between 0 and 1")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def number_range(lo: float, hi: float, *, unit: str = "") -> Callable[[str], float]:
    """A finite number in ``[lo, hi]``."""
    span = f"{lo:g}-{hi:g}{' ' + unit if unit else ''}"

    def parse(text: str | float) -> float:
        value = _float(text, f"a number in {span}")
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be {span}, got {text}")
        return value

    parse.__name__ = f"number_{lo:g}_{hi:g}"
    return parse


def int_range(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An integer in ``[lo, hi]`` (``hi`` None: no upper bound)."""
    expected = f"an integer >= {lo}" if hi is None else f"an integer {lo}-{hi}"

    def parse(text: str | int) -> int:
        value = _int(text, expected)
        if value < lo or (hi is not None and value > hi):
            bound = f">= {lo}" if hi is None else f"{lo}-{hi}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    parse.__name__ = f"int_{lo}_{hi}"
    return parse


#: an integer >= 1 (counts: users, steps, workers, batch sizes)
positive_int = int_range(1)
#: a TCP port; 0 asks the OS for a free one
port = int_range(0, 65535)


def duration_or_zero(text: str | float) -> float:
    """Seconds from ``30``, ``30s``, ``2m``, ``1h30m``, ``250ms`` (Locust's forms); >= 0."""
    from inferops.units import parse_duration

    try:
        seconds = parse_duration(text, name="duration")
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("duration: ")) from None
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"must be a finite duration, got {text!r}")
    return seconds


def duration(text: str | float) -> float:
    """Like :func:`duration_or_zero`, but the duration must be > 0."""
    seconds = duration_or_zero(text)
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be a duration > 0, got {text!r}")
    return seconds


_SIZE = re.compile(r"^(\d+)\s*([kmg]i?b?|b)?$", re.IGNORECASE)


def size_bytes(text: str) -> int:
    """``1048576``, ``512k``, ``64M``, ``1GiB`` -> bytes (powers of 1024); at least 1."""
    match = _SIZE.match(str(text).strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected a size like 1048576, 512k or 64M, got {text!r}")
    count, unit = int(match.group(1)), (match.group(2) or "b").lower()[:1]
    value = count * {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1 byte")
    return value


def http_url(text: str) -> str:
    """An ``http://`` or ``https://`` URL with a host and a valid port; no trailing slash."""
    from urllib.parse import urlsplit

    text = str(text)
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
        raise argparse.ArgumentTypeError(
            f"a URL cannot contain spaces or control characters: {text!r}"
        )
    try:
        parts = urlsplit(text)
        port = parts.port  # raises for a port that is not a number in 0-65535
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a valid URL ({exc}): {text!r}") from None
    if parts.scheme not in ("http", "https"):
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {text!r}")
    if not parts.hostname:
        raise argparse.ArgumentTypeError(f"the URL has no host: {text!r}")
    if port == 0:
        raise argparse.ArgumentTypeError(f"port 0 is not a port to connect to: {text!r}")
    return text.rstrip("/")


def check(value: object, validator: Callable[[object], T], name: str) -> T:
    """Apply ``validator`` outside argparse: a bad value raises UsageError naming ``name``."""
    try:
        return validator(value)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(flag_message(name, str(exc))) from None


def flag_message(name: str, problem: str) -> str:
    """``--rate must be > 0, got -5`` / ``--rate: expected a number, got 'x'``: one line."""
    return f"{name} {problem}" if problem.startswith("must") else f"{name}: {problem}"


#: what an on/off environment switch (``INFEROPS_ALLOW_*``) accepts as "on"
ENV_SWITCH_ON = ("1", "true", "yes")


def env_switch(name: str, env=None) -> bool:
    """Whether the environment variable ``name`` turns a switch on (``1``, ``true``, ``yes``)."""
    return (os.environ if env is None else env).get(name, "") in ENV_SWITCH_ON
