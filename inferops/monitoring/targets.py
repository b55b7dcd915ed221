"""Scrape targets from the pyinfra inventory, read the way ``pyinfra inventory.py deploys/...``
reads it: the same ``inventory.py`` and ``group_data/``, merged over the deploy DEFAULTS.

- every inference host (``gpu_nodes``, ``cpu_nodes``): the server's ``/metrics``
  (``server_port``), or Triton's metrics port for ``server_runtime = "triton"``;
- every host: node_exporter (``node_exporter_listen``), which also covers the load
  generators (Locust exports no Prometheus metrics of its own);
- hosts with ``dcgm_exporter = true``: dcgm-exporter (``dcgm_exporter_listen``);
- ``monitoring`` hosts: Prometheus and Alertmanager themselves.

Each target's ``instance`` label is the inventory host name, so one host's server,
node and GPU series join on ``instance``; ``group`` and ``profile`` (the capacity
profile, host data ``capacity_profile``) ride along.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferops.exitcodes import UsageError
from inferops.monitoring import metricnames as m

INFERENCE_GROUPS = ("gpu_nodes", "cpu_nodes")
#: groups in the order a host's ``group`` label is chosen (first match)
GROUP_ORDER = ("gpu_nodes", "cpu_nodes", "loadgen", "monitoring")
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
DEFAULT_PORTS = {"prometheus": PROMETHEUS_PORT, "alertmanager": ALERTMANAGER_PORT}


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    groups: tuple[str, ...]
    data: dict[str, Any] = field(default_factory=dict, compare=False)

    #: the deploy components' defaults (``inferops.deploy.catalog.ALL_DEFAULTS``), passed in
    #: by the caller: this package never imports the deploy package (the deploy renders
    #: through this one).
    defaults: dict[str, Any] = field(default_factory=dict, compare=False)

    def knob(self, key: str) -> Any:
        """Host/group data, else the deploy component's default (as ``deploy.knobs.knob``)."""
        if key in self.data:
            return self.data[key]
        return self.defaults.get(key)

    @property
    def group(self) -> str:
        return next((g for g in GROUP_ORDER if g in self.groups), "other")


#: Without an inventory: this machine, as ``inferops serve`` and the Debian exporters run it.
LOCALHOST = Host(
    "localhost",
    "127.0.0.1",
    ("cpu_nodes", "monitoring"),
    {
        "server_port": 8000,
        "node_exporter_listen": ":9100",
        "prometheus_listen": "127.0.0.1:9090",
        "alertmanager_listen": "127.0.0.1:9093",
    },
)


def read_inventory(path: str | Path, defaults: dict[str, Any]) -> list[Host]:
    """Hosts of a pyinfra inventory file, with their group data merged as pyinfra does."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--inventory {path}: no such file")
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    try:
        with ctx_state.use(State()):
            inventory = make_inventory(str(path), cwd=str(path.resolve().parent))
    except SystemExit:
        raise  # inventory.py already printed "host: key: problem" lines
    except Exception as exc:  # pyinfra raises CliError/TypeError/... for a bad inventory
        raise UsageError(f"--inventory {path}: {exc}") from None
    hosts = []
    for host in inventory:
        data = host.data.dict()
        address = str(data.get("ssh_hostname") or host.name)
        groups = tuple(g for g in host.groups if g in GROUP_ORDER)
        hosts.append(Host(host.name, address, groups, data, defaults))
    if not hosts:
        raise UsageError(f"--inventory {path}: no hosts")
    return hosts


def listen_port(listen: str, key: str, host: Host) -> int:
    """``:9100`` / ``0.0.0.0:9100`` -> 9100."""
    try:
        port = int(str(listen).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        raise UsageError(
            f"{host.name}: {key}: expected an address like :9100, got {listen!r}"
        ) from None
    if not 0 < port < 65536:
        raise UsageError(f"{host.name}: {key}: port out of range in {listen!r}")
    return port


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@dataclass(frozen=True)
class Target:
    job: str
    address: str  #: host:port
    labels: dict[str, str]


def scrape_targets(
    hosts: list[Host], alertmanagers: list[str], profiles: dict[str, str]
) -> list[Target]:
    """Every target Prometheus scrapes. ``profiles`` maps host name -> capacity profile."""
    targets = []
    for host in hosts:
        base = {"instance": host.name, "group": host.group}
        if any(g in INFERENCE_GROUPS for g in host.groups):
            labels = dict(base)
            if host.name in profiles:
                labels["profile"] = profiles[host.name]
            if host.knob("server_runtime") == "triton":
                port, job = m.TRITON_METRICS_PORT, m.JOB_TRITON
            else:
                port, job = _port_knob(host, "server_port"), m.JOB_SERVER
            targets.append(Target(job, _hostport(host.address, port), labels))
        node_port = listen_port(host.knob("node_exporter_listen"), "node_exporter_listen", host)
        targets.append(Target(m.JOB_NODE, _hostport(host.address, node_port), dict(base)))
        if host.knob("dcgm_exporter"):
            port = listen_port(host.knob("dcgm_exporter_listen"), "dcgm_exporter_listen", host)
            targets.append(Target(m.JOB_DCGM, _hostport(host.address, port), dict(base)))
        if "monitoring" in host.groups:
            targets.append(
                Target(m.JOB_PROMETHEUS, monitoring_address(host, "prometheus"), dict(base))
            )
    for address in alertmanagers:
        targets.append(Target(m.JOB_ALERTMANAGER, address, {}))
    return targets


def _port_knob(host: Host, key: str) -> int:
    port = host.knob(key)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise UsageError(f"{host.name}: {key}: expected a port number, got {port!r}")
    return port


def monitoring_address(host: Host, service: str) -> str:
    """Where ``service`` (prometheus, alertmanager) on a monitoring host is reached, from its
    ``<service>_listen`` knob: a loopback bind is reached on 127.0.0.1 (from that host only,
    i.e. by its own Prometheus and Grafana), any other on the host's inventory address."""
    key = f"{service}_listen"
    listen = str(host.knob(key) or f":{DEFAULT_PORTS[service]}")
    port = listen_port(listen, key, host)
    bind = listen.rsplit(":", 1)[0].strip("[]")
    return _hostport("127.0.0.1" if _is_loopback(bind) else host.address, port)


def _is_loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False


def default_alertmanagers(hosts: list[Host]) -> list[str]:
    """Alertmanager runs beside Prometheus on each ``monitoring`` host."""
    found = [monitoring_address(h, "alertmanager") for h in hosts if "monitoring" in h.groups]
    return found or [_hostport("127.0.0.1", ALERTMANAGER_PORT)]


def default_prometheus_url(hosts: list[Host]) -> str:
    """Where Grafana finds Prometheus: the first ``monitoring`` host, else this machine."""
    for host in hosts:
        if "monitoring" in host.groups:
            return f"http://{monitoring_address(host, 'prometheus')}"
    return f"http://127.0.0.1:{PROMETHEUS_PORT}"


def inference_hosts(hosts: list[Host]) -> list[Host]:
    return [h for h in hosts if any(g in INFERENCE_GROUPS for g in h.groups)]
