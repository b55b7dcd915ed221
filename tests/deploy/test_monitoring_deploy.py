"""deploys/monitoring.py's render step: the files come from the inventory pyinfra runs, the
basic-auth secret never lands in them, and the generated secret is stable across runs.
Fake hosts (pyinfra's API, no connection); the real deploy is in tests/realhost."""

from __future__ import annotations

import shutil
import subprocess

import yaml
from pyinfra.api import Config, Inventory, State
from pyinfra.context import ctx_host, ctx_state

# Every deploy imports the catalog first (validate_inventory): all knobs are declared.
import inferops.deploy.catalog  # noqa: F401
from inferops.deploy import monitoring_files
from inferops.deploy.monitoring_files import PASSWORD_FILE


def _in_fleet(monitoring_data: dict):
    """A two-host inventory: an inference node and a monitoring host; context on the latter."""
    inventory = Inventory(
        (
            [("node1", {"ssh_hostname": "10.0.0.11"}), ("mon1", {"ssh_hostname": "10.0.0.20"})],
            {},
        ),
        cpu_nodes=(["node1"], {}),
        monitoring=(["mon1"], dict(monitoring_data)),
    )
    state = State(inventory, Config())
    host = inventory.get_host("mon1")
    return state, host


def _render(data: dict, grafana: bool = False):
    state, host = _in_fleet(data)
    with ctx_state.use(state), ctx_host.use(host):
        return monitoring_files.render_files(grafana=grafana), monitoring_files


def _targets(prometheus_yml: dict) -> dict[str, list[str]]:
    return {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in prometheus_yml["scrape_configs"]
    }


def test_targets_come_from_the_running_inventory():
    rendered, _ = _render({})
    config = yaml.safe_load((rendered.out / "prometheus.yml").read_text())
    targets = _targets(config)
    assert targets["inferops"] == ["10.0.0.11:8000"]
    assert sorted(targets["node"]) == ["10.0.0.11:9100", "10.0.0.20:9100"]
    # Loopback by default: Prometheus scrapes itself and reaches its Alertmanager on 127.0.0.1.
    assert targets["prometheus"] == ["127.0.0.1:9090"]
    alerting = config["alerting"]["alertmanagers"][0]
    assert alerting["static_configs"][0]["targets"] == ["127.0.0.1:9093"]
    assert "basic_auth" not in alerting


def test_exposed_listen_uses_a_password_file_never_the_password(tmp_path):
    rendered, module = _render(
        {"prometheus_listen": "0.0.0.0:9090", "alertmanager_listen": "0.0.0.0:9093"},
        grafana=True,
    )
    state, host = _in_fleet({})
    with ctx_state.use(state), ctx_host.use(host):
        password_path, web_path = module.ensure_password()
    password = password_path.read_text().strip()
    assert len(password) >= 32
    config = yaml.safe_load((rendered.out / "prometheus.yml").read_text())
    auth = {"username": "inferops", "password_file": PASSWORD_FILE}
    assert config["alerting"]["alertmanagers"][0]["basic_auth"] == auth
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["prometheus"]["basic_auth"] == auth
    assert _targets(config)["prometheus"] == ["10.0.0.20:9090"]
    datasource = yaml.safe_load(
        (rendered.out / "provisioning/datasources/inferops.yml").read_text()
    )
    secure = datasource["datasources"][0]["secureJsonData"]["basicAuthPassword"]
    assert secure == "$__file{/etc/grafana/inferops-prometheus.password}"
    for path in rendered.out.rglob("*"):
        if path.is_file():
            assert password not in path.read_text(), path
    assert password not in web_path.read_text()
    import bcrypt

    digest = yaml.safe_load(web_path.read_text())["basic_auth_users"]["inferops"]
    assert bcrypt.checkpw(password.encode(), digest.encode())
    assert (password_path.stat().st_mode & 0o777) == 0o600


def test_secret_and_its_hash_are_stable_across_runs():
    state, host = _in_fleet({})
    with ctx_state.use(state), ctx_host.use(host):
        first = [p.read_bytes() for p in monitoring_files.ensure_password()]
        second = [p.read_bytes() for p in monitoring_files.ensure_password()]
    assert first == second


def test_the_deploy_render_passes_promtool():
    # A missing promtool fails (never skips): scripts/install-system-deps installs it.
    assert shutil.which("promtool"), "promtool not installed: run scripts/install-system-deps"
    rendered, _ = _render({})
    subprocess.run(
        ["promtool", "check", "config", str(rendered.out / "prometheus.yml")], check=True
    )
    tests = sorted(p.name for p in (rendered.out / "rules").glob("*_test.yml"))
    subprocess.run(["promtool", "test", "rules", *tests], cwd=rendered.out / "rules", check=True)
