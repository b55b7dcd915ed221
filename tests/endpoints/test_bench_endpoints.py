"""``inferops bench`` against real servers of every protocol, and the law server's truth."""

from __future__ import annotations

import csv
import json

import pytest

from tests.endpoints.sse_lawserver import quantile_ms
from tests.load.procs import run_bench

pytestmark = pytest.mark.slow

SHORT = ["--duration", "2s", "--warmup", "0s", "--rate", "30"]


def _summary(folder) -> dict:
    return json.loads((folder / "summary.json").read_text())


def _failures(folder) -> dict[str, int]:
    with open(folder / "locust_failures.csv", newline="") as fh:
        return {row["Error"]: int(row["Occurrences"]) for row in csv.DictReader(fh)}


def _bench(args, out, timeout=120):
    res = run_bench([*args, "--out", str(out)], timeout=timeout)
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    return res


def _no_thresholds(tmp_path, extra: str = ""):
    f = tmp_path / "none.toml"
    f.write_text("max_error_rate = 0.0\n" + extra)
    return ["--thresholds", str(f)]


LLM_LIMITS = (
    "p99_ttft_ms = 1000\np99_tpot_ms = 400\nmin_output_tokens_per_s = 1\nmin_goodput_qps = 1\n"
)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_seeds_api_with_predict(seeds_api, tmp_path):
    """The issue's first wall: {"texts"} in, {"results", "latency_ms"} out, no "outputs"."""
    inputs = _jsonl(tmp_path / "texts.jsonl", [{"texts": ["good fast"]}, {"texts": ["a", "b"]}])
    common = ["--target", seeds_api.url, "--protocol", "predict", "--input-file", inputs]
    args = [*common, *SHORT, *_no_thresholds(tmp_path)]
    _bench([*args, "--expect-json-key", "results"], tmp_path / "ok")
    s = _summary(tmp_path / "ok")
    assert s["protocol"] == "predict" and s["requests"] >= 40 and s["failures"] == 0
    # the check is real: a key the API never sends fails every request, with the reason
    _bench([*args, "--expect-json-key", "outputs"], tmp_path / "bad")
    s = _summary(tmp_path / "bad")
    assert s["failures"] == s["requests"] > 0
    assert any("no 'outputs' key" in e for e in _failures(tmp_path / "bad"))


def test_seeds_api_probes_with_http_get_and_secret_headers(seeds_api, tmp_path):
    out = tmp_path / "probe"
    args = ["--target", seeds_api.url, "--protocol", "http", "--method", "GET", "--path", "/ready"]
    res = _bench(
        [*args, "--header", "X-Api-Key: hunter2-secret", "--expect-json-key", "ready", *SHORT,
         *_no_thresholds(tmp_path)],
        out,
    )  # fmt: skip
    s = _summary(out)
    assert s["failures"] == 0 and s["requests"] > 0, res.stderr
    for f in out.rglob("*"):
        if f.is_file():
            assert b"hunter2-secret" not in f.read_bytes(), f
    manifest = json.loads((out / "manifest.json").read_text())
    assert "X-Api-Key: ***" in manifest["command"]


def test_mlserver_v2_from_its_metadata(mlserver, tmp_path):
    """A v2 server not written here: bodies from MLServer's own model metadata."""
    _bench(
        ["--target", mlserver.url, "--model", mlserver.model, *SHORT,
         *_no_thresholds(tmp_path)],
        tmp_path / "ml",
    )  # fmt: skip
    s = _summary(tmp_path / "ml")
    assert s["protocol"] == "v2" and s["requests"] >= 40 and s["failures"] == 0


def test_kserve_v1_with_tfserving(kserve, tmp_path):
    inputs = _jsonl(tmp_path / "rows.jsonl", [{"instances": [[1, 2], [3, 4]]}])
    _bench(
        ["--target", kserve.url, "--protocol", "tfserving", "--model", kserve.model,
         "--input-file", inputs, *SHORT, *_no_thresholds(tmp_path)],
        tmp_path / "tf",
    )  # fmt: skip
    s = _summary(tmp_path / "tf")
    assert s["requests"] >= 40 and s["failures"] == 0
    # a body the model rejects is a 4xx from KServe, counted with its status
    bad = _jsonl(tmp_path / "bad.jsonl", [{"rows": [[1]]}])
    _bench(
        ["--target", kserve.url, "--protocol", "tfserving", "--model", kserve.model,
         "--input-file", bad, *SHORT, *_no_thresholds(tmp_path)],
        tmp_path / "tf-bad",
    )  # fmt: skip
    assert any("HTTP 400" in e for e in _failures(tmp_path / "tf-bad"))


