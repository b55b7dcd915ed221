"""``locust -f loadtests/`` itself (workers merging) and end-to-end runs on the real server."""

from __future__ import annotations

import csv
import json
import subprocess

import pytest

from inferops.measure.runformat import read_hdr
from tests.load.procs import ROOT, run_bench

pytestmark = pytest.mark.slow

LOCUST = str(ROOT / ".venv" / "bin" / "locust")


def _locust(args, timeout=90):
    return subprocess.run(
        [LOCUST, "-f", str(ROOT / "loadtests"), "--headless", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _aggregated_requests(folder) -> int:
    with open(folder / "locust_stats.csv", newline="") as fh:
        rows = {r["Name"]: r for r in csv.DictReader(fh)}
    return int(rows["Aggregated"]["Request Count"])


def test_processes_merge_every_workers_histogram(law_server, tmp_path):
    server = law_server("fixed:2")
    out = tmp_path / "workers"
    res = _locust(
        [
            "-H",
            server.url,
            "--model",
            "law",
            "--arrival-rate",
            "200",
            "-t",
            "4s",
            "--processes",
            "2",
            "--run-folder",
            str(out),
            "--late-tolerance-ms",
            "20",
            "--slo-p99-ms",
            "500",
        ]
    )
    s = json.loads((out / "summary.json").read_text())
    assert res.returncode == 0, res.stderr[-2000:]
    # the master's merged histogram holds exactly the sum of what both workers
    # measured (Locust's own count also has the requests after the window)
    assert s["workers"]["count"] == 2 and min(s["workers"]["samples"]) > 0
    assert s["requests"] == sum(s["workers"]["samples"])
    assert read_hdr(out / "latency.hdr").get_total_count() == s["requests"]
    assert 0 < s["requests"] <= _aggregated_requests(out)
    # each of the two schedulers sent half the rate: the total is the asked rate
    assert s["achieved_qps"] == pytest.approx(200, rel=0.15)
    assert s["mode"] == "open" and s["early_stopping"]["ok"]


@pytest.fixture(scope="module")
def mlp_server():
    from inferops.server.process import ServerProcess

    with ServerProcess(model="mlp") as server:
        yield server


@pytest.mark.parametrize("protocol", ["v2", "predict"])
def test_bench_against_the_reference_server(mlp_server, tmp_path, protocol):
    out = tmp_path / protocol
    res = run_bench(
        [
            "--target",
            mlp_server.url,
            "--model",
            "mlp",
            "--protocol",
            protocol,
            "--rate",
            "200",
            "--duration",
            "3s",
            "--warmup",
            "0.5s",
            "--out",
            str(out),
            "--late-tolerance-ms",
            "20",
            "--profile",
            "e2e",
            "--thresholds",
            str(ROOT / "tests/load/e2e_thresholds.toml"),
        ]
    )
    assert res.returncode == 0, res.stderr
    s = json.loads((out / "summary.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert s["protocol"] == protocol and s["failures"] == 0 and s["requests"] >= 459
    assert manifest["profile"] == "e2e"
    assert 0 < s["latency_ms"]["p50"] <= s["latency_ms"]["p99"] <= s["latency_ms"]["max"]


def test_locust_headless_against_the_reference_server(mlp_server, tmp_path):
    out = tmp_path / "locust"
    res = _locust(
        [
            "-H",
            mlp_server.url,
            "--model",
            "mlp",
            "--arrival-rate",
            "200",
            "-t",
            "3s",
            "--run-folder",
            str(out),
            "--late-tolerance-ms",
            "20",
            "--thresholds",
            str(ROOT / "tests/load/e2e_thresholds.toml"),
        ]
    )
    assert res.returncode == 0, res.stderr[-2000:]
    s = json.loads((out / "summary.json").read_text())
    assert s["failures"] == 0 and s["passed"]
    # a threshold the server cannot meet turns Locust's exit code into 1
    tight = tmp_path / "tight.toml"
    tight.write_text("p99_latency_ms = 0.001\n")
    res = _locust(
        [
            "-H",
            mlp_server.url,
            "--model",
            "mlp",
            "--arrival-rate",
            "200",
            "-t",
            "3s",
            "--late-tolerance-ms",
            "20",
            "--thresholds",
            str(tight),
        ]
    )
    assert res.returncode == 1, res.stderr[-2000:]


def test_web_ui_mode_runs_the_same_scenario(law_server, tmp_path):
    import socket
    import time
    import urllib.request

    from tests.load.procs import kill_group

    server = law_server("fixed:1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ui"
    proc = subprocess.Popen(
        [
            LOCUST,
            "-f",
            str(ROOT / "loadtests"),
            "-H",
            server.url,
            "--model",
            "law",
            "--arrival-rate",
            "100",
            "-t",
            "3s",
            "--autostart",
            "--autoquit",
            "0",
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(port),
            "--run-folder",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        page = b""
        deadline = time.time() + 20
        while time.time() < deadline and not page:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
            except OSError:
                time.sleep(0.2)
        assert b"locust" in page.lower()
        proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    s = json.loads((out / "summary.json").read_text())
    assert s["requests"] > 0 and s["mode"] == "open"
