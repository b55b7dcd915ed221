"""``inferops bench`` against real law servers: accuracy, CO correction, exit codes, sweep.

The law servers (tests/load/lawserver.py) are real HTTP processes on
127.0.0.1 whose latency law has a known P99, so every check compares the
engine's numbers with ground truth.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from inferops.measure.runformat import read_hdr
from tests.load.lawserver import p99_ms
from tests.load.procs import PY, ROOT, LawServer, kill_group, run_bench, run_bench_measured

pytestmark = pytest.mark.slow

#: the shared 2-core machine delays sends by scheduler noise; tests that are not
#: about late sends allow 20 ms so their verdicts do not depend on the neighbours
TOLERANT = ["--late-tolerance-ms", "20"]


def _summary(folder) -> dict:
    return json.loads((folder / "summary.json").read_text())


def _thresholds(tmp_path, text: str):
    path = tmp_path / "thresholds.toml"
    path.write_text(text)
    return str(path)


def test_open_loop_p99_matches_ground_truth(law_server, tmp_path):
    law = "exp:4"  # exponential service, mean 4 ms: P99 = 4 ln 100 = 18.4 ms
    server = law_server(law)
    out = tmp_path / "run"
    res = run_bench_measured(
        [
            "--target",
            server.url,
            "--model",
            "law",
            "--rate",
            "250",
            "--duration",
            "4s",
            "--warmup",
            "1s",
            *TOLERANT,
            "--thresholds",
            _thresholds(tmp_path, "p99_latency_ms = 200\n"),
        ],
        out,
    )
    assert res.returncode == 0, res.stderr
    s = _summary(out)
    truth = p99_ms(law)
    # sampling error of a P99 from ~1000 samples is ~5 %; the Python server's own
    # overhead on a busy 2-core machine adds up to a few ms to every reply
    assert truth * 0.85 <= s["latency_ms"]["p99"] <= truth * 1.15 + 3.0
    assert 4 * 0.693 * 0.85 <= s["latency_ms"]["p50"] <= 4 * 0.693 + 3.0
    assert s["valid"] and s["passed"] and s["early_stopping"]["ok"]
    assert read_hdr(out / "latency.hdr").get_total_count() == s["requests"]
    assert res.stdout.strip().splitlines()[-1] == f"run folder: {out}"
    for name in (
        "manifest.json",
        "timeseries.csv",
        "service_time.hdr",
        "locust_stats.csv",
        "locust_stats_history.csv",
        "locust.html",
    ):
        assert (out / name).is_file(), name
    header = (out / "timeseries.csv").read_text().splitlines()[0]
    assert header.startswith("t_s,offered_qps,achieved_qps,p50_ms,p99_ms,errors,cpu_pct")


def test_open_loop_sees_stalls_closed_loop_hides_them(law_server, tmp_path):
    law = "stall:1000:200:1"  # frozen 200 ms of every second: true P99 = 191 ms
    server = law_server(law)
    truth = p99_ms(law)
    open_out, closed_out = tmp_path / "open", tmp_path / "closed"
    res = run_bench_measured(
        [
            "--target",
            server.url,
            "--model",
            "law",
            "--rate",
            "200",
            "--duration",
            "5s",
            "--warmup",
            "0.5s",
            *TOLERANT,
        ],
        open_out,
    )
    assert res.returncode in (0, 1), res.stderr
    res = run_bench(
        [
            "--target",
            server.url,
            "--model",
            "law",
            "--users",
            "2",
            "--duration",
            "5s",
            "--warmup",
            "0.5s",
            "--out",
            str(closed_out),
        ]
    )
    assert res.returncode in (0, 1, 3), res.stderr
    open_p99 = _summary(open_out)["latency_ms"]["p99"]
    closed = _summary(closed_out)
    assert truth * 0.85 <= open_p99 <= truth * 1.1 + 5
    # the closed loop's two users sit out each freeze: few samples see it
    assert closed["mode"] == "closed" and closed["offered_qps"] is None
    assert closed["latency_ms"]["p99"] < truth * 0.5
    assert closed["latency_ms"]["max"] >= 150  # the stall is there, just under-weighted


def test_exit_codes(law_server, tmp_path):
    server = law_server("fixed:2")
    common = [
        "--target",
        server.url,
        "--model",
        "law",
        "--duration",
        "2s",
        "--warmup",
        "0.5s",
        *TOLERANT,
    ]
    ok = _thresholds(tmp_path, "p99_latency_ms = 500\nmax_error_rate = 0.01\n")
    res = run_bench([*common, "--rate", "300", "--out", str(tmp_path / "a"), "--thresholds", ok])
    assert res.returncode == 0, res.stderr
    # P99 limit 1 ms against a 2 ms server: breach (1), and named
    tight = _thresholds(tmp_path, "p99_latency_ms = 1\n")
    res = run_bench([*common, "--rate", "300", "--out", str(tmp_path / "b"), "--thresholds", tight])
    assert res.returncode == 1, res.stderr
    assert "breach: p99_latency_ms" in res.stderr
    assert _summary(tmp_path / "b")["passed"] is False
    # too few samples for a P99 claim: invalid (3)
    res = run_bench([*common, "--rate", "20", "--out", str(tmp_path / "c"), "--thresholds", ok])
    assert res.returncode == 3
    assert "too few samples" in res.stderr
    assert _summary(tmp_path / "c")["valid"] is False


def test_usage_errors_exit_2_and_write_nothing(tmp_path):
    out = tmp_path / "never"
    bad_key = _thresholds(tmp_path, "p99_latncy_ms = 5\n")
    cases = [
        (["--rate", "10", "--thresholds", bad_key], "p99_latncy_ms"),
        (["--rate", "-5"], "--rate must be > 0"),
        (["--rate", "10", "--duration", "soon"], "--duration"),
        (["--rate", "10", "--users", "3"], "not allowed with"),
        ([], "one of --rate"),
        (["--rate", "10", "--protocol", "grpc"], "--protocol"),
    ]
    for extra, needle in cases:
        res = run_bench(
            ["--target", "http://127.0.0.1:9", "--model", "m", "--out", str(out), *extra],
            timeout=60,
        )
        assert res.returncode == 2, (extra, res.stderr)
        assert needle in res.stderr, (extra, res.stderr)
        assert len(res.stderr.strip().splitlines()) <= 2, res.stderr
    res = run_bench(["--target", "127.0.0.1:80", "--model", "m", "--rate", "5"])
    assert res.returncode == 2 and "--target" in res.stderr
    assert not out.exists()


def test_unreachable_target_is_invalid(tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "dead"
    res = run_bench(
        [
            "--target",
            f"http://127.0.0.1:{port}",
            "--model",
            "law",
            "--rate",
            "10",
            "--duration",
            "1s",
            "--out",
            str(out),
        ]
    )
    assert res.returncode == 3
    s = _summary(out)
    assert s["partial"] is True and s["valid"] is False
    assert any("unreachable" in r for r in s["validity"])


def _start_bench(args):
    return subprocess.Popen(
        [PY, "-m", "inferops", "bench", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for_progress(proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stderr.readline()
        if "req, p99" in line:  # the engine's progress line: the load is running
            return
    raise AssertionError("bench never reported progress")


def test_sigint_leaves_a_partial_folder(law_server, tmp_path):
    server = law_server("fixed:1")
    out = tmp_path / "int"
    proc = _start_bench(
        [
            "--target",
            server.url,
            "--model",
            "law",
            "--rate",
            "100",
            "--duration",
            "60s",
            "--warmup",
            "0s",
            "--out",
            str(out),
        ]
    )
    try:
        _wait_for_progress(proc)
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    assert proc.returncode == 3, stderr
    s = _summary(out)
    assert s["partial"] is True and s["requests"] > 0
    assert any("SIGINT" in r for r in s["validity"])
    assert stdout.strip().splitlines()[-1] == f"run folder: {out}"
    for name in ("manifest.json", "timeseries.csv", "latency.hdr", "locust_stats.csv"):
        assert (out / name).is_file()
    assert s["duration_s"] < 30


def test_server_dying_mid_run_leaves_a_partial_folder(tmp_path):
    server = LawServer("fixed:1")
    out = tmp_path / "died"
    proc = _start_bench(
        [
            "--target",
            server.url,
            "--model",
            "law",
            "--rate",
            "100",
            "--duration",
            "60s",
            "--warmup",
            "0s",
            "--out",
            str(out),
        ]
    )
    try:
        _wait_for_progress(proc)
        time.sleep(1.0)
        server.stop()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
        server.stop()
    assert proc.returncode == 3, stderr
    s = _summary(out)
    assert s["partial"] is True and s["failures"] > 0
    assert any("stopped answering" in r for r in s["validity"])


def _short_sweep(server, out, *, slo_ms: float, start: float, precision: float) -> list[str]:
    """``bench --sweep`` at a law server with 2 s steps (0.5 s warm-up), late sends tolerated."""
    return [
        "--target",
        server.url,
        "--model",
        "law",
        "--sweep",
        "--slo-p99-ms",
        f"{slo_ms:g}",
        "--sweep-start",
        f"{start:g}",
        "--sweep-precision",
        f"{precision:g}",
        "--duration",
        "2s",
        "--warmup",
        "0.5s",
        "--out",
        str(out),
        *TOLERANT,
    ]


def test_sweep_finds_a_known_capacity(law_server, tmp_path):
    server = law_server("serial:3")  # one at a time, 3 ms each: at most 333 req/s
    capacity = 1000 / 3
    out = tmp_path / "sweep"
    res = run_bench(
        [
            *_short_sweep(server, out, slo_ms=60, start=100, precision=0.05),
            "--thresholds",
            _thresholds(tmp_path, "max_error_rate = 0.01\n"),
        ],
        timeout=240,
    )
    assert res.returncode == 0, res.stderr
    s = _summary(out)
    slo = s["slo"]
    assert s["mode"] == "sweep" and slo["converged"]
    assert 0.55 * capacity <= slo["max_qps"] <= 1.02 * capacity
    steps = slo["steps"]
    assert any(not st["ok"] for st in steps)  # the search saw the SLO break
    for st in steps:
        assert (out / st["dir"] / "summary.json").is_file()
        if st["offered_qps"] > capacity * 1.05:
            assert not st["ok"]
    assert s["offered_qps"] == slo["max_qps"]


def test_sweep_lets_an_overloaded_target_recover(law_server, tmp_path):
    """A serial server keeps computing requests its clients gave up on (0.5 s timeout).

    The first step, at 2x its capacity, leaves seconds of such work queued. Without
    the wait (``--sweep-settle-max 0``) the next step inherits the queue, the target
    looks dead and the sweep ends with no capacity (seen: two runs of two, 10 s each);
    with it, the sweep probes until the queue is gone and finds the capacity.
    """
    server = law_server("serial:5")  # 5 ms each, one at a time: 200 req/s at most
    out = tmp_path / "sweep"
    res = run_bench(
        [
            *_short_sweep(server, out, slo_ms=50, start=400, precision=0.3),
            "--sweep-max-steps",
            "5",
            "--timeout",
            "0.5s",
        ],
        timeout=300,
    )
    s = _summary(out)
    slo = s["slo"]
    assert not s["partial"], res.stderr
    assert slo["max_qps"] is not None and 50 <= slo["max_qps"] <= 200, res.stderr
    first_after = slo["steps"][1]
    assert first_after["recovered"] is True and first_after["settled_s"] > 0
    probes = sorted(p.name for p in (out / "settle").iterdir())
    assert probes[0] == "01-0"
    for name in probes:
        probe = _summary(out / "settle" / name)
        assert probe["mode"] == "closed" and probe["offered_qps"] is None  # one user, no rate
    assert "overloaded the target" in res.stderr


def test_bearer_token(law_server, tmp_path):
    server = law_server("fixed:1", token="s3cret")
    common = [
        "--target",
        server.url,
        "--model",
        "law",
        "--rate",
        "50",
        "--duration",
        "1s",
        "--warmup",
        "0s",
    ]
    res = run_bench([*common, "--out", str(tmp_path / "no")])
    assert res.returncode == 2 and "--token" in res.stderr
    assert not (tmp_path / "no").exists()
    res = run_bench([*common, "--out", str(tmp_path / "yes"), "--token", "s3cret"])
    s = _summary(tmp_path / "yes")
    assert s["requests"] > 0 and s["failures"] == 0, res.stderr


def test_step_scenario_shapes_the_offered_rate(law_server, tmp_path):
    server = law_server("fixed:1")
    out = tmp_path / "step"
    run_bench(
        [
            "--target",
            server.url,
            "--model",
            "law",
            "--rate",
            "300",
            "--scenario",
            "step",
            "--steps",
            "2",
            "--arrivals",
            "constant",
            "--duration",
            "4s",
            "--warmup",
            "0s",
            "--out",
            str(out),
        ]
    )
    import csv

    with open(out / "timeseries.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if 0 <= float(r["t_s"]) < 4]
    # rows are whole epoch seconds; take those lying wholly inside each plateau
    first = [int(r["offered_qps"]) for r in rows if float(r["t_s"]) + 1 <= 2]
    second = [int(r["offered_qps"]) for r in rows if 2 <= float(r["t_s"]) <= 3]
    assert first and second
    assert all(v == pytest.approx(150, abs=3) for v in first), first
    assert all(v == pytest.approx(300, abs=3) for v in second), second


def test_saturated_generator_is_invalid(law_server, tmp_path):
    server = law_server("fixed:0")
    out = tmp_path / "flood"
    # far beyond what one Python process can send: late sends and a busy CPU
    res = run_bench(
        [
            "--target",
            server.url,
            "--model",
            "law",
            "--rate",
            "30000",
            "--duration",
            "1.5s",
            "--warmup",
            "0s",
            "--out",
            str(out),
        ]
    )
    assert res.returncode == 3
    s = _summary(out)
    assert s["valid"] is False and s["late_sends_pct"] > 1
    assert any("load generator limited" in r for r in s["validity"])


def test_inflight_cap_invalidates(law_server, tmp_path):
    server = law_server("stall:1000:500:1")
    out = tmp_path / "cap"
    res = run_bench(
        [
            "--target",
            server.url,
            "--model",
            "law",
            "--rate",
            "200",
            "--max-inflight",
            "5",
            "--duration",
            "1.5s",
            "--warmup",
            "0s",
            "--out",
            str(out),
            *TOLERANT,
        ]
    )
    assert res.returncode == 3
    s = _summary(out)
    assert s["dropped"] > 0
    assert any("in-flight cap (5) reached" in r for r in s["validity"])


def test_host_metrics_from_the_targets_node_exporter(law_server, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exporter = subprocess.Popen(
        ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = law_server("fixed:1")
    try:
        url = f"http://127.0.0.1:{port}"
        import urllib.request

        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                urllib.request.urlopen(url + "/metrics", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        out = tmp_path / "ne"
        res = run_bench(
            [
                "--target",
                server.url,
                "--model",
                "law",
                "--rate",
                "100",
                "--duration",
                "3s",
                "--warmup",
                "0s",
                "--out",
                str(out),
                "--node-exporter",
                url,
            ]
        )
        assert res.returncode in (0, 1, 3), res.stderr
        s = _summary(out)
        assert s["host"]["cpu_pct_max"] is not None and s["host"]["memory_pct_max"] > 0
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["load"]["host_metrics_from"] == url + "/metrics"
    finally:
        kill_group(exporter)
    # a dead exporter address is a usage error before any load
    res = run_bench(
        [
            "--target",
            server.url,
            "--model",
            "law",
            "--rate",
            "10",
            "--out",
            str(tmp_path / "x"),
            "--node-exporter",
            url,
        ]
    )
    assert res.returncode == 2 and "--node-exporter" in res.stderr
    assert not (tmp_path / "x").exists()


def test_host_sampler_child_never_outlives_the_generator(tmp_path):
    script = tmp_path / "gen.py"
    script.write_text(
        "import os, time\n"
        "from inferops.measure.sampler_process import ProcessSampler\n"
        "s = ProcessSampler(os.getpid()).start()\n"
        "print(s._proc.pid, s._path, flush=True)\n"
        "time.sleep(1.2)\n"
        "os._exit(0)  # killed without stop()\n"
    )
    out = subprocess.run([PY, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=30)
    pid, path = out.stdout.split()
    deadline = time.time() + 10
    while time.time() < deadline and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{pid}"), "sampler child still running"
    assert not os.path.exists(path)


def test_step_scenario_scales_closed_loop_users(law_server, tmp_path):
    import csv

    server = law_server("fixed:2")
    out = tmp_path / "closed-step"
    run_bench(
        ["--target", server.url, "--model", "law", "--users", "4", "--scenario", "step",
         "--steps", "2", "--duration", "4s", "--warmup", "0s", "--out", str(out)]
    )  # fmt: skip
    with open(out / "locust_stats_history.csv", newline="") as fh:
        counts = {int(r["User Count"]) for r in csv.DictReader(fh)}
    assert {2, 4} <= counts  # half the users on the first plateau, all on the second