def test_torchserve(torchserve, tmp_path):
    inputs = _jsonl(tmp_path / "x.jsonl", [{"x": [1, 2, 3]}, {"x": [0.5]}])
    _bench(
        ["--target", torchserve.url, "--protocol", "torchserve", "--model", torchserve.model,
         "--input-file", inputs, "--expect-json-key", "sum", *SHORT,
         *_no_thresholds(tmp_path)],
        tmp_path / "ts",
    )  # fmt: skip
    s = _summary(tmp_path / "ts")
    assert s["requests"] >= 40 and s["failures"] == 0


@pytest.mark.parametrize(
    "line, message",
    [("not json", "not JSON"), ("[1]", "expected a JSON object, got list")],
)
def test_bad_input_file_exits_2_naming_the_line(seeds_api, tmp_path, line, message):
    f = tmp_path / "in.jsonl"
    f.write_text('{"texts": ["x"]}\n' + line + "\n")
    out = tmp_path / "never"
    res = run_bench(
        ["--target", seeds_api.url, "--protocol", "predict", "--input-file", str(f), *SHORT,
         "--out", str(out)]
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert f"in.jsonl:2: {message}" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not out.exists()


# -- openai ----------------------------------------------------------------------------------

# wide enough that a busy 2-core box (10-20 ms of scheduling noise at the tail)
# stays within 5 %
TTFT, ITL = "uniform:400:600", "uniform:200:280"
TOKENS, PROMPT = 6, 24


def test_openai_ttft_itl_and_tokens_match_the_law(sse_server, tmp_path):
    server = sse_server("--ttft", TTFT, "--itl", ITL, "--seed", "7")
    out = tmp_path / "llm"
    res = _bench(
        ["--target", server.url, "--protocol", "openai", "--prompt-tokens", str(PROMPT),
         "--max-tokens", str(TOKENS), "--rate", "40", "--duration", "14s", "--warmup", "1s",
         "--slo-ttft-ms", "1000", "--slo-tpot-ms", "400", "--seed", "3",
         *_no_thresholds(tmp_path, LLM_LIMITS)],
        out,
        timeout=180,
    )  # fmt: skip
    s = _summary(out)
    llm = s["llm"]
    assert s["failures"] == 0 and s["requests"] >= 459, res.stderr
    for q, p in (("p50", 0.5), ("p99", 0.99)):
        assert llm["ttft_ms"][q] == pytest.approx(quantile_ms(TTFT, p), rel=0.05), llm
        assert llm["itl_ms"][q] == pytest.approx(quantile_ms(ITL, p), rel=0.05), llm
    # TPOT of a request is the mean of its 5 gaps: centred on the law's mean
    assert llm["tpot_ms"]["p50"] == pytest.approx(240, rel=0.05)
    assert llm["token_count_source"] == "usage"
    assert llm["output_tokens_total"] == TOKENS * s["requests"]
    assert llm["input_tokens_total"] == PROMPT * s["requests"]
    assert llm["output_tokens_per_s"] == pytest.approx(TOKENS * s["achieved_qps"], rel=0.01)
    assert llm["goodput_qps"] == pytest.approx(s["achieved_qps"], rel=0.01)  # loose SLOs: all
    for name in ("ttft.hdr", "itl.hdr", "tpot.hdr"):
        assert (out / name).is_file()
    checks = {c["name"]: c for c in s["thresholds"]}
    assert checks["p99_ttft_ms"]["value"] == llm["ttft_ms"]["p99"]
    assert checks["min_goodput_qps"]["value"] == llm["goodput_qps"]
    for key in ("p99_ttft_ms", "p99_tpot_ms", "min_output_tokens_per_s", "min_goodput_qps"):
        assert checks[key]["ok"] is True, checks


def test_openai_counts_chunks_without_usage_and_says_so(sse_server, tmp_path):
    server = sse_server("--ttft", "fixed:5", "--itl", "fixed:2", "--no-usage",
                        "--tokens-per-chunk", "2")  # fmt: skip
    out = tmp_path / "chunks"
    _bench(
        ["--target", server.url, "--protocol", "openai", "--openai-endpoint", "completions",
         "--max-tokens", "8", *SHORT, *_no_thresholds(tmp_path, "p99_ttft_ms = 0.5\n")],
        out,
    )  # fmt: skip
    s = _summary(out)
    (ttft,) = [c for c in s["thresholds"] if c["name"] == "p99_ttft_ms"]
    assert ttft["ok"] is False and ttft["value"] > 0.5  # a breach, with the measured value
    assert s["failures"] == 0 and s["requests"] > 0
    assert s["llm"]["token_count_source"] == "chunks"
    assert s["llm"]["output_tokens_total"] == 4 * s["requests"]  # 8 tokens in 4 chunks
    assert s["llm"]["input_tokens_total"] is None


def test_openai_broken_streams_are_failures_with_their_reason(sse_server, tmp_path):
    server = sse_server("--ttft", "fixed:5", "--itl", "fixed:2")
    faults = ("no-done", "truncated", "malformed", "error", "stall", "http-500")
    prompts = [{"prompt": "fine"}] + [{"prompt": "x", "x_fault": f} for f in faults]
    inputs = _jsonl(tmp_path / "faults.jsonl", prompts)
    out = tmp_path / "faults"
    res = _bench(
        ["--target", server.url, "--protocol", "openai", "--input-file", inputs,
         "--max-tokens", "4", "--timeout", "1s", "--rate", "14", "--duration", "2s",
         "--warmup", "0s", *_no_thresholds(tmp_path)],
        out,
    )  # fmt: skip
    assert res.returncode in (1, 3), res.stderr
    s = _summary(out)
    assert s["failures"] >= len(faults) and s["requests"] > s["failures"]
    errors = " | ".join(_failures(out))
    for reason in (
        "stream ended without [DONE]",
        "malformed SSE",
        "error in stream: injected mid-stream failure",
        "HTTP 500",
        "timed out",
        "Incomplete response",
    ):
        assert reason in errors, errors
    assert s["llm"]["output_tokens_total"] == 4 * (s["requests"] - s["failures"])


def test_openai_sweep_finds_the_knee(sse_server, tmp_path):
    """4 slots, 50 ms a stream: 80 req/s saturate; the knee is where queueing breaks TTFT."""
    server = sse_server("--ttft", "fixed:20", "--itl", "fixed:10", "--slots", "4")
    out = tmp_path / "sweep"
    res = _bench(
        ["--target", server.url, "--protocol", "openai", "--max-tokens", "4", "--sweep",
         "--sweep-start", "40", "--sweep-precision", "0.15", "--slo-ttft-ms", "60",
         "--slo-tpot-ms", "15", "--duration", "2s", "--warmup", "1s", "--late-tolerance-ms",
         "20", *_no_thresholds(tmp_path)],
        out,
        timeout=400,
    )  # fmt: skip
    s = _summary(out)
    slo, knee = s["slo"], s["slo"]["max_qps"]
    why = (slo, res.stderr[-2000:])
    # Below saturation (80 req/s). The lower bound is loose on purpose: with CI's real-host
    # tier running alongside on 2 cores, the server's own TTFT jitter moves the knee (27.5
    # req/s in one CI run against ~40 on a quiet machine); what must hold is the bracket.
    assert knee is not None and 15 <= knee < 80 and slo["converged"], why
    for step in slo["steps"]:
        if step["ok"]:
            assert step["p99_ttft_ms"] <= 60 and step["p99_tpot_ms"] <= 15, why
    assert knee == max(st["offered_qps"] for st in slo["steps"] if st["ok"]), why
    # queueing breaks TTFT somewhere above the knee ...
    assert any(not st["ok"] and st["p99_ttft_ms"] > 60 for st in slo["steps"]), why
    # ... and the knee is bracketed, within the precision asked for, by a step that missed
    above = [st for st in slo["steps"] if not st["ok"] and st["offered_qps"] > knee]
    first_broken = min(above, key=lambda st: st["offered_qps"])
    assert (first_broken["offered_qps"] - knee) / first_broken["offered_qps"] <= 0.15, why
