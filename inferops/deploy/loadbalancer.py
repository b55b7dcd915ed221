"""nginx (Debian's package) in front of the inference hosts of the inventory.

The upstream list is generated from the inventory pyinfra is running: every host of
``lb_upstream_groups`` (``gpu_nodes`` and ``cpu_nodes`` by default), at its address
(``ssh_hostname``, else its name) and its ``server_port``. Per host:

- ``weight`` from ``lb_weights`` (``{host: weight}``, default 1); weight 0 marks the
  host ``down``: it gets no new requests (how the release engine drains a node, see
  ``inferops.release.actions.PyinfraFleet.set_weights``);
- passive health checks: ``max_fails`` failures within ``fail_timeout`` take a host
  out for ``fail_timeout``.

Balancing is ``least_conn`` with ``keepalive`` connections to the upstreams. A
request is retried on the next upstream only when the connection to the first one
failed (``proxy_next_upstream error timeout``): nginx never re-sends a non-idempotent
request (POST: every inference call) once it reached an upstream, so a host dying
mid-request costs that request, never a duplicate inference.

``/healthz`` is answered by nginx itself (the balancer is up; it says nothing about the
upstreams). Bearer tokens pass through untouched: the servers check them, so every
host behind one balancer shares one token (``server_token_name``); nginx holds no
secret, and its access log (Debian's ``combined`` format) never records the
``Authorization`` header.

The configuration is rendered on the control machine, uploaded as a candidate,
swapped in only if ``nginx -t`` accepts the whole configuration with it (else the
previous file is put back and the run fails) and applied with a reload: in-flight
requests finish on the old workers, nothing restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from inferops.deploy import ops
from inferops.deploy.common import install_packages, require, template
from inferops.deploy.knobs import (
    Check,
    Knob,
    declare,
    declared_defaults,
    integer,
    knob,
    listen_address,
    str_list,
    string,
)
from inferops.deploy.platform import detect

SERVICE = "nginx"
UPSTREAM = "inferops_servers"
LIVE_CONF = "/etc/nginx/conf.d/inferops-lb.conf"
MAIN_CONF = "/etc/nginx/nginx.conf"
CANDIDATE_CONF = "/etc/nginx/inferops-lb.conf.candidate"
DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
INFERENCE_GROUPS = ("gpu_nodes", "cpu_nodes")
_DURATION = r"^\d+(ms|s|m|h)?$"


def weights_map() -> Check:
    """``{host name: integer weight >= 0}``; 0 marks the host down."""

    def check(value):
        if not isinstance(value, dict):
            return f"expected a mapping host -> weight, got {type(value).__name__} {value!r}"
        for name, weight in value.items():
            if not isinstance(name, str) or not name:
                return f"host names must be strings, found {name!r}"
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
                return f"{name}: weight must be an integer >= 0 (0 = down), got {weight!r}"
        return None

    return Check(check)


KNOBS = (
    Knob(
        "lb_listen",
        "0.0.0.0:80",
        listen_address("0.0.0.0:80"),
        "where nginx accepts client traffic (address:port)",
    ),
    Knob(
        "lb_upstream_groups",
        list(INFERENCE_GROUPS),
        str_list(what="inventory group"),
        "inventory groups whose hosts (address + server_port) form the upstream",
    ),
    Knob(
        "lb_weights",
        {},
        weights_map(),
        "per-host weight {host: weight} (default 1); 0 takes the host out (nginx 'down'); "
        "the release engine sets it to drain and shift traffic",
    ),
    Knob(
        "lb_max_fails",
        3,
        integer(0, 1000),
        "passive health check: failed attempts within lb_fail_timeout that take a host out "
        "(0: never)",
    ),
    Knob(
        "lb_fail_timeout",
        "10s",
        string(pattern=_DURATION, what="an nginx duration like 10s"),
        "passive health check: the window for lb_max_fails, and how long a failed host stays out",
    ),
    Knob(
        "lb_keepalive",
        32,
        integer(1, 100000),
        "idle keepalive connections to the upstreams kept per nginx worker",
    ),
    Knob(
        "lb_worker_connections",
        4096,
        integer(512, 1_000_000),
        "connections each nginx worker may hold open, clients and upstreams together "
        "(Debian ships 768): a proxied request holds two, an LLM stream for minutes",
    ),
    Knob(
        "lb_connect_timeout",
        "2s",
        string(pattern=_DURATION, what="an nginx duration like 2s"),
        "how long nginx waits to connect to an upstream before trying the next one",
    ),
    Knob(
        "lb_read_timeout",
        "300s",
        string(pattern=_DURATION, what="an nginx duration like 300s"),
        "longest silence from an upstream mid-response (LLM streams need minutes)",
    ),
)
DEFAULTS = declare(__name__, KNOBS)


@dataclass(frozen=True)
class Upstream:
    name: str
    address: str
    port: int
    weight: int
    #: the only server not ``down``: never marked failed (see ``upstreams``)
    last_live: bool = False

    @property
    def server_line(self) -> str:
        hostport = (
            f"[{self.address}]:{self.port}"
            if ":" in self.address
            else (f"{self.address}:{self.port}")
        )
        if self.weight == 0:
            return f"server {hostport} down;  # {self.name}"
        max_fails = 0 if self.last_live else knob("lb_max_fails")
        options = f"weight={self.weight} max_fails={max_fails}"
        return f"server {hostport} {options} fail_timeout={knob('lb_fail_timeout')};  # {self.name}"


def upstreams() -> list[Upstream]:
    """The inference hosts of the running inventory, in inventory order, with weights.

    Refuses (before any change) a weight for a host that is not an upstream (a typo
    would otherwise leave the intended host at full weight), an upstream bound to
    loopback (unreachable from here), hosts that do not share one bearer token, and an
    empty list.
    """
    groups = knob("lb_upstream_groups")
    weights = dict(knob("lb_weights"))
    defaults = declared_defaults()
    found: list[Upstream] = []
    tokens: dict[str, list[str]] = {}
    for item in host.state.inventory:
        if not any(g in groups for g in item.groups):
            continue
        data = item.data.dict()

        def value(key, data=data):
            return data[key] if key in data else defaults.get(key)

        bind = str(value("server_bind") or "0.0.0.0")
        require(
            not bind.startswith("127.") and bind not in ("localhost", "::1"),
            "lb_upstream_groups",
            f"{item.name} binds {bind} (loopback): the load balancer cannot reach it",
        )
        token = value("server_token_name") or item.name
        tokens.setdefault(token, []).append(item.name)
        address = str(data.get("ssh_hostname") or item.name)
        found.append(
            Upstream(item.name, address, int(value("server_port")), weights.pop(item.name, 1))
        )
    require(
        not weights,
        "lb_weights",
        f"no upstream host named {', '.join(sorted(weights))} "
        f"(upstreams: {', '.join(u.name for u in found) or 'none'})",
    )
    require(
        bool(found),
        "lb_upstream_groups",
        f"no host in {', '.join(groups)}: nothing to balance",
    )
    # nginx never marks the only server of a group unavailable, but a group whose other
    # servers are "down" (drained) is not such a group: one failed connect would take the
    # last live node out for fail_timeout and every request would get 502 (the likely cause
    # of the 27 % errors one test-fleet node behind nginx answered at 300 req/s, where three
    # nodes shifted the load). So the last live server gets max_fails=0, as if alone.
    live = [u for u in found if u.weight > 0]
    if len(live) == 1 and len(found) > 1:
        found = [replace(u, last_live=True) if u is live[0] else u for u in found]
    require(
        len(tokens) == 1,
        "server_token_name",
        "the upstream hosts have different bearer tokens, so no client token works "
        "through the balancer: give them one server_token_name ("
        + "; ".join(f"{t}: {', '.join(n)}" for t, n in tokens.items())
        + ")",
    )
    return found


@deploy("nginx load balancer", data_defaults=DEFAULTS)
def loadbalancer():
    """Install nginx and keep the checked upstream configuration in place."""
    platform = detect(host)
    require(
        platform.family == "debian",
        "loadbalancer",
        f"nginx is installed from the Debian/Ubuntu packages; this host is {platform.family}",
    )
    servers = upstreams()  # refuses bad upstream data before anything changes
    # curl: the /healthz check after a change.
    install_packages(platform, ["nginx", "curl"], name="Install nginx")
    # Debian's default site claims port 80 as default_server: the balancer takes it over.
    default_site = files.link(
        name="Remove Debian's default nginx site", path=DEFAULT_SITE, present=False
    )
    worker_limits = _worker_limits(knob("lb_worker_connections"))
    bind, port = knob("lb_listen").rsplit(":", 1)
    candidate = files.template(
        name=f"Upload the nginx configuration candidate ({CANDIDATE_CONF})",
        src=template("nginx-lb.conf.j2"),
        dest=CANDIDATE_CONF,
        mode="644",
        upstream=UPSTREAM,
        servers=servers,
        keepalive=knob("lb_keepalive"),
        listen=f"{bind}:{port}" if bind else port,
        connect_timeout=knob("lb_connect_timeout"),
        read_timeout=knob("lb_read_timeout"),
    )
    reload = f"{{ ! systemctl is-active -q {SERVICE} || systemctl reload {SERVICE}; }}"
    promote = ops.swap_in_tested(
        name=f"Check the configuration with nginx -t, swap it into {LIVE_CONF}, reload",
        candidate=CANDIDATE_CONF,
        live=LIVE_CONF,
        test="nginx -t -q",
        reload=reload,
    )
    server.shell(
        name="Reload nginx (default site or worker limits changed)",
        commands=[f"nginx -t -q && {reload}"],
        _if=lambda: (
            any(op.did_change() for op in (default_site, *worker_limits))
            and not promote.did_change()
        ),
    )
    systemd.service(name=f"Enable and start {SERVICE}", service=SERVICE, running=True, enabled=True)
    probe = "127.0.0.1" if bind in ("", "0.0.0.0", "*") else bind
    server.shell(
        name="Check nginx answers /healthz",
        commands=[
            f"for i in $(seq 20); do curl -fsS http://{probe}:{port}/healthz >/dev/null "
            f"&& echo 'nginx serving http://{probe}:{port}/healthz' && exit 0; sleep 0.5; done; "
            f"journalctl -u {SERVICE} -n 20 --no-pager; "
            f"echo 'nginx not answering http://{probe}:{port}/healthz' >&2; exit 1"
        ],
        _if=any_changed(candidate, promote, default_site, *worker_limits),
    )


def _worker_limits(connections: int) -> list:
    """``worker_connections`` and the open-file limit it needs, in Debian's nginx.conf.

    Both live outside the ``http {}`` context that conf.d is included in, so they
    are set line by line in the package's own file. Under overload, or with LLM
    streams held for minutes, Debian's 768 runs out: nginx then drops connections
    ("worker_connections are not enough"). Every connection is a file descriptor,
    and the service's soft limit (1024) is below what the knob allows, hence
    ``worker_rlimit_nofile`` (appended at the top level when absent).
    """
    return [
        files.line(
            name=f"Set nginx worker_connections to {connections}",
            path=MAIN_CONF,
            line=r"^\s*worker_connections\s",
            replace=f"    worker_connections {connections};",
        ),
        files.line(
            name="Raise nginx's open-file limit to match",
            path=MAIN_CONF,
            line=r"^worker_rlimit_nofile\s",
            replace=f"worker_rlimit_nofile {2 * connections + 64};",
        ),
    ]
