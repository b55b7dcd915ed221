"""`inferops demo --llm` end to end, shortened: real tinylm servers (continuous batching
and --max-num-seqs 1), real openai sweeps, the real report with its LLM section.

A sweep step needs 600 samples, so at tinylm's ~10 req/s single-user start each profile
spends about a minute even with a 20 s budget: this is the longest report test.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from inferops.demo import LLM_PROFILES

from .htmlfacts import parse

pytestmark = pytest.mark.slow


def test_demo_llm_sweeps_both_servers_on_ttft_tpot_and_writes_the_llm_section(tmp_path):
    out = tmp_path / "demo-llm"
    res = subprocess.run(
        [sys.executable, "-m", "inferops", "demo", "--llm", "--out", str(out),
         "--step-duration", "1s", "--sweep-budget", "20"],
        capture_output=True,
        text=True,
        timeout=420,
    )  # fmt: skip
    assert res.returncode in (0, 3), res.stderr[-3000:]
    index = out / "index.html"
    assert res.stdout.strip().splitlines()[-1] == f"report written to {index.resolve()}"
    page = parse(index.read_text())
    assert "llm" in page.sections
    for profile, _, _ in LLM_PROFILES:
        run = out / "runs" / profile
        summary = json.loads((run / "summary.json").read_text())
        manifest = json.loads((run / "manifest.json").read_text())
        command = manifest["command"]
        assert command[command.index("--protocol") + 1] == "openai" and "--sweep" in command
        assert summary["protocol"] == "openai" and summary["llm"]["output_tokens_total"] > 0
        assert summary["slo"]["ttft_ms"] == 1000 and summary["slo"]["tpot_ms"] == 100
        assert not summary["partial"], summary["validity"]
        # one row per recorded step, with the recorded verdict
        oks = page.facts[(profile, "llm-step-ok")]
        assert oks == ["yes" if st["ok"] else "no" for st in summary["slo"]["steps"]]
        if summary["valid"] and summary["slo"]["max_qps"]:
            assert int(page.facts[(profile, "llm-proposed")][0]) >= 2  # N+1
        else:
            assert (profile, "llm-refused") in page.facts
    if res.returncode == 0:
        assert all((p, "llm-nodes") in page.facts for p, _, _ in LLM_PROFILES)
