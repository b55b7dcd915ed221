"""A short REAL run (reference server + `inferops bench`) rendered into a report.

Everything is real: the embedded mlp model served by ``inferops serve`` on
127.0.0.1, Locust driving it open-loop, the run folder it writes, and the
report CLI reading it. What the page must say is derived from the run
folder's own files, whichever way the (noisy, shared) machine made it go.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from .htmlfacts import number, parse
from .test_report import SECTIONS

pytestmark = pytest.mark.slow

PROFILE = "mlp-real"
TARGET = 1000.0


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    from inferops.server.process import ServerProcess

    out = tmp_path_factory.mktemp("real") / "run"
    with ServerProcess("mlp", max_batch_size=8) as server:
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "inferops",
                "bench",
                "--quiet",
                "--target",
                server.url,
                "--model",
                "mlp",
                "--rate",
                "200",
                "--duration",
                "3s",
                "--warmup",
                "1s",
                "--out",
                str(out),
                "--profile",
                PROFILE,
                # the shared test machine delays sends by scheduler noise: 20 ms of lateness
                # (of a 500 ms bound) is still a valid measurement of this server
                "--late-tolerance-ms",
                "20",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    # what a user relies on: 200 req/s on the mlp model is a valid measurement, and the
    # exit code is its verdict (0 every threshold held, 1 one was breached)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["valid"] and not summary["partial"], res.stderr
    assert res.returncode == (0 if summary["passed"] else 1), res.stderr
    if res.returncode == 1:
        assert "breach:" in res.stderr
    return out


def test_real_run_renders_with_numbers_from_its_files(real_run, tmp_path):
    from hdrh.histogram import HdrHistogram

    html_path = tmp_path / "r.html"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "inferops",
            "report",
            str(real_run),
            "--out",
            str(html_path),
            "--target-qps",
            str(TARGET),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == f"report written to {html_path.resolve()}"
    page = parse(html_path.read_text())
    assert page.sections == SECTIONS

    summary = json.loads((real_run / "summary.json").read_text())
    manifest = json.loads((real_run / "manifest.json").read_text())
    facts = page.facts
    # whole-run P99 straight from the histogram file
    hist = HdrHistogram.decode((real_run / "latency.hdr").read_bytes().strip())
    assert hist.get_total_count() > 0
    assert number(facts[(PROFILE, "hdr-p99")][0]) == pytest.approx(
        hist.get_value_at_percentile(99) / 1000, abs=0.006
    )
    # sized only from a valid run whose P99 met the SLO (here: thresholds p99_latency_ms)
    slo = manifest["thresholds"]["p99_latency_ms"]
    p99 = summary["latency_ms"]["p99"]
    assert p99 is not None and p99 <= slo, p99  # the mlp model is far from its limit here
    capacity = summary["achieved_qps"]
    headroom = 1 - manifest["thresholds"]["max_cpu_percent"] / 100
    nodes = math.ceil(TARGET / (capacity * (1 - headroom)))
    assert number(facts[(PROFILE, "max-qps-at-slo")][0]) == pytest.approx(capacity, abs=0.05)
    assert number(facts[(PROFILE, "nodes")][0]) == nodes
    assert (PROFILE, "refused") not in facts
    assert facts[(PROFILE, "gpu")] == ["no GPU"]
