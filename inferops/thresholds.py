"""Load and validate ``thresholds.toml``: the only reader of that file.

The same limits feed the Locust gate, the ``inferops bench`` exit code and the
Prometheus alert rules, so a typo must fail loudly (exit 2) rather than
silently switch a gate off.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from inferops.exitcodes import UsageError
from inferops.tomlfile import read_toml


@dataclass(frozen=True)
class Key:
    name: str
    #: "max": value must be <= limit; "min": value must be >= limit
    kind: str
    lo: float
    hi: float
    help: str
    #: "load": checked on every load run (bench, the Locust gate, alerts); "model": judged
    #: by the sizing report on a profile's accuracy record, never by a load run
    scope: str = "load"


KEYS: dict[str, Key] = {
    k.name: k
    for k in [
        Key("p99_latency_ms", "max", 0, math.inf, "P99 latency (CO-corrected), ms"),
        Key("min_qps", "min", 0, math.inf, "achieved throughput, req/s"),
        Key("max_error_rate", "max", 0, 1, "fraction of failed requests"),
        Key("min_success_rate", "min", 0, 1, "fraction of successful requests"),
        Key("max_cpu_percent", "max", 0, 100, "peak host CPU, %"),
        Key("max_memory_percent", "max", 0, 100, "peak host memory, %"),
        Key("max_gpu_util_percent", "max", 0, 100, "peak GPU utilisation, %"),
        Key("max_gpu_memory_percent", "max", 0, 100, "peak GPU memory, %"),
        Key("max_gpu_power_watts", "max", 0, math.inf, "peak GPU power, W"),
        Key("max_gpu_temp_celsius", "max", 0, 150, "peak GPU temperature, C"),
        # LLM streaming runs (protocol openai); not observed for other protocols
        Key("p99_ttft_ms", "max", 0, math.inf, "P99 time to first token (CO-corrected), ms"),
        Key("p99_tpot_ms", "max", 0, math.inf, "P99 time per output token, ms"),
        Key("min_output_tokens_per_s", "min", 0, math.inf, "output tokens per second"),
        Key("min_goodput_qps", "min", 0, math.inf, "requests/s meeting every SLO"),
        # optimisation profiles (inferops model compare): 1 - agreement with the FP32
        # reference, where agreement is top-1 agreement for a classifier, else the mean
        # cosine similarity of the outputs (inferops.models.accuracy)
        Key(
            "max_accuracy_drop",
            "max",
            0,
            1,
            "accuracy drop of a profile against FP32 (fraction of the agreement metric)",
            scope="model",
        ),
    ]
}

#: The seeds' alert table; used when no file is given.
DEFAULTS: dict[str, float] = {
    "p99_latency_ms": 500,
    "min_qps": 100,
    "max_error_rate": 0.01,
    "min_success_rate": 0.99,
    "max_cpu_percent": 85,
    "max_memory_percent": 85,
    "max_accuracy_drop": 0.01,
}

#: Streamed LLM runs: a request's latency and rate depend on its output length,
#: so the seeds' P99 and req/s rows do not apply; bound TTFT/TPOT in a file.
LLM_DEFAULTS: dict[str, float] = {
    k: v for k, v in DEFAULTS.items() if k not in ("p99_latency_ms", "min_qps")
}

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "thresholds.toml"


def validate(data: dict, *, source: str = "thresholds") -> dict[str, float]:
    """Return a clean ``{key: float}`` or raise UsageError naming the bad key."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: expected a table of thresholds")
    clean: dict[str, float] = {}
    for name, value in data.items():
        key = KEYS.get(name)
        if key is None:
            known = ", ".join(KEYS)
            raise UsageError(f"{source}: unknown key {name!r} (known keys: {known})")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{source}: {name} must be a number, got {value!r}")
        value = float(value)
        if (
            math.isnan(value)
            or not (key.lo <= value <= key.hi)
            or (name in ("p99_latency_ms", "p99_ttft_ms", "p99_tpot_ms") and value <= 0)
        ):
            raise UsageError(
                f"{source}: {name} = {value:g} is out of range [{key.lo:g}, {key.hi:g}]"
            )
        clean[name] = value
    return clean


