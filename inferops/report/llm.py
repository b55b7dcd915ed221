"""The LLM facts of a run recorded with ``--protocol openai``: the curve and token sizing.

LLM serving is sized on tokens, not requests: a node's capacity is the output
tokens per second it sustains at the TTFT/TPOT SLOs (the sweep's knee), and the
target in requests per second becomes a token rate through the tokens per
request measured at the knee. The step verdicts are the recorded ones, never
re-judged here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inferops.report import sizing
from inferops.report.catalog import Hardware, for_profile


@dataclass
class LlmPoint:
    """One sweep step (or the run itself) on the TTFT/TPOT/tokens curves."""

    offered_qps: float | None
    achieved_qps: float | None
    p99_ttft_ms: float | None
    p99_tpot_ms: float | None
    output_tokens_per_s: float | None
    valid: bool
    ok: bool


@dataclass
class LlmCostRow:
    hardware: str
    nodes: int
    monthly_usd: float
    per_million_output_tokens_usd: float


@dataclass
class LlmFacts:
    """What the report's LLM section says about one run (``refused``: why it is not sized)."""

    slo_ttft_ms: float | None
    slo_tpot_ms: float | None
    points: list[LlmPoint]
    token_count_source: str | None
    refused: str | None = None
    knee_qps: float | None = None
    tokens_per_s_at_knee: float | None = None
    tokens_per_request: float | None = None
    target_tokens_per_s: float | None = None
    nodes: int | None = None
    proposed: int | None = None
    costs: list[LlmCostRow] = field(default_factory=list)
    svg: str | None = None  # drawn by render


def _float(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _points(run) -> list[LlmPoint]:
    s = run.summary
    if run.slo and run.slo.steps:
        return [
            LlmPoint(
                offered_qps=_float(st.offered_qps),
                achieved_qps=_float(st.achieved_qps),
                p99_ttft_ms=_float(st.p99_ttft_ms),
                p99_tpot_ms=_float(st.p99_tpot_ms),
                output_tokens_per_s=_float(st.output_tokens_per_s),
                valid=bool(st.valid),
                ok=bool(st.ok),
            )
            for st in run.slo.steps
        ]
    llm = s.llm or {}
    return [
        LlmPoint(
            offered_qps=_float(s.offered_qps),
            achieved_qps=_float(s.achieved_qps),
            p99_ttft_ms=_float((llm.get("ttft_ms") or {}).get("p99")),
            p99_tpot_ms=_float((llm.get("tpot_ms") or {}).get("p99")),
            output_tokens_per_s=_float(llm.get("output_tokens_per_s")),
            valid=run.valid,
            ok=False,  # judged below against the thresholds' bounds
        )
    ]


def _within(value: float | None, bound: float | None) -> bool:
    return bound is None or (value is not None and value <= bound)


def llm_facts(
    run,
    *,
    limits: dict,
    target_qps: float,
    headroom: float,
    catalog: list[Hardware],
) -> LlmFacts | None:
    """The LLM facts of ``run``, or None when it was not an ``openai`` run."""
    s = run.summary
    if not s.llm:
        return None
    sweep = bool(run.slo and run.slo.steps)
    if sweep:
        slo_ttft, slo_tpot = _float(run.slo.ttft_ms), _float(run.slo.tpot_ms)
    else:
        slo_ttft, slo_tpot = _float(limits.get("p99_ttft_ms")), _float(limits.get("p99_tpot_ms"))
    points = _points(run)
    if not sweep:
        only = points[0]
        only.ok = (
            only.valid
            and (slo_ttft is not None or slo_tpot is not None)
            and _within(only.p99_ttft_ms, slo_ttft)
            and _within(only.p99_tpot_ms, slo_tpot)
        )
    facts = LlmFacts(
        slo_ttft_ms=slo_ttft,
        slo_tpot_ms=slo_tpot,
        points=points,
        token_count_source=s.llm.get("token_count_source"),
    )
    if not run.valid:
        facts.refused = "the run is invalid: " + ("; ".join(s.validity) or "marked invalid")
        return facts
    if slo_ttft is None and slo_tpot is None:
        facts.refused = "no TTFT/TPOT SLO (sweep with --slo-ttft-ms/--slo-tpot-ms, or set p99_ttft_ms/p99_tpot_ms)"
        return facts
    good = [
        p for p in points if p.ok and p.achieved_qps and p.output_tokens_per_s
    ]  # recorded verdicts
    if not good:
        facts.refused = "no valid step met the TTFT/TPOT SLOs"
        return facts
    knee = max(good, key=lambda p: p.achieved_qps)
    facts.knee_qps = knee.achieved_qps
    facts.tokens_per_s_at_knee = knee.output_tokens_per_s
    facts.tokens_per_request = knee.output_tokens_per_s / knee.achieved_qps
    facts.target_tokens_per_s = target_qps * facts.tokens_per_request
    facts.nodes = sizing.nodes_for_target(
        facts.target_tokens_per_s, facts.tokens_per_s_at_knee, headroom
    )
    facts.proposed = facts.nodes + 1
    for hw in for_profile(catalog, run.profile):
        monthly = sizing.monthly_cost_usd(facts.proposed, hw.hourly_usd)
        facts.costs.append(
            LlmCostRow(
                hardware=hw.name,
                nodes=facts.proposed,
                monthly_usd=monthly,
                # the same spread as per 1M requests, over the token rate instead
                per_million_output_tokens_usd=sizing.cost_per_million_usd(
                    monthly, facts.target_tokens_per_s
                ),
            )
        )
    return facts
