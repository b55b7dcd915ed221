"""The profile comparison: does INT8 (or OpenVINO) save nodes, and at what accuracy cost?

Runs written by ``inferops bench --sweep --profiles`` carry ``model-profile.json``
(what was served, its size, the CPU's flags) and, for every profile but FP32,
``accuracy.json`` (``inferops model compare`` against FP32). Per profile this
module puts side by side: max QPS at the SLO, nodes for the target, cost per
month and per 1M requests, the accuracy delta and the model size, and writes
one verdict line against the FP32 run.

A profile whose accuracy drop exceeds ``max_accuracy_drop`` (thresholds.toml;
:func:`inferops.models.accuracy.check_accuracy`) is refused exactly as an
invalid run is: its sizing is replaced by the refusal, so no node count or cost
is shown for it anywhere in the report and the verdict never recommends it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inferops.models.accuracy import check_accuracy
from inferops.models.profileset import TITLES, read_record
from inferops.report.runs import Run
from inferops.thresholds import DEFAULTS, Setting

_METRIC_WORDS = {"top1": "top-1 agreement", "cosine": "cosine similarity"}


@dataclass
class ProfileRow:
    label: str
    profile: str
    title: str
    engine: str
    bytes: int | None
    size_ratio: float | None  # against the FP32 run's model
    max_qps: float | None  # measured, also for a refused profile (shown, never sized)
    speedup: float | None  # max QPS / FP32's
    nodes: int | None  # proposed (N+1); None when refused
    monthly_usd: float | None
    per_million_usd: float | None
    hardware: str | None
    metric: str | None  # "top-1 agreement" | "cosine similarity"
    agreement: float | None
    drop: float | None
    accuracy: str  # the rule's one line
    refused: str | None  # why it is not recommended (invalid run or accuracy)
    cpu_flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def delta(self) -> str:
        """``−0.4 %`` (of the agreement metric); ``reference`` for FP32."""
        if self.profile == "fp32":
            return "reference"
        return "—" if self.drop is None else signed_drop(self.drop)


@dataclass
class ProfileComparison:
    rows: list[ProfileRow]
    max_accuracy_drop: Setting
    cpu_model: str
    cpu_flags: list[str]
    vnni: bool | None
    verdict: str
    #: "saves" | "no-saving" | "slower" | "none" (no profile recommendable) | "no-baseline"
    verdict_kind: str
    notes: list[str] = field(default_factory=list)

    @property
    def cpu_text(self) -> str:
        flags = " ".join(self.cpu_flags) or "no AVX2/AVX-512/VNNI/AMX"
        return f"{self.cpu_model} ({flags})"


def signed_drop(drop: float) -> str:
    """An accuracy drop as the change people read: ``−0.4 %``, ``±0 %``."""
    pct = drop * 100
    if pct < 1e-6:  # float noise of an engine change (OpenVINO FP32), not a loss
        return "±0 %"
    return f"−{pct:.1f} %" if pct >= 0.1 else f"−{pct:.2g} %"


def compare_profiles(
    runs: list[Run], items: list, limits: dict, limits_source: str, target_qps: float
) -> ProfileComparison | None:
    """The comparison over the runs that carry ``model-profile.json`` (None when none does).

    Refuses (in ``items``' sizing too) every profile whose accuracy drop exceeds the bound.
    """
    bound = _bound(limits, limits_source)
    rows: list[ProfileRow] = []
    cpus = []
    for run, item in zip(runs, items, strict=True):
        record, accuracy = read_record(run.path)
        if record is None:
            continue
        cpus.append(record.get("cpu") or {})
        rows.append(_row(record, accuracy, item, bound.value))
    if not rows:
        return None
    base = next((r for r in rows if r.profile == "fp32"), None)
    for row in rows:
        if base is not None and base.bytes and row.bytes:
            row.size_ratio = row.bytes / base.bytes
        if base is not None and base.max_qps and row.max_qps:
            row.speedup = row.max_qps / base.max_qps
    cpu = cpus[0]
    notes = []
    if any(
        (c.get("model_name"), c.get("flags")) != (cpu.get("model_name"), cpu.get("flags"))
        for c in cpus
    ):
        notes.append("the profiles were measured on different CPUs: their figures do not compare")
    vnni = _vnni(cpu.get("flags") or [])
    kind, verdict = _verdict(rows, base, target_qps, cpu.get("flags") or [], vnni)
    return ProfileComparison(
        rows=rows,
        max_accuracy_drop=bound,
        cpu_model=str(cpu.get("model_name") or "unknown CPU"),
        cpu_flags=list(cpu.get("flags") or []),
        vnni=vnni,
        verdict=verdict,
        verdict_kind=kind,
        notes=notes,
    )


def _bound(limits: dict, limits_source: str) -> Setting:
    if "max_accuracy_drop" in limits:
        return Setting(limits["max_accuracy_drop"], f"max_accuracy_drop in {limits_source}")
    return Setting(
        DEFAULTS["max_accuracy_drop"], f"default (no max_accuracy_drop in {limits_source})"
    )


def _row(record: dict, accuracy: dict | None, item, bound: float) -> ProfileRow:
    name = record["profile"]
    refused = item.sizing.refused
    metric = agreement = drop = None
    if name == "fp32":
        rule = "the reference"
    else:
        verdict = check_accuracy(accuracy or {}, bound)
        rule, drop = verdict.reason, verdict.drop
        agreement_rec = (accuracy or {}).get("agreement") or {}
        metric = _METRIC_WORDS.get(agreement_rec.get("metric"), agreement_rec.get("metric"))
        agreement = agreement_rec.get("value")
        if not verdict.accepted and refused is None:
            refused = rule
            # refused exactly as an invalid run: no nodes, no cost, anywhere in the report
            # (type(): report.analysis calls this module, which must not import it back)
            item.sizing = type(item.sizing)(refused=refused)
    sizing = item.sizing
    cheapest = min(sizing.costs, key=lambda c: c.monthly_usd) if sizing.costs else None
    model = record.get("model") or {}
    return ProfileRow(
        label=item.label,
        profile=name,
        title=str(record.get("title") or TITLES.get(name, name)),
        engine=str(model.get("engine") or "—"),
        bytes=model.get("bytes"),
        size_ratio=None,
        max_qps=item.max_qps_at_slo,
        speedup=None,
        nodes=None if sizing.refused else sizing.proposed,
        monthly_usd=cheapest.monthly_usd if cheapest and not sizing.refused else None,
        per_million_usd=cheapest.per_million_usd if cheapest and not sizing.refused else None,
        hardware=cheapest.hardware if cheapest and not sizing.refused else None,
        metric=metric,
        agreement=agreement,
        drop=drop,
        accuracy=rule,
        refused=refused,
        cpu_flags=list((record.get("cpu") or {}).get("flags") or []),
        notes=list(record.get("notes") or []),
    )


def _vnni(flags: list[str]) -> bool | None:
    if not flags:
        return None
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def _verdict(rows, base, target_qps, flags, vnni) -> tuple[str, str]:
    """One line: which profile saves how many nodes, at what accuracy; or why none does."""
    refused = [r for r in rows if r.profile != "fp32" and r.refused]
    tail = ""
    if refused:
        # the accuracy reason in full; an invalid run's reasons are in the Sizing section
        tail = "; not recommended: " + "; ".join(
            f"{r.title} ({r.refused if r.refused == r.accuracy else 'no valid sizing'})"
            for r in refused
        )
    if base is None:
        return (
            "no-baseline",
            "No FP32 run among these folders: no baseline to judge profiles by" + tail,
        )
    if base.refused or not base.nodes:
        return "no-baseline", "FP32 could not be sized (see Sizing): no verdict" + tail
    candidates = [r for r in rows if r.profile != "fp32" and not r.refused and r.nodes]
    if not candidates:
        return "none", f"No profile can be recommended over FP32 ({base.nodes} nodes)" + tail
    best = min(candidates, key=lambda r: (r.nodes, -(r.max_qps or 0)))
    saved = base.nodes - best.nodes
    at = f"{best.delta} {best.metric}" if best.metric else best.delta
    if saved > 0:
        return "saves", f"{best.title} saves {saved} of {base.nodes} nodes at {at}" + tail
    int8 = [r for r in rows if r.profile.startswith("int8") and r.max_qps]
    if int8 and all(r.max_qps <= base.max_qps for r in int8):
        why = (
            "no VNNI"
            if vnni is False
            else (
                f"despite {', '.join(f for f in flags if 'vnni' in f or 'amx' in f)}"
                if vnni
                else "CPU flags unknown"
            )
        )
        return (
            "slower",
            f"INT8 is slower on this CPU ({why}): FP32 stays at {base.nodes} nodes" + tail,
        )
    faster = max(candidates, key=lambda r: r.max_qps or 0)
    return "no-saving", (
        f"{faster.title} reaches {faster.speedup or 0:.2f}x FP32's max QPS but saves no node at "
        f"{target_qps:g} req/s ({base.nodes} nodes either way)" + tail
    )
