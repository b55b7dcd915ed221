"""``inferops bench --workers N``: real Locust master and worker processes, a real server.

Counts, never wall-clock speed: with ``--seed`` the cluster must send exactly
the arrivals of the one global schedule in the window, whatever N is.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import time

import psutil
import pytest

from inferops.load.split import walk
from tests.load.procs import PY, ROOT, kill_group

pytestmark = pytest.mark.slow


def _bench(url: str, out, *extra) -> list[str]:
    return [
        PY,
        "-m",
        "inferops",
        "bench",
        "--quiet",
        "--target",
        url,
        "--model",
        "law",
        "--out",
        str(out),
        # this test judges counts; a busy 2-core box may lag by tens of ms
        "--late-tolerance-ms",
        "100",
        *extra,
    ]


def _scheduled(rate: float, seed: int, start: float, end: float) -> int:
    offsets = itertools.takewhile(
        lambda o: o < end, (o for o, _ in walk(lambda t: rate, kind="poisson", seed=seed))
    )
    return sum(1 for o in offsets if o >= start)


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_the_cluster_sends_exactly_the_global_schedule(law_server, tmp_path, workers):
    server = law_server("fixed:1")
    out = tmp_path / "run"
    rate, seed, warmup, duration = 400.0, 21, 0.5, 2.0
    res = subprocess.run(
        _bench(server.url, out, "--rate", "400", "--duration", "2s", "--warmup", "0.5s")
        + ["--seed", str(seed), "--workers", str(workers)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode in (0, 1, 3), res.stderr[-2000:]
    s = json.loads((out / "summary.json").read_text())
    expected = _scheduled(rate, seed, warmup, warmup + duration)
    # one global schedule: the same arrivals as one process with this seed
    # (an arrival may be sent up to 1 ms early, which can move one across an edge)
    assert abs(s["requests"] - expected) <= 3, (s["requests"], expected)
    assert expected == pytest.approx(rate * duration, rel=0.06)  # the seed's schedule is ordinary
    assert s["failures"] == 0 and s["dropped"] == 0
    nodes = s["workers"]["nodes"]
    assert len(nodes) == workers == s["workers"]["count"] and s["workers"]["seed"] == seed
    assert sum(n["samples"] for n in nodes) == s["requests"]
    for n in nodes:  # equal shares (binomial spread of a 1/N split of ~800)
        assert n["samples"] == pytest.approx(s["requests"] / workers, rel=0.25)
        assert n["pid"] and n["cpu_pct_max"] is not None and n["inflight_max"] >= 1


def _workers_of(proc: subprocess.Popen, n: int, timeout: float = 60.0) -> list[psutil.Process]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        kids = [
            c
            for c in psutil.Process(proc.pid).children(recursive=True)
            if "--worker" in c.cmdline()
        ]
        if len(kids) >= n:
            return kids
        time.sleep(0.1)
    raise AssertionError("workers did not start")


def _until_sending(worker: psutil.Process, port: int, timeout: float = 60.0) -> None:
    """The worker sends its share once it holds a connection to the server."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(c.raddr and c.raddr.port == port for c in worker.net_connections("tcp")):
            return
        time.sleep(0.05)
    raise AssertionError("the worker never connected to the server")


def test_a_worker_that_dies_is_resplit_and_the_survivor_takes_the_whole_rate(law_server, tmp_path):
    server = law_server("fixed:1")
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _bench(server.url, out, "--rate", "200", "--duration", "12s", "--warmup", "0s")
        + ["--workers", "2", "--seed", "5"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        victim = _workers_of(proc, 2)[0]
        _until_sending(victim, server.port)
        victim.send_signal(signal.SIGKILL)
        proc.wait(timeout=120)
    finally:
        kill_group(proc)
    s = json.loads((out / "summary.json").read_text())
    changes = s["workers"]["changes"]
    left = [c for c in changes if "left" in c]
    assert len(left) == 1 and f"pid {victim.pid}" in left[0]["left"], changes
    # after the re-split the survivor sends the whole rate (count per second)
    with open(out / "timeseries.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh)]
    after = [
        int(r["offered_qps"])
        for r in rows
        if left[0]["effective_s"] + 1 <= float(r["t_s"]) < s["duration_s"] - 1
    ]
    assert len(after) >= 2, (left, s["duration_s"])
    assert sum(after) / len(after) == pytest.approx(200, rel=0.2)
    # its share went unsent until the re-split: the run is invalid and says why
    assert s["valid"] is False
    assert any("left mid-run" in r and f"pid {victim.pid}" in r for r in s["validity"])


def test_a_stalled_worker_is_named_and_invalidates_the_run(law_server, tmp_path):
    server = law_server("fixed:1")
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _bench(server.url, out, "--rate", "200", "--duration", "4s", "--warmup", "0s")
        + ["--workers", "2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stalled = _workers_of(proc, 2)[1]
        _until_sending(stalled, server.port)
        os.kill(stalled.pid, signal.SIGSTOP)  # a saturated worker, made on purpose
        time.sleep(1.0)
        os.kill(stalled.pid, signal.SIGCONT)
        assert proc.wait(timeout=120) == 3
    finally:
        kill_group(proc)
    s = json.loads((out / "summary.json").read_text())
    assert s["valid"] is False
    named = [r for r in s["validity"] if f"pid {stalled.pid}" in r]
    assert named and "late" in named[0], s["validity"]
    others = [n for n in s["workers"]["nodes"] if n["pid"] != stalled.pid]
    assert len(others) == 1 and not any(f"pid {others[0]['pid']}" in r for r in s["validity"])


def test_master_and_worker_started_separately(law_server, tmp_path):
    """``bench --master`` here and ``bench --worker --master-host`` elsewhere (here: 127.0.0.1)."""
    import socket

    server = law_server("fixed:1")
    with socket.socket() as sock:  # a free port for the master
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "run"
    master = subprocess.Popen(
        _bench(server.url, out, "--rate", "300", "--duration", "2s", "--warmup", "0s")
        + ["--master", "--expect-workers", "1", "--master-bind-host", "127.0.0.1"]
        + ["--master-port", str(port), "--seed", "3"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    worker = subprocess.Popen(
        [PY, "-m", "inferops", "bench", "--worker", "--master-host", "127.0.0.1"]
        + ["--master-port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        master.wait(timeout=120)
        assert worker.wait(timeout=30) == 0  # the master told it to quit
    finally:
        kill_group(master)
        kill_group(worker)
    s = json.loads((out / "summary.json").read_text())
    assert abs(s["requests"] - _scheduled(300.0, 3, 0.0, 2.0)) <= 3
    assert s["workers"]["count"] == 1 and s["workers"]["nodes"][0]["pid"] == worker.pid


def test_worker_without_master_host_is_a_usage_error():
    res = subprocess.run(
        [PY, "-m", "inferops", "bench", "--worker"], cwd=ROOT, capture_output=True, text=True
    )
    assert res.returncode == 2 and "--master-host" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
