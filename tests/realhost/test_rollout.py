"""``inferops rollout`` on the session's ``lb_fleet``: three real inference hosts behind
real nginx, changed by the real ``pyinfra`` CLI, load-tested by real ``inferops bench``.

- a deliberately slowed version (every answer 600 ms late) is rolled back at the
  canary-alone check; the fleet then serves the old version and a plain ``pyinfra`` run of
  both deploys changes nothing;
- a version that passes the canary-alone check and breaks under sustained traffic (it
  answers 1 s late after its first 1,450 requests, a stand-in for a leak) is rolled back at
  a traffic step.

Both faults are declared in the versions' ONNX metadata and honoured by these test servers
only (``server_allow_fault_injection``, see ``inferops/server/faults.py``): the issue's
"server flag that adds delay", carried by the version. A really heavier model was tried
first and is not a dependable "slowed" version here: the ``mlp`` 4096 wide streams 67 MB of
weights per batch, so dynamic batching absorbs it and a quiet run's canary P99 rose only
70 -> 109 ms, inside the noise of these 25 %-capped nodes (then with ONNX Runtime's
thread spinning eating the quota; the server now turns it off, docs/server.md).
- a good version (the same ``mlp`` retrained: other weights, same cost) is promoted, and
  the rollout process is SIGKILLed during its traffic step: at the kill at most
  one node is drained, and re-running the same command resumes and promotes.

The old version comes back at the end with a plain deploy: a flip to the version still
stored on each node, nothing uploaded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inferops.server import faults
from tests.hosts.pyinfra_run import REPO
from tests.realhost.deploying import CPU_NODE, assert_no_changes, wait_until_idle
from tests.realhost.lbfleet import LOADBALANCER

pytestmark = pytest.mark.realhost

STORE = "/opt/inferops/models/mlp"
NGINX_CONF = "/etc/nginx/conf.d/inferops-lb.conf"
# each load test: ~600 requests, 60/s for 10 s (a P99 needs 459, see measure.validity; at
# 40/s for 12 s a Poisson count of mean 480 fell short in ~17 % of tests, twice in a row in
# one CI run: an invalid baseline, rolled back with exit 3) on a node capped at 25 % of a
# core. The gate's noise here is the box's, in milliseconds, not a share: with the short
# CFS period (tests/hosts/cpuquota.py) an unchanged model's P99 is 9-34 ms, and 8.6 vs
# 19.5 ms was seen between the two checks of one good rollout beside the other tier; sends
# up to 100 ms late (below) leave a run valid. So only a change over 10x counts: the
# slowed version is past it and breaches the 400 ms bound first (P99.9 is not judged on
# 600 answers, see inferops compare). A generator starved by the box (late sends beyond
# that) gives an invalid run, repeated up to twice
COMMON = (
    "--rate", "60", "--duration", "10s", "--warmup", "1s", "--interval", "0",
    "--min-effect", "900%", "--retries", "2",
    # CI runs this niced beside the other tier on 2 cores: a traffic step's sends were
    # 1.2-4.9 % more than 20 ms late (bench's default, 5 % of the 400 ms bound) in one CI
    # run, and 1.0-1.5 % more than 100 ms late in another, twice in a row each. Latency is
    # still measured from each send's intended time, so a lag counts against a version,
    # never for it; a good one (P99 9-34 ms here) stays far under 400 ms with 250 ms of lag
    "--late-tolerance-ms", "250",
)  # fmt: skip

# the degrading version: one canary-alone load test sends it ~660 requests (60/s for 11 s),
# two at most with --retries 1 (~1,320), so it passes that check; traffic steps 50,75,100
# send it ~1,300 more (30, 45, then 60/s), so it turns slow during a step whatever the
# check used. Steps 50,100 (~990 more) were tried: it turned slow only in step 100's last
# seconds (P99 9.7 ms, max 2,007 ms) and was promoted
DEGRADE_AFTER_REQUESTS = 1450
# far past the fleet's 400 ms P99 bound. nginx's least_conn steers new requests away from
# a node holding slow ones, so a slow canary moves few of a step's answers: at 1 s, 20 of
# 1,656 were over the bound (early stopping allows ~8, so the step fails); at 2 s only 5
# and 13 of ~1,700 (tried: the step before the last passed). Longer is not safer here
DEGRADE_DELAY_MS = 1000
SLOWED_DELAY_MS = 600


def _save_with_fault(path: Path, after_requests: int, delay_ms: int) -> None:
    """The inventory's ``mlp`` (same weights, same cost) declaring a test fault."""
    import onnx

    from inferops.models.builders import mlp

    model = mlp()
    onnx.helper.set_model_props(
        model, {faults.AFTER_KEY: str(after_requests), faults.DELAY_KEY: str(delay_ms)}
    )
    onnx.save(model, path)


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> dict[str, Path]:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from inferops.models.builders import mlp

    out = tmp_path_factory.mktemp("versions")
    retrained = mlp()
    for init in retrained.graph.initializer:  # other weights, same graph and cost
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.01),
                                              init.name))  # fmt: skip
    onnx.save(retrained, out / "mlp-retrained.onnx")
    _save_with_fault(out / "mlp-slowed.onnx", after_requests=0, delay_ms=SLOWED_DELAY_MS)
    _save_with_fault(out / "mlp-degrading.onnx", after_requests=DEGRADE_AFTER_REQUESTS,
                     delay_ms=DEGRADE_DELAY_MS)  # fmt: skip
    # the fleet's gate: the P99 bound alone (the seed table's min_qps = 100 is above the
    # rate these capped nodes are tested at, and its CPU limits would judge this shared box)
    (out / "thresholds.toml").write_text("p99_latency_ms = 400\nmax_error_rate = 0.01\n")
    return {
        "good": out / "mlp-retrained.onnx",
        "slow": out / "mlp-slowed.onnx",
        "degrading": out / "mlp-degrading.onnx",
        "thresholds": out / "thresholds.toml",
    }


