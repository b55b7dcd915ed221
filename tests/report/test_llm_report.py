"""The report's LLM section from FAKE ``--protocol openai`` sweeps (synthetic.write_llm_sweep):
the knee, the token sizing and the cost per 1M output tokens, against the inputs."""

from __future__ import annotations

import math

import pytest

from inferops.cli import main
from inferops.report import synthetic
from inferops.report.sizing import HOURS_PER_MONTH

from .htmlfacts import number, parse

TARGET_QPS = 50.0
HOURLY = 2.0
TOKENS = 128
CAPACITY = 20.0
STEPS = [2.0, 4.0, 8.0, 12.0, 16.0, 18.0]
SLO_TTFT, SLO_TPOT = 300.0, 40.0
CATALOG = f"""
[[hardware]]
name = "test-llm-node"
cpu = "16 vCPU"
gpu = "1x test"
hourly_usd = {HOURLY}
power_w = 300
profiles = ["llm-*"]
note = "test price"
"""


def _expected_knee() -> float:
    ok = []
    for q in STEPS:
        ttft, tpot = synthetic.llm_p99s(q, capacity_qps=CAPACITY, ttft_ms=100, tpot_ms=10)
        if ttft <= SLO_TTFT and tpot <= SLO_TPOT:
            ok.append(q)
    return max(ok)


@pytest.fixture(scope="module")
def llm_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm-report")
    sweep = synthetic.write_llm_sweep(
        root / "llm-cb",
        profile="llm-cb",
        slo_ttft_ms=SLO_TTFT,
        slo_tpot_ms=SLO_TPOT,
        tokens_per_request=TOKENS,
        capacity_qps=CAPACITY,
        steps_qps=STEPS,
    )
    catalog = root / "hw.toml"
    catalog.write_text(CATALOG)
    out = root / "index.html"
    code = main(
        ["report", str(sweep), "--out", str(out), "--target-qps", str(TARGET_QPS),
         "--slo-p99-ms", "1000", "--headroom", "0.2", "--catalog", str(catalog)]
    )  # fmt: skip
    assert code == 0
    return sweep, parse(out.read_text())


def test_llm_section_marks_the_knee_where_ttft_and_tpot_still_meet_their_slos(llm_report):
    _, facts = llm_report
    assert "llm" in facts.sections
    knee = _expected_knee()
    assert knee not in (STEPS[0], STEPS[-1])  # the law puts the knee inside the sweep
    f = facts.facts
    # every step's row, TTFT/TPOT as recorded
    assert len(f[("llm-cb", "llm-step-ttft")]) == len(STEPS)
    oks = f[("llm-cb", "llm-step-ok")]
    assert oks.count("yes") == STEPS.index(knee) + 1
    # the achieved rate at the knee is 0.98 of the offered (synthetic.write_run's cap) or less
    assert number(f[("llm-cb", "llm-knee-qps")][0]) == pytest.approx(knee, rel=0.03)
    assert number(f[("llm-cb", "llm-slo-ttft")][0]) == SLO_TTFT
    assert number(f[("llm-cb", "llm-slo-tpot")][0]) == SLO_TPOT
    assert f[("llm-cb", "llm-token-source")] == ["usage"]


def test_llm_sizing_is_in_output_tokens_and_costs_per_million_tokens(llm_report):
    _, facts = llm_report
    f = facts.facts
    knee_tokens = number(f[("llm-cb", "llm-knee-tokens")][0])
    assert number(f[("llm-cb", "llm-tokens-per-request")][0]) == pytest.approx(TOKENS)
    target_tokens = TARGET_QPS * TOKENS
    assert number(f[("llm-cb", "llm-target-tokens")][0]) == pytest.approx(target_tokens)
    nodes = math.ceil(target_tokens / (knee_tokens * 0.8))
    assert int(f[("llm-cb", "llm-nodes")][0]) == nodes
    assert int(f[("llm-cb", "llm-proposed")][0]) == nodes + 1
    monthly = (nodes + 1) * HOURLY * HOURS_PER_MONTH
    per_million = monthly / (target_tokens * HOURS_PER_MONTH * 3600 / 1e6)
    assert number(f[("llm-cb", "llm-monthly")][0]) == pytest.approx(monthly, abs=0.5)
    assert number(f[("llm-cb", "llm-per-million-tokens")][0]) == pytest.approx(
        per_million, abs=1e-4
    )


def test_an_llm_sweep_with_no_step_at_the_slos_is_not_sized(tmp_path):
    sweep = synthetic.write_llm_sweep(
        tmp_path / "llm-slow", profile="llm-slow", slo_ttft_ms=50.0, steps_qps=[2.0, 4.0]
    )
    out = tmp_path / "index.html"
    args = ["report", str(sweep), "--out", str(out), "--slo-p99-ms", "1000", "--target-qps", "5"]
    assert main(args) == 0
    f = parse(out.read_text()).facts
    assert "no valid step met the TTFT/TPOT SLOs" in f[("llm-slow", "llm-refused")][0]
    assert ("llm-slow", "llm-nodes") not in f


def test_runs_without_llm_have_no_llm_section(sweeps, tmp_path):
    out = tmp_path / "index.html"
    assert main(["report", *map(str, sweeps.values()), "--out", str(out), "--target-qps", "5"]) == 0
    assert "llm" not in parse(out.read_text()).sections
