"""The load engine's ``openai`` protocol against a real ``inferops serve --model tinylm``.

The load generator and the server count the same things independently: the
summary's token totals must equal the server's own counters, and every measured
request must appear once in the server's TTFT histogram. Nothing asserts speed.
"""

from __future__ import annotations

import json

import httpx
import pytest

from inferops.cli import main
from inferops.server.process import ServerProcess
from tests.llm.conftest import metric
from tests.load.procs import run_bench
from tests.report.htmlfacts import number, parse

pytestmark = pytest.mark.slow

# ignore_eos (the bench default) makes every reply exactly MAX_TOKENS long
PROMPT_WORDS, MAX_TOKENS = 8, 12
LOOSE = "max_error_rate = 0.0\np99_ttft_ms = 60000\np99_tpot_ms = 60000\n"


def _bench(args, out, timeout=150):
    res = run_bench([*args, "--out", str(out)], timeout=timeout)
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    return res, json.loads((out / "summary.json").read_text())


def _openai(server, tmp_path) -> list[str]:
    thresholds = tmp_path / "loose.toml"
    thresholds.write_text(LOOSE)
    return [
        "--target", server.url, "--protocol", "openai", "--openai-endpoint", "completions",
        "--prompt-tokens", str(PROMPT_WORDS), "--max-tokens", str(MAX_TOKENS),
        "--thresholds", str(thresholds), "--seed", "5",
    ]  # fmt: skip


def test_fixed_rate_bench_agrees_with_the_servers_own_counters(llm_dir, llm_env, tmp_path):
    # no --max-body-bytes: the default limit must serve (it once answered every request 500)
    with ServerProcess(
        llm_dir / "tinylm.onnx", extra_args=["--name", "tinylm"], env=llm_env
    ) as server:
        out = tmp_path / "fixed"
        res, s = _bench(
            [*_openai(server, tmp_path), "--rate", "3", "--arrivals", "constant",
             "--duration", "5s", "--warmup", "0s",
             "--slo-ttft-ms", "60000", "--slo-tpot-ms", "60000",
             # one send 1 ms late is 7 % of 15: make-test's parallel tiers did that once;
             # latency counts from the intended send time anyway, and lateness is not
             # what this test is about
             "--late-tolerance-ms", "100"],
            out,
        )  # fmt: skip
        scrape = httpx.get(f"{server.url}/metrics", timeout=30).text

    # 15 requests are too few for a P99 claim (exit 3, said so); nothing else may be wrong
    assert res.returncode in (0, 3), res.stderr[-3000:]
    assert all(reason.startswith("too few samples") for reason in s["validity"]), s["validity"]
    assert all(check["ok"] for check in s["thresholds"]), s["thresholds"]
    llm = s["llm"]
    assert s["failures"] == 0 and s["requests"] >= 10, s
    assert llm["token_count_source"] == "usage"
    # exact, against what the server itself counted
    assert llm["output_tokens_total"] == MAX_TOKENS * s["requests"]
    assert llm["output_tokens_total"] == metric(scrape, "inferops_generation_tokens_total")
    assert llm["input_tokens_total"] == metric(scrape, "inferops_prompt_tokens_total")
    assert metric(scrape, "inferops_time_to_first_token_seconds_count") == s["requests"]
    assert metric(scrape, "inferops_e2e_request_latency_seconds_count") == s["requests"]
    for name in ("ttft_ms", "tpot_ms", "itl_ms"):
        q = llm[name]
        assert 0 < q["p50"] <= q["p90"] <= q["p99"], (name, q)
    # the client's TTFT includes the server's, so its median cannot be smaller than
    # the server's fastest bucket boundary for it: check ordering against the server's sum
    server_mean_ttft_ms = (
        1000
        * metric(scrape, "inferops_time_to_first_token_seconds_sum")
        / metric(scrape, "inferops_time_to_first_token_seconds_count")
    )
    assert llm["ttft_ms"]["p99"] >= server_mean_ttft_ms
    # loose SLOs: every request is good
    assert llm["goodput_qps"] == pytest.approx(s["achieved_qps"], rel=0.01)
    assert llm["output_tokens_per_s"] == pytest.approx(MAX_TOKENS * s["achieved_qps"], rel=0.01)
    for hdr in ("ttft.hdr", "itl.hdr", "tpot.hdr"):
        assert (out / hdr).is_file()


def test_sweep_steps_carry_ttft_tpot_and_tokens_and_the_knee_follows_them(
    llm_dir, llm_env, tmp_path
):
    """Loose SLOs and a time budget keep the sweep bounded (40 -> 80 req/s, the ceiling):
    what is checked is that each step's verdict follows from its own recorded P99
    TTFT/TPOT, and that the report's LLM section reads the real folder the same way."""
    slo_ttft, slo_tpot = 30000.0, 5000.0
    with ServerProcess(
        llm_dir / "tinylm.onnx", extra_args=["--name", "tinylm"], env=llm_env
    ) as server:
        out = tmp_path / "sweep"
        res, s = _bench(
            [*_openai(server, tmp_path), "--max-tokens", "4", "--sweep", "--sweep-start", "40",
             "--sweep-max", "80", "--sweep-max-steps", "3", "--sweep-budget", "45s",
             "--duration", "2s", "--warmup", "1s",
             "--slo-ttft-ms", str(slo_ttft), "--slo-tpot-ms", str(slo_tpot)],
            out,
            timeout=240,
        )  # fmt: skip
    slo = s["slo"]
    assert slo["ttft_ms"] == slo_ttft and slo["tpot_ms"] == slo_tpot
    assert slo["steps"], res.stderr[-3000:]
    for step in slo["steps"]:
        if step["valid"]:
            assert step["p99_ttft_ms"] > 0 and step["p99_tpot_ms"] > 0, step
            assert step["output_tokens_per_s"] > 0, step
        met = (
            step["valid"]
            and step["p99_ttft_ms"] <= slo_ttft
            and step["p99_tpot_ms"] <= slo_tpot
            and step["p99_ttft_ms"] is not None
            and (step["error_rate"] or 0) <= 0.01
        )
        assert step["ok"] == met, step
        assert (out / step["dir"] / "summary.json").is_file()
    ok_rates = [st["offered_qps"] for st in slo["steps"] if st["ok"]]
    assert slo["max_qps"] == (max(ok_rates) if ok_rates else None), slo

    # the sizing report on the real folder: one row per step, the knee where the sweep put it
    html = tmp_path / "report.html"
    code = main(["report", str(out), "--out", str(html), "--target-qps", "100",
                 "--slo-p99-ms", "60000"])  # fmt: skip
    assert code == 0
    facts = parse(html.read_text())
    assert "llm" in facts.sections
    rows = [v for (_, k), vs in facts.facts.items() if k == "llm-step-ok" for v in vs]
    assert rows == ["yes" if st["ok"] else "no" for st in slo["steps"]]
    knee = [v for (_, k), vs in facts.facts.items() if k == "llm-knee-qps" for v in vs]
    if ok_rates:
        best = max((st for st in slo["steps"] if st["ok"]), key=lambda st: st["offered_qps"])
        assert number(knee[0]) == pytest.approx(best["achieved_qps"], abs=0.01)
    else:
        assert not knee
