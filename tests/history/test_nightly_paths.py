"""``inferops nightly`` paths that need no inference server: provisioning with the real
pyinfra CLI (``@local`` inventory), and an unreachable target stored as an invalid run."""

from __future__ import annotations

import json
import sqlite3

from .conftest import inferops

CONFIG = """
[nightly]
store = "{tmp}/history.sqlite"
out = "{tmp}/runs"

[provision]
enabled = true
inventory = "@local"
deploy = "{tmp}/deploy.py"
timeout = "2m"

[[scenario]]
name = "down"
target = "http://127.0.0.1:9"
model = "mlp"
rate = 10
duration = "2s"
warmup = "0s"
"""

DEPLOY = """
from pyinfra.operations import files

files.file(name="nightly provisioning marker", path="{tmp}/provisioned", present=True)
"""


def test_provisions_with_pyinfra_then_stores_an_unreachable_run_as_invalid(tmp_path):
    (tmp_path / "deploy.py").write_text(DEPLOY.format(tmp=tmp_path))
    (tmp_path / "nightly.toml").write_text(CONFIG.format(tmp=tmp_path))
    done = inferops("nightly", "--config", tmp_path / "nightly.toml")
    assert done.returncode == 3, done.stdout + done.stderr
    assert (tmp_path / "provisioned").exists()  # the real deploy ran on @local
    assert "down: invalid" in done.stdout and "target unreachable" in done.stdout
    assert "INVALID or NOT COMPARABLE (exit 3)" in done.stdout
    db = sqlite3.connect(tmp_path / "history.sqlite")
    assert db.execute("SELECT valid FROM runs").fetchall() == [(0,)]  # stored, marked invalid
    assert db.execute("SELECT COUNT(*) FROM baselines").fetchone()[0] == 0  # never a baseline
    db.close()
    result_file = done.stdout.strip().splitlines()[-1].split(" and ")[-1]
    result = json.loads(open(result_file).read())
    assert result["scenarios"][0]["status"] == "invalid"
    assert (tmp_path / "runs" / "trend.html").exists()


def test_failed_provisioning_exits_2_and_runs_nothing(tmp_path):
    (tmp_path / "deploy.py").write_text(
        'from pyinfra.operations import server\nserver.shell(name="fail", commands=["exit 7"])\n'
    )
    (tmp_path / "nightly.toml").write_text(CONFIG.format(tmp=tmp_path))
    done = inferops("nightly", "--config", tmp_path / "nightly.toml")
    assert done.returncode == 2
    # pyinfra's own output comes first; inferops' verdict is the last line
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("inferops nightly: error: provisioning failed: pyinfra exited")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "history.sqlite").exists()
