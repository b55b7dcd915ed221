"""`inferops demo` end to end, shortened: real servers, real sweeps, the real report.

The full demo (cnn, 80 s per sweep) is `make demo`; here the mlp model and
a 20 s sweep budget keep it short. What a newcomer relies on is checked as is:
the demo exits 0, every profile has a run folder from a real sweep, and every
profile is sized in the report. A sweep that dies without its folder, or a
machine too noisy for the demo's budgeted sweeps, fails this test.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from inferops.demo import PROFILES

from .htmlfacts import parse
from .test_report import SECTIONS

pytestmark = pytest.mark.slow


def test_demo_sweeps_two_profiles_and_writes_the_report(tmp_path):
    out = tmp_path / "demo"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "inferops",
            "demo",
            "--model",
            "mlp",
            "--out",
            str(out),
            "--step-duration",
            "1s",
            "--sweep-budget",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # exit 0 with every profile sized; or exit 3 with one line per profile saying why this
    # machine could not be measured, which the run folders must bear out (below)
    assert res.returncode in (0, 3), res.stderr[-3000:]
    index = out / "index.html"
    assert res.stdout.strip().splitlines()[-1] == f"report written to {index.resolve()}"
    page = parse(index.read_text())
    assert page.sections == SECTIONS

    sized = []
    for profile, _, _ in PROFILES:
        run = out / "runs" / profile
        assert (run / "summary.json").exists(), f"{profile}: the sweep left no run folder"
        manifest = json.loads((run / "manifest.json").read_text())
        summary = json.loads((run / "summary.json").read_text())
        # the same code path as a fleet run: `inferops bench --sweep` against a real server
        assert manifest["profile"] == profile
        assert "--sweep" in manifest["command"]
        assert summary["mode"] == "sweep" and summary["slo"]["steps"]
        assert (run / summary["slo"]["steps"][0]["dir"] / "latency.hdr").exists()
        assert (profile, "proposed") in page.facts
        assert not summary["partial"], summary["validity"]  # the budget ends sweeps cleanly
        if summary["valid"] and summary["slo"]["max_qps"]:
            assert (profile, "refused") not in page.facts  # a valid sweep is sized
            sized.append(profile)
            continue
        # not sized: only because the generator fell behind at every rate it tried, and
        # the demo said so in one line
        steps = summary["slo"]["steps"]
        assert all(
            not st["valid"] and all(r.startswith("load generator limited") for r in st["validity"])
            for st in steps
        ), steps
        lines = [line for line in res.stderr.splitlines() if f"{profile}: no valid sizing:" in line]
        assert len(lines) == 1 and "load generator fell behind" in lines[0], res.stderr[-2000:]
    assert (res.returncode == 0) == (len(sized) == len(PROFILES))