@pytest.fixture(scope="module")
def rollout_fleet(lb_fleet):
    """The lb_fleet, put back on the inventory's version by a plain deploy afterwards (when
    a test left it elsewhere: each test's own end already checks the way back, ~35 s)."""
    before = _served(lb_fleet)
    yield lb_fleet
    if _served(lb_fleet) != before or _drained(lb_fleet):
        _plain_node_deploy(lb_fleet)
        lb_fleet.deployer.run(LOADBALANCER, fleet_file=lb_fleet.fleet_file,
                              options=("--limit", "loadbalancer"))  # fmt: skip


def _plain_node_deploy(lb_fleet):
    return lb_fleet.deployer.run(CPU_NODE, fleet_file=lb_fleet.fleet_file,
                                 options=("--limit", "cpu_nodes"))  # fmt: skip


def _rollout_cmd(lb_fleet, model: Path, out: Path, *args: str) -> list[str]:
    thresholds = model.parent / "thresholds.toml"
    return [
        sys.executable, "-m", "inferops", "rollout", "--inventory", str(lb_fleet.inventory),
        "--model", str(model), "--out", str(out), "--thresholds", str(thresholds), *COMMON,
        *args,
    ]  # fmt: skip


def _env(lb_fleet) -> dict[str, str]:
    return {**os.environ, **lb_fleet.env, "PYTHONPATH": str(REPO)}


def _rollout(lb_fleet, model, out, *args) -> subprocess.CompletedProcess:
    return subprocess.run(_rollout_cmd(lb_fleet, model, out, *args), cwd=REPO,
                          env=_env(lb_fleet), capture_output=True, text=True,
                          timeout=600)  # fmt: skip


def _served(lb_fleet) -> dict[str, str]:
    """The version directory each node's ``current`` link points at, read on the node."""
    return {
        n.name: lb_fleet.fleet.ssh(n, f"sudo readlink {STORE}/current").stdout.strip()
        for n in lb_fleet.nodes
    }


def _drained(lb_fleet) -> list[str]:
    """Upstream servers nginx has marked ``down`` (weight 0)."""
    conf = lb_fleet.fleet.ssh(lb_fleet.lb, f"cat {NGINX_CONF}").stdout
    return [line.strip() for line in conf.splitlines() if line.strip().startswith("server ")
            and " down" in line]  # fmt: skip


def _state(out: Path) -> dict:
    return json.loads((out / "state.json").read_text())


