"""The trend report: content from a synthetic store, and the page in headless Chromium."""

from __future__ import annotations

import os
import re

import pytest

from inferops.history import synthetic
from inferops.history.store import open_store
from inferops.history.trend import build, write_report
from tests.report.chromium import CHROMIUM, Chromium

from .conftest import inferops

SECTIONS = ["summary", "findings", "trends", "runs"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two series: one steps up 15 % at night 12 (new commit), one stays flat."""
    path = tmp_path_factory.mktemp("trend") / "history.sqlite"
    with open_store(str(path), write=True) as s:
        for n in range(24):
            up = n >= 12
            run = synthetic.synthetic_run(
                seed=n, night=n, scale=1.15 if up else 1.0, windows=20, rate=100,
                git_sha=("b" if up else "a") * 40,
            )  # fmt: skip
            rid, _ = s.add_run(run, scenario="mlp-fixed", profile="cpu")
            if n == 0:
                s.set_baseline(rid)
            flat = synthetic.synthetic_run(seed=1000 + n, night=n, windows=20, rate=100)
            s.add_run(flat, scenario="cnn-fixed", profile="cpu")
        invalid = synthetic.synthetic_run(seed=99, night=24, windows=20, rate=100)
        invalid.summary.update(valid=False, validity=["too few samples"])
        s.add_run(invalid, scenario="cnn-fixed", profile="cpu")
        s.add_finding(
            {
                "scenario": "mlp-fixed", "profile": "cpu", "metric": "latency_p50_ms",
                "kind": "regression", "baseline_run_id": 1, "candidate_run_id": 25,
                "rerun_run_id": 27, "effect": 0.15, "ci_low": 0.12, "ci_high": 0.18,
                "p_value": 1e-6, "test": "Mann-Whitney U on per-second P50",
                "attribution": [{"what": "git_sha", "kind": "commit", "before": "a" * 40,
                                 "after": "b" * 40}],
            }
        )  # fmt: skip
    return path


def test_trend_content_change_points_band_and_findings(store):
    with open_store(str(store)) as s:
        ctx = build(s)
    by_name = {x.scenario: x for x in ctx["series"]}
    mlp = {c.metric: c for c in by_name["mlp-fixed"].charts}["latency_p50_ms"]
    assert [cp["run_id"] for cp in mlp.change_points] == [25]  # night 12 of the mlp series
    assert 0.10 < mlp.change_points[0]["change"] < 0.20
    assert "git_sha aaaaaaaaaaaa -> bbbbbbbbbbbb" in mlp.change_points[0]["environment"]
    assert 'class="band"' in mlp.svg and mlp.svg.count('class="cp"') == 1
    cnn = {c.metric: c for c in by_name["cnn-fixed"].charts}["latency_p50_ms"]
    assert cnn.change_points == [] and cnn.points == 24  # the invalid run is drawn, not judged
    assert 'class="band"' not in cnn.svg  # no baseline set for it
    assert {1, 25, 27} <= {r.id for r in ctx["runs"]}


def test_trend_report_command_writes_a_self_contained_file(store, tmp_path):
    out = tmp_path / "trend.html"
    done = inferops("history", "report", "--out", out, "--store", store)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"wrote {out}"
    html = out.read_text()
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)
    for anchor in ("#run-1", "#run-25", "#run-27"):  # the finding links its runs...
        assert f'href="{anchor}"' in html and f'id="{anchor[1:]}"' in html  # ...which exist


@pytest.mark.browser
@pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason="chromium not installed (make system-deps installs it, as root)",
)
def test_trend_report_renders_in_chromium(store, tmp_path):
    out = tmp_path / "trend.html"
    with open_store(str(store)) as s:
        write_report(s, out)
    with Chromium() as browser:
        page = browser.load(out)
    assert page["errors"] == []
    assert page["requests"] == [out.resolve().as_uri()]  # offline: nothing else fetched
    by_id = {s["id"]: s for s in page["sections"]}
    assert list(by_id) == SECTIONS
    for section in by_id.values():
        assert section["height"] > 50 and section["text"] > 50, section
    # mlp: P50, P99, P99.9, error rate; cnn: the same four
    assert by_id["trends"]["svgs"] == 8
    assert len(page["screenshot"]) > 10_000


def test_report_history_is_the_same_trend_report(store, tmp_path):
    """``inferops report --history`` (the command the nightly issue names) renders it too."""
    out = tmp_path / "via-report.html"
    done = inferops("report", "--history", "--out", out, "--store", store)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"wrote {out}"
    assert 'id="run-25"' in out.read_text()
    both = inferops("report", "--history", str(tmp_path), "--out", out, "--store", store)
    assert both.returncode == 2 and "Traceback" not in both.stderr
    neither = inferops("report", "--out", out)
    assert neither.returncode == 2 and "RUN_DIR" in neither.stderr
