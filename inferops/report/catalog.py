"""Read and validate ``hardware.toml``: the price and power catalogue used for cost.

Format (every key required unless marked optional)::

    [[hardware]]
    name = "gcp-g2-standard-8-l4"     # unique
    cpu = "8 vCPU"
    gpu = "1x NVIDIA L4"             # "" for CPU-only
    hourly_usd = 0.85                # price per node-hour
    power_w = 200                    # node power draw for the energy estimate
    profiles = ["l4", "l4-*"]        # run profiles it serves (shell globs)
    note = "example price"           # optional

Unknown keys, wrong types and duplicate names are errors (exit 2) naming the
entry and the key, so a typo never silently drops a price.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from pathlib import Path

from inferops.exitcodes import UsageError
from inferops.tomlfile import read_toml

DEFAULT_PATH = Path(__file__).resolve().parent.parent.parent / "hardware.toml"


@dataclass(frozen=True)
class Hardware:
    name: str
    cpu: str
    gpu: str
    hourly_usd: float
    power_w: float
    profiles: tuple[str, ...]
    note: str = ""

    def serves(self, profile: str) -> bool:
        return any(fnmatch.fnmatchcase(profile, pattern) for pattern in self.profiles)


_REQUIRED = {
    "name": str,
    "cpu": str,
    "gpu": str,
    "hourly_usd": float,
    "power_w": float,
    "profiles": list,
}
_OPTIONAL = {"note": str}


def _entry(raw: object, index: int, source: str) -> Hardware:
    where = f"{source}: hardware[{index}]"
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: expected a table ([[hardware]])")
    if isinstance(raw.get("name"), str) and raw["name"]:
        where = f"{source}: hardware entry {raw['name']!r}"
    for key in raw:
        if key not in _REQUIRED and key not in _OPTIONAL:
            known = ", ".join([*_REQUIRED, *_OPTIONAL])
            raise UsageError(f"{where}: unknown key {key!r} (known keys: {known})")
    for key in _REQUIRED:
        if key not in raw:
            raise UsageError(f"{where}: missing key {key!r}")
    values = {}
    for key, kind in {**_REQUIRED, **_OPTIONAL}.items():
        if key not in raw:
            continue
        value = raw[key]
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UsageError(f"{where}: {key} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise UsageError(f"{where}: {key} must be a finite number >= 0, got {value!r}")
            value = float(value)
        elif kind is list:
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(p, str) and p for p in value)
            ):
                raise UsageError(
                    f"{where}: {key} must be a non-empty list of profile names, got {value!r}"
                )
            value = tuple(value)
        elif not isinstance(value, str):
            raise UsageError(f"{where}: {key} must be a string, got {value!r}")
        values[key] = value
    if not values["name"]:
        raise UsageError(f"{where}: name must not be empty")
    return Hardware(**values)


def validate(data: dict, *, source: str = "hardware.toml") -> list[Hardware]:
    """Return the catalogue's entries or raise UsageError naming the bad entry and key."""
    for key in data:
        if key != "hardware":
            raise UsageError(f"{source}: unknown top-level key {key!r} (expected [[hardware]])")
    raw_entries = data.get("hardware", [])
    if not isinstance(raw_entries, list):
        raise UsageError(f"{source}: 'hardware' must be an array of tables ([[hardware]])")
    entries = [_entry(raw, i, source) for i, raw in enumerate(raw_entries)]
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise UsageError(f"{source}: duplicate hardware entry name {entry.name!r}")
        seen.add(entry.name)
    return entries


def load(path: str | Path | None = None) -> list[Hardware]:
    """Read ``hardware.toml`` (default: the one at the repository root)."""
    path = Path(path) if path is not None else DEFAULT_PATH
    return validate(read_toml(path, "hardware catalogue"), source=str(path))


def for_profile(entries: list[Hardware], profile: str) -> list[Hardware]:
    """Entries whose ``profiles`` patterns match ``profile``, in file order."""
    return [e for e in entries if e.serves(profile)]
