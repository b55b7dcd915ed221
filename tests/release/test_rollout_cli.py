"""``inferops rollout``: its inputs, and how it reads the fleet from a pyinfra inventory.

The rollout itself runs on real hosts in ``tests/realhost/test_rollout.py``; here
the command's refusals (exit 2, one line) and the inventory reading are checked
with real files and the real ``pyinfra`` CLI on ``@local``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from inferops.release import fleet_view

REPO = Path(__file__).resolve().parents[2]


def _inventory(tmp_path: Path, *, nodes=3, lb=True, data="") -> Path:
    hosts = ", ".join(
        f'("cpu-{i}", {{"ssh_hostname": "10.9.0.{i}", "server_port": 8000}})'
        for i in range(1, nodes + 1)
    )
    lb_line = 'loadbalancer = [("lb-1", {"ssh_hostname": "10.9.0.50"})]' if lb else ""
    path = tmp_path / "inventory.py"
    path.write_text(f"cpu_nodes = [{hosts}]\n{lb_line}\n")
    group_data = tmp_path / "group_data"
    group_data.mkdir(exist_ok=True)
    (group_data / "all.py").write_text(textwrap.dedent(data))
    return path


@pytest.fixture()
def model(tmp_path) -> Path:
    from inferops.models import build

    return Path(build("mlp", tmp_path / "new.onnx"))


def _rollout(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "inferops", "rollout", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def _view(inventory: Path, state_dir: Path) -> dict:
    """fleet_view.load in a child process: pyinfra_cli gevent-patches its importer."""
    code = (
        "import dataclasses, json, sys; from inferops.release import fleet_view; "
        "v = fleet_view.load(sys.argv[1]); "
        "print(json.dumps({**dataclasses.asdict(v), 'store': v.store}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(inventory)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "INFEROPS_STATE_DIR": str(state_dir)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_fleet_read_from_the_inventory_and_its_group_data(tmp_path):
    inventory = _inventory(
        tmp_path,
        data="""
        server_model_name = "ranker"
        server_token_name = "fleet"
        lb_listen = "0.0.0.0:8080"
        """,
    )
    view = _view(inventory, tmp_path / "state")
    assert [n["name"] for n in view["nodes"]] == ["cpu-1", "cpu-2", "cpu-3"]
    assert view["nodes"][1]["url"] == "http://10.9.0.2:8000"
    assert view["nodes"][0]["token_file"] == str(tmp_path / "state" / "tokens" / "fleet")
    assert (view["lb_name"], view["lb_url"]) == ("lb-1", "http://10.9.0.50:8080")
    # one shared token: it works through nginx
    assert view["lb_token_file"] == view["nodes"][0]["token_file"]
    assert view["model_name"] == "ranker"
    assert view["store"] == "/opt/inferops/models/ranker"


def test_fact_output_of_the_real_pyinfra_cli_is_read(tmp_path):
    """``pyinfra @local fact`` of the store fact, on a real directory, parsed back."""
    store = tmp_path / "store"
    (store / "v1-aaaaaaaaaaaa").mkdir(parents=True)
    (store / "v1-aaaaaaaaaaaa" / "model.onnx").write_bytes(b"x")
    (store / "current").symlink_to("v1-aaaaaaaaaaaa")
    proc = subprocess.run(
        [sys.executable, "-m", "pyinfra", "@local", "fact", "inferops.deploy.model_store.ModelVersions",
         f"path={store}"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    facts = fleet_view._fact_json(proc.stdout + proc.stderr)
    assert facts["@local"]["current"] == "v1-aaaaaaaaaaaa"
    assert list(facts["@local"]["stored"]) == ["v1-aaaaaaaaaaaa"]


@pytest.mark.parametrize(
    "setup, args, message",
    [
        ({}, ["--rate", "5", "--steps", "50,10"], "--steps must increase"),
        ({}, ["--rate", "5", "--steps", "0,100"], "--steps must be weights in 1..100"),
        ({}, ["--rate", "0"], "--rate must be > 0"),
        ({}, ["--rate", "5", "--late-tolerance-ms", "0"], "--late-tolerance-ms must be > 0"),
        ({}, ["--rate", "5", "--late-tolerance-ms", "nan"], "--late-tolerance-ms"),
        ({}, ["--rate", "5", "--version", "v 2"], "--version must be a version label"),
        ({}, ["--at-capacity"], "--at-capacity needs --runs"),
        ({}, ["--rate", "5", "--runs", "x"], "--runs is for --at-capacity"),
        ({}, ["--rate", "5", "--interval", "soon"], "--interval"),
        ({"lb": False}, ["--rate", "5"], "exactly one host in the 'loadbalancer' group"),
        ({"nodes": 1}, ["--rate", "5"], "at least 2 inference hosts"),
        ({}, ["--rate", "5", "--canary", "gpu-9"], "--canary 'gpu-9' is not an inference host"),
        ({}, ["--rate", "5", "--abort"], "--abort: no rollout recorded"),
        ({}, ["--rate", "5", "--min-effect", "lots"], "--min-effect"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, model, setup, args, message):
    inventory = _inventory(tmp_path, **setup)
    proc = _rollout(
        "--inventory", inventory, "--model", model, "--out", tmp_path / "out", *args, cwd=REPO
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_not_an_onnx_file_exits_2(tmp_path):
    proc = _rollout(
        "--inventory", _inventory(tmp_path), "--model", tmp_path / "x.txt", "--rate", "5", cwd=REPO
    )
    assert proc.returncode == 2 and "--model: not an .onnx file" in proc.stderr


def test_unreachable_nodes_exit_2_before_any_change(tmp_path, model):
    """The served versions are read first; hosts that cannot be reached stop it there."""
    inventory = _inventory(tmp_path, data="ssh_connect_retries = 0\nssh_connect_timeout = 1\n")
    proc = _rollout(
        "--inventory", inventory, "--model", model, "--rate", "5", "--out", tmp_path / "out",
        cwd=REPO,
    )  # fmt: skip
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "out" / "state.json").exists()


def test_a_load_test_too_short_for_a_p99_is_lengthened_and_says_so(capsys):
    """40 req/s for 12 s plans ~480 requests: a Poisson count of that mean falls below the
    459 a P99 needs in ~17 % of tests (an invalid baseline, retried, then exit 3)."""
    from inferops.release.rollout_cli import _planned_duration

    assert _planned_duration(12.0, 40.0) == 15.0
    assert "each load test runs 15s" in capsys.readouterr().out
    assert _planned_duration(20.0, 46.0) == 20.0  # 920 planned: as given, nothing said
    assert capsys.readouterr().out == ""
    assert _planned_duration(12.0, 46.0) == pytest.approx(13.1)  # rounded up to 0.1 s
