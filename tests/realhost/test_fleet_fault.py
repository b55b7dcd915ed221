"""A node of ``lb_fleet`` crashes mid-run behind nginx: errors appear briefly and then stop.

The run goes through nginx at a steady open-loop rate; a few seconds in, node 3's server
hangs for a second and is killed (and stays down). The requests nginx had already sent to
it fail (a POST that reached an upstream is never re-sent); after that nginx's passive
health check keeps the node out and refused connections go to the next node, so the
errors stop. The run folder records when and how many: ``timeseries.csv`` per second and
``summary.error_bursts``; the report shades the burst on its time-series chart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

pytestmark = pytest.mark.realhost

RATE = 60
DURATION_S = 20
KILL_AT_S = 4.0


def test_errors_from_a_lost_node_are_brief_and_recorded(lb_fleet, tmp_path):
    out = tmp_path / "fault-run"
    cmd = [
        sys.executable, "-m", "inferops", "bench", "--target", lb_fleet.url, "--model", "mlp",
        "--rate", str(RATE), "--duration", f"{DURATION_S}s", "--warmup", "1s", "--nodes", "3",
        "--timeout", "20s", "--out", str(out), "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "INFEROPS_TOKEN": lb_fleet.token}
    victim = lb_fleet.nodes[2]
    bench = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)  # fmt: skip
    killed_at: list[float] = []
    failed: list[BaseException] = []

    def kill() -> None:
        time.sleep(1.0 + KILL_AT_S)  # after the warm-up, into the measured window
        killed_at.append(time.time())
        try:
            lb_fleet.kill_server(victim)
        except BaseException as exc:  # re-raised in the test's thread
            failed.append(exc)

    killer = threading.Thread(target=kill)
    killer.start()
    try:
        output, _ = bench.communicate(timeout=120)
    finally:
        killer.join()
        lb_fleet.revive_server(victim)
    assert not failed, failed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] > RATE * DURATION_S * 0.8, output
    bursts = summary.get("error_bursts")
    assert summary["failures"] > 0 and bursts, output  # the crash cost some requests ...
    assert len(bursts) == 1, bursts  # ... in one burst ...
    burst = bursts[0]
    assert burst["errors"] == summary["failures"]
    assert burst["end_s"] - burst["start_s"] <= 4, burst  # ... that was brief ...
    # ... and over for good: nothing more in the 10 s after it, twice nginx's fail_timeout
    # (5 s), after which a node that only sat out its timeout would be tried, and fail, again
    assert burst["end_s"] <= DURATION_S - 10, burst
    assert summary["failures"] < 0.05 * summary["requests"], summary["failures"]

    # the same burst, second by second, in timeseries.csv
    import pandas as pd

    frame = pd.read_csv(out / "timeseries.csv")
    measured = frame[frame["t_s"] >= 0]
    with_errors = measured[measured["errors"] > 0]
    assert int(with_errors["errors"].sum()) == summary["failures"]
    epoch = measured["t"] if "t" in measured else None
    if epoch is not None:  # the errors came after the kill, not before
        assert (with_errors["t"] >= int(killed_at[0]) - 1).all(), (with_errors, killed_at)

    # the report shows the burst on the run's time-series chart
    html = tmp_path / "report.html"
    report = subprocess.run(
        [sys.executable, "-m", "inferops", "report", str(out), "--out", str(html),
         "--target-qps", str(RATE), "--slo-p99-ms", "1000"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert report.returncode in (0, 1), report.stderr
    text = html.read_text()
    assert "error burst" in text and f"{burst['errors']} errors" in text
