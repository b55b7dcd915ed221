"""The rollout report: rendered from a rollout's state file, escaped, offline, and opened in
real headless Chromium."""

from __future__ import annotations

import os
import re

import pytest

from inferops.release import report
from inferops.release.rollout import Rollout
from inferops.release.state import RolloutState
from tests.report.chromium import CHROMIUM, Chromium

from .test_rollout_logic import ScriptedFleet, _plan


@pytest.fixture()
def rolled_back(tmp_path) -> RolloutState:
    Rollout(
        _plan(), ScriptedFleet(alert_at_weight=50), tmp_path / "s.json", log=lambda *_: None
    ).run()
    state = RolloutState.load(tmp_path / "s.json")
    # a reason is free text from the world (alert names, stderr): it must arrive escaped
    state.log("info", "<script>alert(1)</script>", run="runs/<x>")
    return state


def test_report_shows_every_decision_and_the_rollback(rolled_back, tmp_path):
    out = report.write(rolled_back, tmp_path / "report.html")
    html = out.read_text()
    assert "rolled-back" in html
    assert "step 50: alerts fired: InferenceP99LatencyHigh" in html
    assert html.count("<tr") >= len(rolled_back.decisions)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)


@pytest.mark.browser
@pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason=f"missing dependency: chromium at {CHROMIUM} (make system-deps installs it, as root)",
)
def test_report_renders_in_chromium(rolled_back, tmp_path):
    out = report.write(rolled_back, tmp_path / "report.html")
    with Chromium() as browser:
        page = browser.load(out)
    assert page["errors"] == []
    assert page["requests"] == [out.resolve().as_uri()]  # offline: nothing else fetched
    assert len(page["screenshot"]) > 10_000
