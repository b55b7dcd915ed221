"""``deploys/nightly.py`` by the real pyinfra CLI on a booted host, next to a server.

Host n1 gets the nightly schedule with a tiny fixed-rate nightly.toml and the server's
bearer token as its secret env file; the timer must be listed with a next elapse. Then
the CPU node (the server the night loads) is deployed on the same host and a second
nightly run must change nothing; starting the service must run a real `inferops nightly`
in its sandbox: a stored run, nightly.json, the trend report, exit 0.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.hosts.fleet import claim_free_fleet, missing_prerequisites, prerequisite_verdict
from tests.hosts.pyinfra_run import REPO
from tests.realhost.conftest import PYTEST_SLOTS
from tests.realhost.deploying import CPU_NODE, Deployer, assert_no_changes

NIGHTLY = REPO / "deploys/nightly.py"
WORK_DIR = "/var/lib/inferops-nightly"

pytestmark = pytest.mark.realhost

CONFIG = """\
[nightly]
out = "nightly-runs"

[[scenario]]
name = "mlp-50qps"
target = "http://127.0.0.1:8000"
model = "mlp"
rate = 50
duration = "12s"
warmup = "1s"
timeout = "3m"
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """This module's own two hosts, named ``n0``/``n1``: nspawn names a host's veth
    ``vb-<machine>``, and a fleet boot deletes a leftover ``vb-<name>``, so two concurrent
    fleets whose machines share names (``t0``/``t1``) would cut each other's network."""
    problems = missing_prerequisites()
    verdict = prerequisite_verdict(problems, os.geteuid(), dict(os.environ))
    reason = "real-host tests need: " + "; ".join(problems)
    if verdict == "skip":
        pytest.skip(reason + " (skipped: not root and not CI)")
    if verdict == "fail":
        pytest.fail(reason, pytrace=False)
    own = claim_free_fleet(
        "n", PYTEST_SLOTS, tmp_path_factory.mktemp("nfleet"), size=2, log=lambda _: None
    )
    own.up()
    try:
        yield own
    finally:
        own.down()


@pytest.fixture(scope="module")
def deployer(fleet, tmp_path_factory):
    return Deployer(fleet, tmp_path_factory.mktemp("ndeploy"))


@pytest.fixture(scope="module")
def nightly_fleet(fleet, deployer, tmp_path_factory):
    from inferops.deploy.artifacts import ensure_token

    host = fleet.hosts[1]
    # The server's token, made where cpu_node.py will find it (INFEROPS_STATE_DIR/tokens),
    # so the loadgen side can be deployed first.
    ensure_token(host.name, deployer.state_dir / "tokens")
    local = tmp_path_factory.mktemp("nightly")
    (local / "nightly.toml").write_text(CONFIG)
    secrets = local / "nightly.env"
    secrets.write_text(f"INFEROPS_TOKEN={deployer.token(host)}\n")
    secrets.chmod(0o600)
    fleet_file = deployer.write_fleet(
        "nightly-fleet.toml",
        data={"nightly_config": str(local / "nightly.toml"), "nightly_env_file": str(secrets)},
    )
    return host, fleet_file


def test_deploy_schedules_the_timer(fleet, deployer, nightly_fleet):
    host, fleet_file = nightly_fleet
    result = deployer.run(NIGHTLY, host, fleet_file=fleet_file, options=("--diff", "-v"))
    assert result.returncode == 0, result.tail()
    assert result.total.errors == 0 and result.total.changed > 0
    assert deployer.token(host) not in result.output, "the token is in pyinfra's --diff output"
    timers = fleet.ssh(host, "systemctl list-timers --all --no-pager inferops-nightly.timer")
    assert "inferops-nightly.timer" in timers.stdout and "inferops-nightly.service" in timers.stdout
    row = next(line for line in timers.stdout.splitlines() if "inferops-nightly.timer" in line)
    assert not row.startswith("n/a"), timers.stdout  # NEXT, the first column, is a time
    enabled = fleet.ssh(host, "systemctl is-enabled inferops-nightly.timer").stdout.strip()
    assert enabled == "enabled"
    # the deploy never starts a night itself
    assert not fleet.ssh(host, f"sudo ls {WORK_DIR}").stdout.strip()


def test_second_run_changes_nothing_even_after_the_server_deploy(deployer, nightly_fleet):
    """The server deploy shares the environment: after it, the schedule is still converged."""
    host, fleet_file = nightly_fleet
    server = deployer.run(CPU_NODE, host)
    assert server.returncode == 0, server.tail()
    assert_no_changes(deployer.run(NIGHTLY, host, fleet_file=fleet_file))


def test_starting_the_service_runs_a_night(fleet, nightly_fleet):
    host, _ = nightly_fleet
    started = fleet.ssh(host, "sudo systemctl start inferops-nightly.service", check=False)
    journal = fleet.ssh(host, "sudo journalctl -u inferops-nightly.service --no-pager -n 60")
    assert started.returncode == 0, journal.stdout[-4000:]
    show = fleet.ssh(host, "systemctl show -p Result -p ExecMainStatus inferops-nightly.service")
    assert "Result=success" in show.stdout and "ExecMainStatus=0" in show.stdout, show.stdout
    assert "nightly: no confirmed regression (exit 0)" in journal.stdout, journal.stdout[-4000:]
    found = fleet.ssh(host, f"sudo find {WORK_DIR} -name nightly.json -o -name trend.html")
    names = sorted(p.rsplit("/", 1)[1] for p in found.stdout.split())
    assert names == ["nightly.json", "trend.html"], found.stdout
    path = next(p for p in found.stdout.split() if p.endswith("nightly.json"))
    document = json.loads(fleet.ssh(host, f"sudo cat {path}").stdout)
    assert document["exit_code"] == 0, document
    owner = fleet.ssh(host, f"sudo stat -c %U {path}").stdout.strip()
    assert owner == "inferops"  # written by the service user, not root
    assert fleet.ssh(host, f"sudo test -f {WORK_DIR}/history.sqlite", check=False).returncode == 0