def _summary(run_dir: str) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def _sha12(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _assert_back_where_it_was(fleet, before: dict[str, str]) -> None:
    """After a rollback: the old version serves everywhere, nothing is drained, and the
    inventory re-applied as it is finds nothing to change."""
    assert _served(fleet) == before
    assert _drained(fleet) == []
    assert_no_changes(_plain_node_deploy(fleet))
    assert_no_changes(
        fleet.deployer.run(
            LOADBALANCER, fleet_file=fleet.fleet_file, options=("--limit", "loadbalancer")
        )  # fmt: skip
    )


def test_slowed_version_is_rolled_back_at_the_canary_alone_check(rollout_fleet, versions, tmp_path):
    fleet = rollout_fleet
    before = _served(fleet)
    assert len(set(before.values())) == 1, before
    out = tmp_path / "slow"
    proc = _rollout(fleet, versions["slow"], out, "--version", "slowed", "--steps", "100")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    state = _state(out)
    assert state["phase"] == "rolled-back"
    rollback = [d for d in state["decisions"] if d["decision"] == "rollback"]
    # judged before any user traffic reached it: the step log never moved past the canary
    assert [d["phase"] for d in rollback] == ["canary-deployed"], rollback
    assert "regressed" in rollback[0]["reason"] or "breached" in rollback[0]["reason"]
    assert rollback[0]["evidence"]["canary"]["p99_ms"] >= SLOWED_DELAY_MS
    assert rollback[0]["evidence"]["baseline"]["p99_ms"] < SLOWED_DELAY_MS
    last = proc.stdout.strip().splitlines()[-1]
    assert "rolled-back" in last and str(out / "report.html") in last
    assert (out / "report.html").read_text().count("rollback") >= 1

    # the new version is still stored on the canary, for a later look
    canary = fleet.nodes[0]
    stored = fleet.fleet.ssh(canary, f"sudo ls {STORE}").stdout.split()
    assert f"slowed-{_sha12(versions['slow'])}" in stored
    _assert_back_where_it_was(fleet, before)


def test_version_breaking_under_sustained_load_is_rolled_back_at_a_traffic_step(
    rollout_fleet, versions, tmp_path
):
    fleet = rollout_fleet
    before = _served(fleet)
    out = tmp_path / "degrading"
    proc = _rollout(fleet, versions["degrading"], out, "--version", "leaky",
                    "--steps", "50,75,100", "--retries", "1")  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    state = _state(out)
    assert state["phase"] == "rolled-back"
    decisions = state["decisions"]
    passed = [d["reason"] for d in decisions if d["decision"] == "pass"]
    assert passed and passed[0].startswith("canary alone"), decisions  # it passed alone
    rollback = [d for d in decisions if d["decision"] == "rollback"]
    assert [d["phase"] for d in rollback] == ["shifting"], rollback
    assert "through the load balancer failed" in rollback[0]["reason"], rollback[0]
    # the step's P99 bound failed (or could not be proven at 99 % confidence: the late
    # answers may start near a step's end), and the late answers are in its run; the
    # canary-alone run had none
    step = _summary(rollback[0]["evidence"]["run"])
    p99_check = next(c for c in step["thresholds"] if c["name"] == "p99_latency_ms")
    assert not p99_check["ok"], step["thresholds"]
    assert step["latency_ms"]["max"] >= DEGRADE_DELAY_MS, step["latency_ms"]
    # the check that passed (an invalid first measurement is logged before it, and retried)
    alone = next(
        d for d in decisions if d["decision"] == "pass" and d["reason"].startswith("canary alone")
    )
    assert _summary(alone["evidence"]["canary"]["run"])["latency_ms"]["max"] < DEGRADE_DELAY_MS
    _assert_back_where_it_was(fleet, before)


def _ended_early(log: Path, out: Path) -> str:
    """Why the first run ended before it could be killed: its output and its decisions."""
    decisions = _state(out)["decisions"] if (out / "state.json").exists() else []
    said = [f"{d['decision']}: {d['reason']}" for d in decisions]
    return "the rollout ended before it could be killed:\n" + "\n".join(
        [*log.read_text().splitlines()[-40:], "decisions:", *said]
    )


def test_killed_rollout_resumes_and_promotes_a_good_version(rollout_fleet, versions, tmp_path):
    fleet = rollout_fleet
    before = _served(fleet)
    out = tmp_path / "good"
    # one traffic step: the kill lands in it, and the re-run resumes it (resuming at a later
    # step of several is the logic tier's, tests/release/test_rollout_logic.py)
    cmd = _rollout_cmd(fleet, versions["good"], out, "--version", "retrained", "--steps", "100")
    first_log = tmp_path / "first-run.log"
    with first_log.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=_env(fleet), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "state.json").exists() and _state(out)["phase"] == "shifting":
                break
            time.sleep(0.2)
        assert proc.poll() is None, _ended_early(first_log, out)
        os.killpg(proc.pid, signal.SIGKILL)  # the control machine dies mid-step
    finally:
        proc.wait(timeout=30)
    assert len(_drained(fleet)) <= 1, _drained(fleet)
    for host in (fleet.lb, *fleet.nodes):
        wait_until_idle(fleet.fleet, host, timeout=60)

    rerun = _rollout(fleet, versions["good"], out, "--version", "retrained", "--steps", "100")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "resuming the rollout" in rerun.stdout
    state = _state(out)
    assert state["phase"] == "promoted"
    passed = [d["reason"] for d in state["decisions"] if d["decision"] == "pass"]
    assert passed[0].startswith("canary alone") and any("step 100" in r for r in passed)
    new = f"retrained-{_sha12(versions['good'])}"
    assert _served(fleet) == {n.name: new for n in fleet.nodes}
    assert _drained(fleet) == []
    assert "make it permanent" in rerun.stdout

    # back to the inventory's version: a flip per node, nothing uploaded
    back = _plain_node_deploy(fleet)
    assert back.returncode == 0, back.tail()
    assert not [op for op in back.changed_ops if "Store model version" in op], back.changed_ops
    assert _served(fleet) == before
