"""The skip policy of tests/conftest.py, run on a throwaway suite in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SUITE = """
import pytest

def test_needs_a_browser():
    pytest.skip("missing dependency: chromium at /usr/bin/chromium")

@pytest.mark.skipif(True, reason="missing dependency: promtool")
def test_needs_promtool():
    pass

def test_skipped_on_purpose():
    pytest.skip("only meaningful on aarch64")

def test_runs():
    assert True
"""


def _pytest(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    suite = tmp_path / "tests"
    (suite / "tier").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "conftest.py", suite / "conftest.py")
    (suite / "tier" / "test_example.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:locust",
         "-p", "no:cloudcoil", "tests"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def test_in_ci_a_missing_dependency_fails_the_run(tmp_path):
    res = _pytest(tmp_path, "true")
    assert res.returncode == 1, res.stdout
    # a skip in a test body fails it; a skipif mark (setup) becomes an error: both fail the run
    assert "1 failed, 1 passed, 1 skipped, 1 error" in res.stdout, res.stdout
    assert "CI=true: a missing dependency fails the run" in res.stdout


def test_outside_ci_the_skipped_tiers_are_listed_at_the_end(tmp_path):
    res = _pytest(tmp_path, None)
    assert res.returncode == 0, res.stdout
    assert "1 passed, 3 skipped" in res.stdout, res.stdout
    tail = res.stdout[res.stdout.index("skipped tiers") :]
    assert "SKIPPED tests/tier: 1 test(s): missing dependency: chromium" in tail
    assert "SKIPPED tests/tier: 1 test(s): missing dependency: promtool" in tail
    assert "SKIPPED tests/tier: 1 test(s): only meaningful on aarch64" in tail


def test_install_system_deps_fails_when_it_cannot_install(tmp_path):
    # not root, with dpkg-query reporting every package missing: it must not exit 0
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")
    (fake / "id").write_text("#!/bin/sh\necho 1000\n")
    for tool in (fake / "dpkg-query", fake / "id"):
        tool.chmod(0o755)
    res = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-system-deps")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert res.returncode != 0, res.stderr
    assert "missing" in res.stderr and "not root" in res.stderr
