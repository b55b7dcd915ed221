"""``deploys/loadgen.py`` on a real host: a Locust worker under systemd on a test host,
pointed at a master on this machine, sends its share of one ``inferops bench --master``
run through the fleet's nginx; a second deploy run changes nothing.

The worker host is the third inference node of ``lb_fleet`` (its Python environment is
already there from ``cpu_node``), uncapped while the deploy installs the load stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.hosts.pyinfra_run import REPO
from tests.realhost.deploying import assert_no_changes

pytestmark = pytest.mark.realhost

LOADGEN = REPO / "deploys/loadgen.py"
WORKER = "inferops-loadgen-worker@1.service"


def test_a_deployed_worker_sends_its_share_of_a_master_run(lb_fleet, tmp_path):
    host = lb_fleet.nodes[2]
    master = lb_fleet.fleet.net.gateway  # this machine, as the test hosts reach it
    port = "5581"  # not Locust's default: no other master on this machine answers it
    options = (
        "--limit", host.name, "--data", f"loadgen_master_host={master}",
        "--data", f"loadgen_master_port={port}", "--data", "loadgen_workers=1",
    )  # fmt: skip
    quota = lb_fleet.fleet.cpu_quota(host)
    lb_fleet.fleet.set_cpu_quota(host, None)  # pip on a 25 %-capped host is slow, not wrong
    try:
        first = lb_fleet.deployer.run(LOADGEN, fleet_file=lb_fleet.fleet_file, options=options)
        assert first.returncode == 0, first.tail()
        again = lb_fleet.deployer.run(LOADGEN, fleet_file=lb_fleet.fleet_file, options=options)
        assert_no_changes(again)
        state = lb_fleet.fleet.ssh(host, f"systemctl is-active {WORKER}").stdout.strip()
        assert state in ("active", "activating"), state

        out = tmp_path / "run"
        run = subprocess.run(
            [sys.executable, "-m", "inferops", "bench", "--master", "--expect-workers", "1",
             "--master-bind-host", master, "--master-port", port, "--target", lb_fleet.url,
             "--model", "mlp", "--rate", "100", "--duration", "6s", "--warmup", "1s",
             "--late-tolerance-ms", "50", "--out", str(out), "--quiet"],
            cwd=REPO, env={**os.environ, "INFEROPS_TOKEN": lb_fleet.token},
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert run.returncode in (0, 1), run.stdout + run.stderr  # 1: a threshold, not a fault
        summary = json.loads((out / "summary.json").read_text())
        workers = summary["workers"]
        assert workers["count"] == 1
        (node,) = workers["nodes"]
        assert node["host"] == host.name  # the remote host, not this machine
        assert summary["failures"] == 0
        # the whole schedule (enough for a P99: 459), sent by the one remote worker:
        # 100 req/s over 6 s
        assert 480 <= summary["requests"] <= 720, summary["requests"]
        assert lb_fleet.token not in (out / "manifest.json").read_text()
    finally:
        lb_fleet.fleet.ssh(host, "sudo systemctl stop 'inferops-loadgen-worker@*'")
        lb_fleet.fleet.set_cpu_quota(host, quota)
