"""Prometheus and Alertmanager on a ``monitoring`` host, from the Debian packages.

The configuration (``prometheus.yml``, ``rules/`` with their unit tests,
``alertmanager.yml``) is rendered on the control machine by ``inferops.monitoring``
from the inventory being deployed (``monitoring_files``), then:

1. uploaded to a candidate directory (``/etc/prometheus/inferops.candidate``);
2. checked there on the host: ``promtool check config`` (which also checks every rule
   file it names), ``promtool check rules``, ``promtool test rules`` and
   ``amtool check-config``;
3. only then swapped in as ``/etc/prometheus/inferops`` and picked up with a reload
   (SIGHUP, the packages' ``ExecReload``): a rule or target change never restarts
   anything. Only a changed command line (listen address, retention, auth) restarts.

Listening beyond loopback turns on basic auth (``web.yml``): the password is generated
on the control machine (``.inferops/monitoring/<host>/password``, 0600) and never shown,
not even with ``--diff``.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

from inferops.deploy import ops
from inferops.deploy.common import install_packages, keep_running, require, template
from inferops.deploy.knobs import Knob, declare, knob, string
from inferops.deploy.monitoring_files import (
    BASIC_AUTH_USER,
    MONITORING_CONFIG_DIR,
    PASSWORD_FILE,
    ensure_password,
    needs_auth,
    render_files,
)
from inferops.deploy.platform import detect

CANDIDATE_DIR = f"{MONITORING_CONFIG_DIR}.candidate"
WEB_CONFIG = "/etc/prometheus/inferops-web.yml"
PROMETHEUS_SERVICE = "prometheus"
ALERTMANAGER_SERVICE = "prometheus-alertmanager"
_SIZE = r"^\d+(B|KB|MB|GB|TB|PB|EB)$"

KNOBS = (
    Knob(
        "prometheus_retention",
        "15d",
        string(pattern=r"^(\d+(ms|s|m|h|d|w|y))+$", what="a Prometheus duration like 15d"),
        "how long Prometheus keeps samples (--storage.tsdb.retention.time)",
    ),
    Knob(
        "prometheus_retention_size",
        None,
        string(none=True, pattern=_SIZE, what="a size like 50GB"),
        "cap on the TSDB's size (--storage.tsdb.retention.size); None: time only",
    ),
)
DEFAULTS = declare(__name__, KNOBS)


@deploy("Prometheus and Alertmanager", data_defaults=DEFAULTS)
def prometheus():
    """Install Prometheus and Alertmanager and keep their checked configuration in place."""
    platform = detect(host)
    require(
        platform.family == "debian",
        "monitoring",
        "Prometheus/Alertmanager come from the Debian/Ubuntu packages; this host is "
        f"{platform.family}",
    )
    rendered = render_files(grafana=bool(knob("grafana")))

    # curl: the readiness check after a change.
    install_packages(
        platform,
        ["prometheus", "prometheus-alertmanager", "curl"],
        name="Install prometheus and prometheus-alertmanager",
    )
    auth_ops = _basic_auth()
    candidate = files.sync(
        name=f"Upload the rendered configuration to {CANDIDATE_DIR}",
        src=str(rendered.out),
        dest=CANDIDATE_DIR,
        mode="644",
        dir_mode="755",
        delete=True,
        # Prometheus's files only: Grafana's go to Grafana (grafana.py).
        exclude=[".inferops-monitoring", "*/.inferops-monitoring"],
        exclude_dir=["dashboards", "provisioning", "*/dashboards", "*/provisioning"],
    )
    promote = ops.promote_checked(
        name=f"Check the configuration with promtool, swap it into {MONITORING_CONFIG_DIR}, reload",
        candidate=CANDIDATE_DIR,
        live=MONITORING_CONFIG_DIR,
        checks=[
            f"promtool check config {CANDIDATE_DIR}/prometheus.yml",
            f"promtool check rules $(ls {CANDIDATE_DIR}/rules/*.yml | grep -v '_test.yml$')",
            f"(cd {CANDIDATE_DIR}/rules && promtool test rules *_test.yml)",
            f"amtool check-config {CANDIDATE_DIR}/alertmanager.yml",
        ],
        reload=" && ".join(
            f"{{ ! systemctl is-active -q {s} || systemctl reload {s}; }}"
            for s in (PROMETHEUS_SERVICE, ALERTMANAGER_SERVICE)
        ),
    )
    web = WEB_CONFIG if needs_auth() else None
    prom_args = files.template(
        name="Configure Prometheus (listen, retention, auth)",
        src=template("prometheus.default.j2"),
        dest="/etc/default/prometheus",
        mode="644",
        config_dir=MONITORING_CONFIG_DIR,
        retention=knob("prometheus_retention"),
        retention_size=knob("prometheus_retention_size"),
        listen=knob("prometheus_listen"),
        web_config=web,
    )
    am_args = files.template(
        name="Configure Alertmanager (listen, auth)",
        src=template("prometheus-alertmanager.default.j2"),
        dest="/etc/default/prometheus-alertmanager",
        mode="644",
        config_dir=MONITORING_CONFIG_DIR,
        listen=knob("alertmanager_listen"),
        web_config=web,
    )
    keep_running(PROMETHEUS_SERVICE, changed=prom_args.did_change, reason="arguments changed")
    keep_running(ALERTMANAGER_SERVICE, changed=am_args.did_change, reason="arguments changed")
    server.shell(
        name="Check Prometheus and Alertmanager are ready with the new configuration",
        commands=[
            _ready_command(knob("prometheus_listen"), "prometheus_config_last_reload_successful"),
            _ready_command(
                knob("alertmanager_listen"), "alertmanager_config_last_reload_successful"
            ),
        ],
        _if=any_changed(candidate, promote, prom_args, am_args, *auth_ops),
    )


def _basic_auth():
    """Upload (or remove) the password and ``web.yml``; returns their operations."""
    if not needs_auth():
        return [
            files.file(name="No basic auth on loopback (web.yml)", path=WEB_CONFIG, present=False),
            files.file(
                name="No basic auth on loopback (password)", path=PASSWORD_FILE, present=False
            ),
        ]
    password, web = ensure_password()
    return [
        ops.put_secret(
            name="Upload the Prometheus/Alertmanager basic-auth password",
            src=str(password),
            dest=PASSWORD_FILE,
            user="root",
            group="prometheus",
            mode="640",
        ),
        ops.put_secret(
            name="Upload web.yml (basic auth, bcrypt hash)",
            src=str(web),
            dest=WEB_CONFIG,
            user="root",
            group="prometheus",
            mode="640",
        ),
    ]


def _ready_command(listen: str, metric: str, attempts: int = 30) -> str:
    """Poll ``/metrics`` until ``metric`` is 1 (the configuration loaded); exit 1 if never.

    With basic auth the password is read on the host and handed to curl on stdin
    (``-K -``), so it shows in no command line and no log.
    """
    bind, port = listen.rsplit(":", 1)
    bind = bind.strip("[]")
    url = f"http://{'127.0.0.1' if bind in ('', '0.0.0.0', '::') else bind}:{port}/metrics"
    curl = f"curl -fsS {url}"
    if needs_auth():
        curl = (
            f'printf \'user = "{BASIC_AUTH_USER}:%s"\\n\' "$(cat {PASSWORD_FILE})" '
            f"| curl -K - -fsS {url}"
        )
    return (
        f"for i in $(seq {attempts}); do "
        f"{curl} 2>/dev/null | grep -q '^{metric} 1' && echo '{metric} = 1 at {url}' && exit 0; "
        f"sleep 1; done; echo '{url}: {metric} never became 1' >&2; exit 1"
    )
