"""The monitoring files for the current ``monitoring`` host, rendered on the control machine.

The deploy calls the same ``inferops.monitoring.render.render`` as
``inferops monitoring render``, fed from the inventory pyinfra is running (every host,
its groups and merged data), so the scrape targets are exactly the fleet being
deployed. The render lands in ``.inferops/monitoring/<host>/render`` and is uploaded
from there.

Also the basic-auth secret, used when Prometheus or Alertmanager listens beyond
loopback: a password generated once on the control machine (0600, never printed) and
the bcrypt hash of it that their ``web.yml`` carries (kept beside it, so a second run
uploads the same bytes and changes nothing).

Declares the knobs both ``prometheus`` and ``grafana`` read.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pyinfra import host
from pyinfra.api.exceptions import PyinfraError

from inferops.deploy.common import local_state_dir
from inferops.deploy.knobs import (
    Knob,
    boolean,
    declare,
    declared_defaults,
    knob,
    listen_address,
    local_file,
    str_list,
    string,
)
from inferops.exitcodes import UsageError
from inferops.server.cli import is_loopback

MONITORING_CONFIG_DIR = "/etc/prometheus/inferops"
PASSWORD_FILE = "/etc/prometheus/inferops.password"
GRAFANA_PASSWORD_FILE = "/etc/grafana/inferops-prometheus.password"
BASIC_AUTH_USER = "inferops"

KNOBS = (
    Knob(
        "prometheus_listen",
        "127.0.0.1:9090",
        listen_address("127.0.0.1:9090"),
        "Prometheus listen address; not loopback => basic auth with a generated password "
        "(.inferops/monitoring/<host>/password on the control machine)",
    ),
    Knob(
        "alertmanager_listen",
        "127.0.0.1:9093",
        listen_address("127.0.0.1:9093"),
        "Alertmanager listen address; not loopback => the same basic auth as Prometheus",
    ),
    Knob(
        "grafana",
        True,
        boolean(),
        "Grafana from apt.grafana.com on monitoring hosts (needs grafana_gpg_key_sha256)",
    ),
    Knob(
        "capacity_profile",
        None,
        string(none=True, pattern=r"^[A-Za-z0-9_.:-]+$", what="a profile name"),
        "inference hosts: the capacity profile (of an `inferops bench --sweep` run in "
        "monitoring_capacity) their InferenceCapacityHeadroomLow alert uses",
    ),
    Knob(
        "monitoring_thresholds",
        None,
        local_file(),
        "thresholds.toml the alert rules come from (control machine; None: ./thresholds.toml "
        "if present, else the built-in seed table)",
    ),
    Knob(
        "monitoring_capacity",
        [],
        str_list(what="run folder"),
        "run folders of `inferops bench --sweep` (control machine): capacity headroom alerts",
    ),
    Knob(
        "monitoring_webhooks",
        [],
        str_list(what="URL"),
        "Alertmanager webhook receivers (http(s) URLs)",
    ),
    Knob(
        "monitoring_scrape_interval",
        "15s",
        string(pattern=r"^\d+(ms|s|m|h)$", what="a Prometheus duration like 15s"),
        "scrape and rule evaluation interval",
    ),
)
DEFAULTS = declare(__name__, KNOBS)


def needs_auth() -> bool:
    """Basic auth is on when Prometheus or Alertmanager listens beyond loopback."""
    return any(
        not is_loopback(knob(key).rsplit(":", 1)[0].strip("[]") or "0.0.0.0")
        for key in ("prometheus_listen", "alertmanager_listen")
    )


def host_state_dir() -> Path:
    return local_state_dir("monitoring", host.name.replace("/", "_"))


def inventory_hosts():
    """The inventory pyinfra is running, as ``inferops.monitoring`` hosts."""
    from inferops.monitoring.targets import GROUP_ORDER, Host

    hosts = []
    for item in host.state.inventory:
        data = item.data.dict()
        address = str(data.get("ssh_hostname") or item.name)
        groups = tuple(g for g in item.groups if g in GROUP_ORDER)
        # Every knob declared so far: deploys validate first, which imports the catalog.
        hosts.append(Host(item.name, address, groups, data, declared_defaults()))
    return hosts


def _thresholds_path() -> Path | None:
    given = knob("monitoring_thresholds")
    if given:
        return Path(os.path.expanduser(given))
    default = Path("thresholds.toml")
    return default if default.is_file() else None


def render_files(*, grafana: bool):
    """Render this host's files; returns ``inferops.monitoring.render.Rendered``.

    A bad thresholds file or capacity run stops the deploy before any change, with
    the render's one-line reason."""
    try:
        return _render(grafana=grafana)
    except UsageError as exc:
        raise PyinfraError(f"{host.name}: monitoring: {exc}") from None


def _render(*, grafana: bool):
    from inferops import thresholds
    from inferops.monitoring import configs
    from inferops.monitoring.capacity import read_capacity
    from inferops.monitoring.render import render
    from inferops.monitoring.rules import Knobs
    from inferops.monitoring.targets import default_prometheus_url, monitoring_address

    hosts = inventory_hosts()
    me = next(h for h in hosts if h.name == host.name)
    auth = needs_auth()
    interval = knob("monitoring_scrape_interval")
    config_knobs = configs.ConfigKnobs(
        scrape_interval=interval,
        evaluation_interval=interval,
        webhooks=tuple(knob("monitoring_webhooks")),
        prometheus_url=f"http://{monitoring_address(me, 'prometheus')}"
        if "monitoring" in me.groups
        else default_prometheus_url(hosts),
        basic_auth_user=BASIC_AUTH_USER if auth else None,
        basic_auth_password_file=PASSWORD_FILE if auth else None,
        grafana_password_file=GRAFANA_PASSWORD_FILE if auth and grafana else None,
    )
    return render(
        host_state_dir() / "render",
        hosts=hosts,
        limits=thresholds.load(_thresholds_path()),
        capacities=[read_capacity(Path(run)) for run in knob("monitoring_capacity")],
        knobs=Knobs(),
        config_knobs=config_knobs,
        # This host's own Alertmanager, where its listen knob says it is reached.
        alertmanagers=[monitoring_address(me, "alertmanager")],
    )


def _write_private(path: Path, text: str) -> None:
    tmp = path.parent / (path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def ensure_password() -> tuple[Path, Path]:
    """(password file, web.yml) for this host: generated once, then reused as they are.

    ``web.yml`` holds the bcrypt hash (what Prometheus and Alertmanager check against);
    a new hash every run would re-upload and change the host each time.
    """
    import bcrypt

    folder = host_state_dir()
    os.chmod(folder, 0o700)
    password = folder / "password"
    web = folder / "web.yml"
    if not password.exists():
        _write_private(password, secrets.token_urlsafe(32))
        web.unlink(missing_ok=True)
    if not web.exists():
        digest = bcrypt.hashpw(password.read_bytes().strip(), bcrypt.gensalt(rounds=10))
        _write_private(web, f"basic_auth_users:\n  {BASIC_AUTH_USER}: {digest.decode()}\n")
    return password, web
