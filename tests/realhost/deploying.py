"""Running the repo's deploys against the test fleet, and checking what they built.

``Deployer`` runs the real ``pyinfra`` CLI with the repository's ``inventory.py``
pointed at the fleet through ``INFEROPS_FLEET``. Two things are pinned for the
session so that a concurrent edit of the checkout cannot show up as a "change"
between two runs: the inferops wheel (built once, passed as ``inferops_wheel``)
and the control-side state dir (``INFEROPS_STATE_DIR``: tokens, caches).
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import httpx

from tests.hosts import pyinfra_run
from tests.hosts.fleet import Fleet
from tests.hosts.machine import Host
from tests.hosts.pyinfra_run import REPO, RunResult

INVENTORY = REPO / "inventory.py"
CPU_NODE = REPO / "deploys/cpu_node.py"
GPU_NODE = REPO / "deploys/gpu_node.py"
SERVER_UNIT = "inferops-server"
EXPORTER_UNIT = "prometheus-node-exporter"  # Debian's package, chosen on Debian hosts
SERVER_PORT = 8000
EXPORTER_PORT = 9100
MODEL = "mlp"  # the deploy's default embedded model


class Deployer:
    def __init__(self, fleet: Fleet, workdir: Path):
        from inferops.deploy import artifacts

        self.fleet = fleet
        self.state_dir = workdir / "control-state"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (workdir / "wheel-build").mkdir(exist_ok=True)
        wheel = artifacts.build_wheel(cache=workdir / "wheel-build")
        self.wheel = workdir / wheel.name
        shutil.copy2(wheel, self.wheel)
        self.data = {"inferops_wheel": str(self.wheel)}
        self.fleet_file = fleet.write_fleet_toml(workdir / "fleet.toml", data=self.data)

    @property
    def env(self) -> dict[str, str]:
        return {"INFEROPS_FLEET": str(self.fleet_file), "INFEROPS_STATE_DIR": str(self.state_dir)}

    def write_fleet(self, name: str, **kwargs) -> Path:
        """Another fleet file for the same hosts (other groups or data)."""
        data = {**self.data, **kwargs.pop("data", {})}
        return self.fleet.write_fleet_toml(self.fleet_file.parent / name, data=data, **kwargs)

    def run(self, deploy: Path, host: Host | None = None, fleet_file: Path | None = None,
            options: tuple = ()) -> RunResult:  # fmt: skip
        options = (*options, "--limit", host.name) if host else options
        env = self.env | ({"INFEROPS_FLEET": str(fleet_file)} if fleet_file else {})
        return pyinfra_run.run(INVENTORY, deploy, options=options, env=env, timeout=900)

    def run_and_kill(self, deploy: Path, host: Host, during: str) -> tuple[str, int]:
        return pyinfra_run.run_and_kill(
            INVENTORY, deploy, during=during, options=("--limit", host.name), env=self.env
        )

    def token(self, host: Host) -> str:
        return (self.state_dir / "tokens" / host.name).read_text().strip()


def wait_until_idle(fleet: Fleet, host: Host, timeout: float = 180) -> None:
    """Wait for package/pip commands orphaned by a killed deploy to end on ``host``.

    Killing pyinfra drops its SSH session, but a command already running on the
    host (apt, dpkg, pip) carries on; an operator re-running the deploy would
    wait for it the same way rather than race it for the dpkg or venv lock.
    """
    deadline = time.monotonic() + timeout
    probe = "pgrep -f '[a]pt-get|[d]pkg|[p]ip install' || true"
    while time.monotonic() < deadline:
        if not fleet.ssh(host, probe).stdout.strip():
            return
        time.sleep(2)
    raise AssertionError(f"{host.name}: orphaned commands still running after {timeout:.0f}s")


def unit_exposure(fleet: Fleet, host: Host, unit: str) -> float:
    """The "Overall exposure level" `systemd-analyze security` gives ``unit`` (0-10)."""
    out = fleet.ssh(host, f"sudo systemd-analyze security --no-pager {unit}").stdout
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert match, out[-2000:]
    return float(match.group(1))


def assert_no_changes(result: RunResult) -> None:
    assert result.returncode == 0, result.tail()
    assert result.total is not None, "no results table:\n" + result.tail()
    assert result.changed_ops == [], f"a re-run changed: {result.changed_ops}"
    assert result.total.errors == 0 and result.total.unchanged == result.total.hosts


def verify_cpu_node(fleet: Fleet, host: Host, token: str) -> None:
    """The node serves the model and its metrics, checked on the host and over the network."""
    t = fleet.testinfra_host(host)
    for unit in (SERVER_UNIT, EXPORTER_UNIT):
        service = t.service(unit)
        assert service.is_running, f"{host.name}: {unit} is not running"
        assert service.is_enabled, f"{host.name}: {unit} is not enabled at boot"
    assert t.socket(f"tcp://0.0.0.0:{SERVER_PORT}").is_listening
    assert (
        t.socket(f"tcp://:::{EXPORTER_PORT}").is_listening
        or t.socket(f"tcp://0.0.0.0:{EXPORTER_PORT}").is_listening
    )
    # On the host itself ...
    assert (
        t.check_output(f"curl -sf http://127.0.0.1:{SERVER_PORT}/v2/health/ready").replace(" ", "")
        == '{"ready":true}'
    )
    # ... and from this machine over the fleet's private network, as a client would.
    base = f"http://{host.ip}:{SERVER_PORT}"
    ready = httpx.get(f"{base}/v2/health/ready", timeout=10)
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert httpx.get(f"{base}/v2/models/{MODEL}", timeout=10).status_code == 401  # token needed
    meta = httpx.get(
        f"{base}/v2/models/{MODEL}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert meta.status_code == 200, meta.text
    assert meta.json()["name"] == MODEL and meta.json()["inputs"], meta.text
    metrics = httpx.get(f"http://{host.ip}:{EXPORTER_PORT}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert "node_cpu_seconds_total{" in metrics.text