def load(path: str | Path | None = None, *, llm: bool = False) -> dict[str, float]:
    """Read and validate a thresholds file; ``None`` gives the seeds' defaults
    (``llm``: :data:`LLM_DEFAULTS`, for streamed LLM runs).

    A file is read once per process (per path and modification time): the
    Locust shape, the session and the gate all ask for it.
    """
    if path is None:
        return dict(LLM_DEFAULTS if llm else DEFAULTS)
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        stat = None  # read_toml says why, in one line
    if stat is None or path.is_dir():
        return validate(read_toml(path, "thresholds file"), source=str(path))
    return dict(_load_file(str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=16)
def _load_file(path: str, _mtime_ns: int, _size: int) -> dict[str, float]:
    return validate(read_toml(path, "thresholds file"), source=path)


#: the one "not set" value for an optional bound or option (never 0.0 or "")
UNSET = None


@dataclass(frozen=True)
class Setting:
    """A value in force and where it came from (shown to the user)."""

    value: float | None
    source: str

    @property
    def is_set(self) -> bool:
        return self.value is not UNSET


def resolve_bound(
    option: float | None,
    limits: dict[str, float],
    *,
    option_name: str = "--slo-p99-ms",
    recorded: float | None = None,
    recorded_source: str = "the sweep's slo.p99_ms",
    limits_source: str = "thresholds",
) -> Setting:
    """The P99 bound in force: the option, else one recorded by a sweep, else the thresholds.

    ``Setting(UNSET, "not set")`` when none of them gives one.
    """
    if option is not UNSET:
        return Setting(float(option), option_name)
    if recorded is not UNSET:
        return Setting(float(recorded), recorded_source)
    if "p99_latency_ms" in limits:
        return Setting(limits["p99_latency_ms"], f"{limits_source} p99_latency_ms")
    return Setting(UNSET, "not set")


@dataclass(frozen=True)
class Slo:
    """What a load step must meet: P99 at most ``p99_ms``, errors at most ``max_error_rate``."""

    p99_ms: float
    max_error_rate: float | None = None


class StepResult(Protocol):
    valid: bool
    p99_ms: float | None
    error_rate: float | None


def meets_slo(step: StepResult, slo: Slo, *, p99_proven: bool = True) -> bool:
    """Does a measured step meet the SLO? The one rule, for the sweep and the report.

    It must be valid, have a P99 at or under the bound (proven by early
    stopping when the caller knows the verdict), and an error rate within the
    limit (an unknown error rate does not pass a limit).
    """
    if not step.valid or not p99_proven or step.p99_ms is None or step.p99_ms > slo.p99_ms:
        return False
    if slo.max_error_rate is None:
        return True
    return step.error_rate is not None and step.error_rate <= slo.max_error_rate


def check(limits: dict[str, float], observed: dict[str, float | None]) -> list[dict]:
    """Compare observed values with limits.

    Returns ``[{"name", "limit", "value", "ok"}]`` in ``KEYS`` order. A limit
    whose value was not observed (e.g. GPU keys on a CPU host) is reported with
    ``value: None`` and ``ok: None`` — not checked, and not a pass. Model keys
    (``max_accuracy_drop``) are not a load run's to check: the report judges them.
    """
    results = []
    for name, key in KEYS.items():
        if name not in limits or key.scope != "load":
            continue
        limit, value = limits[name], observed.get(name)
        if value is None:
            ok = None
        elif KEYS[name].kind == "max":
            ok = value <= limit
        else:
            ok = value >= limit
        results.append({"name": name, "limit": limit, "value": value, "ok": ok})
    return results
