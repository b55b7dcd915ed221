"""``prometheus.yml``, ``alertmanager.yml`` and Grafana's provisioning files, as dicts."""

from __future__ import annotations

from dataclasses import dataclass, field

from inferops.monitoring import metricnames as m
from inferops.monitoring.targets import Target

DATASOURCE_UID = "inferops-prometheus"
DASHBOARD_FOLDER = "inferops"


@dataclass(frozen=True)
class ConfigKnobs:
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    scrape_timeout: str | None = None  #: default: Prometheus's (10s, capped at the interval)
    webhooks: tuple[str, ...] = ()
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"
    prometheus_url: str = "http://127.0.0.1:9090"
    dashboards_path: str = "/var/lib/grafana/dashboards/inferops"
    external_labels: dict[str, str] = field(default_factory=dict)
    #: Prometheus/Alertmanager behind basic auth (the deploy sets these on a non-loopback
    #: listen): the user, the password file on the monitoring host (Prometheus reads it
    #: to scrape itself and reach Alertmanager) and the one Grafana reads.
    basic_auth_user: str | None = None
    basic_auth_password_file: str | None = None
    grafana_password_file: str | None = None


JOB_ORDER = (
    m.JOB_SERVER,
    m.JOB_TRITON,
    m.JOB_NODE,
    m.JOB_DCGM,
    m.JOB_PROMETHEUS,
    m.JOB_ALERTMANAGER,
)


def prometheus_config(
    targets: list[Target], rule_files: list[str], alertmanagers: list[str], knobs: ConfigKnobs
) -> dict:
    global_ = {
        "scrape_interval": knobs.scrape_interval,
        "evaluation_interval": knobs.evaluation_interval,
    }
    if knobs.scrape_timeout:
        global_["scrape_timeout"] = knobs.scrape_timeout
    if knobs.external_labels:
        global_["external_labels"] = dict(knobs.external_labels)
    scrape_configs = []
    for job in JOB_ORDER:
        statics = [
            {"targets": [t.address], **({"labels": dict(t.labels)} if t.labels else {})}
            for t in targets
            if t.job == job
        ]
        if statics:
            scrape = {"job_name": job, "metrics_path": "/metrics", "static_configs": statics}
            if job in (m.JOB_PROMETHEUS, m.JOB_ALERTMANAGER) and _basic_auth(knobs):
                scrape["basic_auth"] = _basic_auth(knobs)
            scrape_configs.append(scrape)
    alertmanager = {"static_configs": [{"targets": list(alertmanagers)}]}
    if _basic_auth(knobs):
        alertmanager["basic_auth"] = _basic_auth(knobs)
    return {
        "global": global_,
        "rule_files": [f"rules/{name}" for name in rule_files],
        "alerting": {"alertmanagers": [alertmanager]},
        "scrape_configs": scrape_configs,
    }


def _basic_auth(knobs: ConfigKnobs) -> dict | None:
    if not knobs.basic_auth_password_file:
        return None
    return {"username": knobs.basic_auth_user, "password_file": knobs.basic_auth_password_file}


def alertmanager_config(knobs: ConfigKnobs) -> dict:
    receiver: dict = {"name": "inferops"}
    if knobs.webhooks:
        receiver["webhook_configs"] = [
            {"url": url, "send_resolved": True} for url in knobs.webhooks
        ]
    return {
        "route": {
            "receiver": "inferops",
            "group_by": ["alertname", "instance", "model"],
            "group_wait": knobs.group_wait,
            "group_interval": knobs.group_interval,
            "repeat_interval": knobs.repeat_interval,
        },
        "receivers": [receiver],
        # A critical alert on a host silences its warnings (node-mixin style).
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["instance"],
            }
        ],
    }


def grafana_datasource(knobs: ConfigKnobs) -> dict:
    source = {
        "name": "Prometheus (inferops)",
        "uid": DATASOURCE_UID,
        "type": "prometheus",
        "access": "proxy",
        "url": knobs.prometheus_url,
        "isDefault": True,
        "editable": False,
        "jsonData": {"timeInterval": knobs.scrape_interval, "httpMethod": "POST"},
    }
    if knobs.grafana_password_file:
        # Grafana reads the secret from a file on its host: never in this file.
        source["basicAuth"] = True
        source["basicAuthUser"] = knobs.basic_auth_user
        source["secureJsonData"] = {
            "basicAuthPassword": f"$__file{{{knobs.grafana_password_file}}}"
        }
    return {"apiVersion": 1, "datasources": [source]}


def grafana_dashboard_provider(knobs: ConfigKnobs) -> dict:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "inferops",
                "folder": DASHBOARD_FOLDER,
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "options": {"path": knobs.dashboards_path, "foldersFromFilesStructure": False},
            }
        ],
    }
