"""``nightly.toml``: what ``inferops nightly`` provisions, runs, stores and judges.

Every key is declared once below (name, type, default, check); the loader
refuses anything else with exit 2 naming the key, so a typo never silently
turns a check off. See ``nightly.example.toml`` and docs/nightly.md.
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferops.exitcodes import UsageError
from inferops.units import parse_duration

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Provision:
    enabled: bool = False
    inventory: str = "inventory.py"
    deploy: str = "deploys/inference_server.py"
    limit: str | None = None
    extra_args: list[str] = field(default_factory=list)
    timeout_s: float = 3600.0


@dataclass
class Scenario:
    name: str
    target: str
    model: str | None = None
    protocol: str = "v2"
    profile: str = "default"
    rate: float | None = None
    sweep: bool = False
    slo_p99_ms: float | None = None
    sweep_start: float | None = None
    sweep_max: float | None = None
    sweep_precision: float | None = None
    duration_s: float = 30.0
    warmup_s: float = 5.0
    seed: int | None = 1
    bench_args: list[str] = field(default_factory=list)
    timeout_s: float = 1800.0


@dataclass
class NightlyConfig:
    path: Path
    store: str | None = None
    out: str = "nightly-runs"
    report: str | None = None  # default: OUT/trend.html
    thresholds: str | None = None
    min_effect: float = 0.05
    p_value: float = 0.01
    min_history: int = 8
    changepoint_pvalue: float = 0.001
    rerun: bool = True
    provision: Provision = field(default_factory=Provision)
    scenarios: list[Scenario] = field(default_factory=list)

    @property
    def report_path(self) -> str:
        return self.report or str(Path(self.out) / "trend.html")


# key -> (converter, attribute). Converters raise UsageError via _bad().
def _str(where, key, v):
    if not isinstance(v, str) or not v.strip():
        _bad(where, key, "a non-empty string", v)
    return v


def _bool(where, key, v):
    if not isinstance(v, bool):
        _bad(where, key, "true or false", v)
    return v


def _positive(where, key, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        _bad(where, key, "a positive number", v)
    return float(v)


def _int(where, key, v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        _bad(where, key, "a non-negative integer", v)
    return v


def _fraction(where, key, v):
    from inferops.history.refs import parse_fraction

    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        _bad(where, key, 'a percentage like "5%" or 0.05', v)
    return parse_fraction(str(v), name=f"{where}{key}")


def _probability(where, key, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
        _bad(where, key, "a number between 0 and 1", v)
    return float(v)


def _duration(where, key, v):
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        _bad(where, key, "a duration like 30s, 2m or 1h30m", v)
    return parse_duration(v, name=f"{where}{key}")


def _strings(where, key, v):
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        _bad(where, key, "a list of strings", v)
    return list(v)


def _url(where, key, v):
    _str(where, key, v)
    if not v.startswith(("http://", "https://")):
        _bad(where, key, "an http:// or https:// URL", v)
    return v


def _protocol(where, key, v):
    if v not in ("v2", "predict"):
        _bad(where, key, '"v2" or "predict"', v)
    return v


def _name(where, key, v):
    _str(where, key, v)
    if not _NAME.match(v):
        _bad(where, key, "letters, digits, '.', '_' or '-'", v)
    return v


def _bad(where: str, key: str, expected: str, got: Any):
    raise UsageError(f"{where}{key}: expected {expected}, got {got!r}")


NIGHTLY_KEYS = {
    "store": _str,
    "out": _str,
    "report": _str,
    "thresholds": _str,
    "min_effect": _fraction,
    "p_value": _probability,
    "min_history": _int,
    "changepoint_pvalue": _probability,
    "rerun": _bool,
}
PROVISION_KEYS = {
    "enabled": _bool,
    "inventory": _str,
    "deploy": _str,
    "limit": _str,
    "extra_args": _strings,
    "timeout": _duration,
}
SCENARIO_KEYS = {
    "name": _name,
    "target": _url,
    "model": _str,
    "protocol": _protocol,
    "profile": _name,
    "rate": _positive,
    "sweep": _bool,
    "slo_p99_ms": _positive,
    "sweep_start": _positive,
    "sweep_max": _positive,
    "sweep_precision": _probability,
    "duration": _duration,
    "warmup": _duration,
    "seed": _int,
    "bench_args": _strings,
    "timeout": _duration,
}
_RENAMED = {"timeout": "timeout_s", "duration": "duration_s", "warmup": "warmup_s"}


def _apply(obj: Any, table: dict, keys: dict, where: str) -> None:
    for key, value in table.items():
        if key not in keys:
            close = difflib.get_close_matches(key, list(keys), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"{where}{key}: unknown key{hint}")
        setattr(obj, _RENAMED.get(key, key), keys[key](where, key, value))


def load(path: str | Path) -> NightlyConfig:
    """Read and validate ``path``; :class:`UsageError` naming the first bad key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    config = NightlyConfig(path=path)
    for key in data:
        if key not in ("nightly", "provision", "scenario"):
            close = difflib.get_close_matches(key, ["nightly", "provision", "scenario"], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"{path}: {key}: unknown section{hint}")
    nightly = data.get("nightly", {})
    if not isinstance(nightly, dict):
        raise UsageError(f"{path}: [nightly] must be a table")
    _apply(config, nightly, NIGHTLY_KEYS, f"{path}: nightly.")
    provision = data.get("provision", {})
    if not isinstance(provision, dict):
        raise UsageError(f"{path}: [provision] must be a table")
    _apply(config.provision, provision, PROVISION_KEYS, f"{path}: provision.")
    scenarios = data.get("scenario", [])
    if not isinstance(scenarios, list) or not scenarios:
        raise UsageError(f"{path}: scenario: at least one [[scenario]] table is needed")
    seen = set()
    for i, table in enumerate(scenarios):
        where = f"{path}: scenario[{i}]."
        if not isinstance(table, dict):
            raise UsageError(f"{where[:-1]}: must be a table")
        for required in ("name", "target"):
            if required not in table:
                raise UsageError(f"{where}{required}: missing (required)")
        scenario = Scenario(name=table["name"], target=table["target"])
        _apply(scenario, table, SCENARIO_KEYS, where)
        if scenario.name in seen:
            raise UsageError(f"{where}name: {scenario.name!r} is used twice")
        seen.add(scenario.name)
        if scenario.sweep == (scenario.rate is not None):
            raise UsageError(f"{where}rate: give either rate (fixed-rate run) or sweep = true")
        if scenario.sweep and scenario.slo_p99_ms is None:
            raise UsageError(f"{where}slo_p99_ms: needed with sweep = true")
        if scenario.protocol == "v2" and not scenario.model:
            raise UsageError(f"{where}model: needed with protocol v2")
        if any(a.startswith("--token") for a in scenario.bench_args):
            raise UsageError(f"{where}bench_args: no tokens in the config; set $INFEROPS_TOKEN")
        config.scenarios.append(scenario)
    return config
