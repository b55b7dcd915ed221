"""`inferops demo` end to end, shortened: real servers, real sweeps, the real report.

The full demo (cnn, 100 s per sweep) is `make demo`; here the mlp model and
an 8 s sweep budget keep it short. A sweep cut off by the budget is reported
as partial, so the checks hold whether or not the sweeps finished in time.
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
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode in (0, 3), res.stderr[-2000:]
    index = out / "index.html"
    assert res.stdout.strip().splitlines()[-1] == f"report written to {index.resolve()}"
    page = parse(index.read_text())
    assert page.sections == SECTIONS

    valid = []
    for profile, _, _ in PROFILES:
        run = out / "runs" / profile
        if not (run / "summary.json").exists():
            # bench died without writing its sweep: the demo says so and leaves it out
            assert f"{profile}: the sweep left no summary.json" in res.stderr
            assert (profile, "proposed") not in page.facts
            valid.append(False)
            continue
        manifest = json.loads((run / "manifest.json").read_text())
        summary = json.loads((run / "summary.json").read_text())
        # the same code path as a fleet run: `inferops bench --sweep` against a real server
        assert manifest["profile"] == profile
        assert "--sweep" in manifest["command"]
        assert summary["mode"] == "sweep" and summary["slo"]["steps"]
        assert (run / summary["slo"]["steps"][0]["dir"] / "latency.hdr").exists()
        # each profile is in the comparison table, sized or not
        assert (profile, "proposed") in page.facts
        valid.append(summary["valid"] and not summary["partial"])
    # exit 0 only when every sweep gave a valid measurement
    assert (res.returncode == 0) == all(valid)
    if not all(valid):
        assert "did not give a valid measurement" in res.stderr
