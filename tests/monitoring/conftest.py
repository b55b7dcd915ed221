"""Helpers for the monitoring tests: render through the real CLI, run the real promtool."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inferops.cli import main

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    """The path of a Debian-packaged tool; a missing one fails (never skips) the test."""
    path = shutil.which(name)
    assert path, f"{name} not installed: run scripts/install-system-deps"
    return path


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def render(out: Path, *args: str, capsys=None) -> int:
    return main(["monitoring", "render", "--out", str(out), *args])


def render_process(out: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI in a child process (the environment, e.g. INFEROPS_FLEET, is inherited)."""
    return subprocess.run(
        [sys.executable, "-m", "inferops", "monitoring", "render", "--out", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def sweep_run(folder: Path, *, max_qps=412.0, profile="cpu-batching", **summary) -> Path:
    """A run folder shaped like `inferops bench --sweep` writes (docs/run-format.md)."""
    folder.mkdir(parents=True)
    doc = {
        "schema": 1,
        "partial": False,
        "model": "mlp",
        "mode": "sweep",
        "started_at": "2026-11-23T09:30:00Z",
        "valid": True,
        "slo": {"p99_ms": 50.0, "max_qps": max_qps, "converged": True, "steps": []},
    }
    doc.update(summary)
    (folder / "summary.json").write_text(json.dumps(doc))
    if profile is not None:
        (folder / "manifest.json").write_text(json.dumps({"schema": 1, "profile": profile}))
    return folder


@pytest.fixture
def fleet(tmp_path, monkeypatch) -> Path:
    """A fleet file with one host of each kind, read through the repo's inventory.py."""
    path = tmp_path / "fleet.toml"
    path.write_text(
        """
[[hosts]]
name = "gpu-1"
address = "10.0.0.11"
groups = ["gpu_nodes"]
[hosts.data]
python_env = "venv"
capacity_profile = "a10-batching"

[[hosts]]
name = "cpu-1"
address = "10.0.0.21"
groups = ["cpu_nodes"]
[hosts.data]
server_port = 9000
node_exporter_listen = "0.0.0.0:9101"

[[hosts]]
name = "triton-1"
address = "10.0.0.12"
groups = ["gpu_nodes"]
[hosts.data]
python_env = "venv"
server_runtime = "triton"
triton_image = "nvcr.io/nvidia/tritonserver:24.08-py3@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
triton_insecure = true

[[hosts]]
name = "mon-1"
address = "10.0.0.31"
groups = ["monitoring"]
[hosts.data]
# Published (the default is loopback): the targets below use the host's address.
prometheus_listen = "0.0.0.0:9090"
alertmanager_listen = "0.0.0.0:9093"

[[hosts]]
name = "load-1"
address = "10.0.0.41"
groups = ["loadgen"]
"""
    )
    monkeypatch.setenv("INFEROPS_FLEET", str(path))
    return ROOT / "inventory.py"
