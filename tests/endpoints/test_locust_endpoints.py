"""``locust -f loadtests/`` (always in a subprocess) against the same real servers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.endpoints.sse_lawserver import quantile_ms
from tests.load.procs import ROOT

pytestmark = pytest.mark.slow

LOCUST = str(Path(sys.executable).parent / "locust")


def _locust(args, out, timeout=120):
    res = subprocess.run(
        [LOCUST, "-f", str(ROOT / "loadtests"), "--headless", "--run-folder", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    return res, json.loads((out / "summary.json").read_text())


def _thresholds(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text("max_error_rate = 0.0\n")
    return ["--thresholds", str(f)]


def test_seeds_api_predict(seeds_api, tmp_path):
    inputs = tmp_path / "texts.jsonl"
    inputs.write_text('{"texts": ["good", "bad"]}\n')
    res, s = _locust(
        ["-H", seeds_api.url, "--protocol", "predict", "--input-file", str(inputs),
         "--expect-json-key", "latency_ms", "--arrival-rate", "30", "-t", "3s",
         *_thresholds(tmp_path)],
        tmp_path / "seeds",
    )  # fmt: skip
    assert s["protocol"] == "predict" and s["requests"] > 0 and s["failures"] == 0, res.stderr


def test_bad_input_file_exits_2_naming_the_line(seeds_api, tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text('{"texts": ["x"]}\n[1, 2]\n')
    res = subprocess.run(
        [LOCUST, "-f", str(ROOT / "loadtests"), "--headless", "-H", seeds_api.url,
         "--protocol", "predict", "--input-file", str(f), "--arrival-rate", "5", "-t", "2s"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr[-2000:]
    assert "in.jsonl:2: expected a JSON object, got list" in res.stderr
    assert "Traceback" not in res.stderr


def test_mlserver_v2(mlserver, tmp_path):
    res, s = _locust(
        ["-H", mlserver.url, "--model", mlserver.model, "--arrival-rate", "30", "-t", "3s",
         *_thresholds(tmp_path)],
        tmp_path / "ml",
    )  # fmt: skip
    assert s["requests"] > 0 and s["failures"] == 0, res.stderr


def test_openai_law_across_two_worker_processes(sse_server, tmp_path):
    """TTFT/ITL histograms of two workers merge into the master's, exactly."""
    from inferops.measure.runformat import read_hdr

    ttft, itl = "uniform:400:600", "uniform:200:280"  # as test_bench_endpoints: noise-proof
    server = sse_server("--ttft", ttft, "--itl", itl)
    out = tmp_path / "llm"
    res, s = _locust(
        ["-H", server.url, "--protocol", "openai", "--max-tokens", "6", "--prompt-tokens", "10",
         "--arrival-rate", "40", "-t", "14s", "--processes", "2", "--late-tolerance-ms", "20",
         "--slo-ttft-ms", "300", *_thresholds(tmp_path)],
        out,
        timeout=180,
    )  # fmt: skip
    llm = s["llm"]
    assert s["workers"]["count"] == 2 and s["failures"] == 0, res.stderr[-2000:]
    assert read_hdr(out / "ttft.hdr").get_total_count() == llm["requests"] == s["requests"]
    assert read_hdr(out / "itl.hdr").get_total_count() == 5 * s["requests"]
    assert llm["output_tokens_total"] == 6 * s["requests"]
    assert llm["input_tokens_total"] == 10 * s["requests"]
    assert llm["ttft_ms"]["p50"] == pytest.approx(quantile_ms(ttft, 0.5), rel=0.05)
    assert llm["itl_ms"]["p50"] == pytest.approx(quantile_ms(itl, 0.5), rel=0.05)
