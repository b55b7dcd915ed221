"""Command-line references to runs: a run folder, or ``#ID`` / ``ID`` of a stored run."""

from __future__ import annotations

import re
from pathlib import Path

from inferops.exitcodes import UsageError
from inferops.history.runsource import RunData, load_run

_ID = re.compile(r"^#?(\d+)$")


def stored_id(ref: str) -> int | None:
    """The store id ``ref`` names (``12`` or ``#12``), unless a folder of that name exists."""
    match = _ID.match(ref.strip())
    if match and not Path(ref).exists():
        return int(match.group(1))
    return None


def parse_fraction(text: str, *, name: str) -> float:
    """``5%``, ``5`` (percent when > 1) or ``0.05`` -> 0.05."""
    raw = str(text).strip()
    try:
        value = float(raw.rstrip("%").strip())
    except ValueError:
        raise UsageError(f"{name}: expected a percentage like 5% or 0.05, got {text!r}") from None
    if raw.endswith("%") or value > 1:
        value /= 100.0
    if not 0 < value <= 10:
        raise UsageError(f"{name}: must be above 0 and at most 1000 %, got {text!r}")
    return value


def load(ref: str, store_location: str | None) -> tuple[RunData, int | None]:
    """The run ``ref`` names, and its store id when it came from the store."""
    run_id = stored_id(ref)
    if run_id is None:
        return load_run(ref), None
    from inferops.history.store import open_store

    with open_store(store_location) as store:
        return store.run_data(run_id), run_id
