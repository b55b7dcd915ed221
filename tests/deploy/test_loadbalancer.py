"""``inferops.deploy.loadbalancer`` at operation level (fake host: facts in, commands out).

The upstream list comes from the inventory's other hosts, so these cases build an
inventory with inference hosts that are never contacted; only the fake LB host runs.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from pyinfra.api.exceptions import PyinfraError

from inferops.deploy.loadbalancer import (
    CANDIDATE_CONF,
    DEFAULT_SITE,
    LIVE_CONF,
    MAIN_CONF,
    loadbalancer,
)
from inferops.deploy.validate import validate_data

from .harness import run
from .profiles import merge, profile

NODES = [
    ("cpu-1", {"ssh_hostname": "10.0.0.21"}, ("cpu_nodes",)),
    ("cpu-2", {"ssh_hostname": "10.0.0.22", "server_port": 9000}, ("cpu_nodes",)),
    ("gpu-1", {"ssh_hostname": "10.0.0.11"}, ("gpu_nodes",)),
    ("mon-1", {"ssh_hostname": "10.0.0.31"}, ("monitoring",)),
]
SHARED = {"server_token_name": "fleet"}
INSTALLED = {"DebPackages": {"nginx": ["1.22.1-9"], "curl": ["7.88.1-10"]}}
_GREP = f"extended_regex=false,interpolate_variables=false,path={MAIN_CONF},pattern="


def _main_conf(connections: str, rlimit: str | None) -> dict:
    """FindInFile answers for nginx.conf's worker lines (grep's matches, [] for none)."""
    return {
        "FindInFile": {
            _GREP + r"^\s*worker_connections\s.*$": [connections],
            _GREP + r"^worker_rlimit_nofile\s.*$": [rlimit] if rlimit else [],
        }
    }


#: nginx.conf as Debian's package ships it, and as the deploy leaves it
DEBIAN_MAIN_CONF = _main_conf("\tworker_connections 768;", None)
TUNED_MAIN_CONF = _main_conf("    worker_connections 4096;", "worker_rlimit_nofile 8256;")


def _nodes(extra: dict | None = None):
    return [(n, {**SHARED, **d, **(extra or {}).get(n, {})}, g) for n, d, g in NODES]


def _lb(data=None, facts=None, nodes=None, **kwargs):
    return run(
        [loadbalancer],
        merge(profile("debian12"), facts or {}),
        data or {},
        host_name="lb-1",
        groups=("loadbalancer",),
        others=_nodes() if nodes is None else nodes,
        **kwargs,
    )


def _servers(conf: str) -> list[str]:
    return [
        line.strip() for line in conf.splitlines() if re.match(r"server \S+:\d+ ", line.strip())
    ]


def test_fresh_host_installs_nginx_renders_upstreams_checks_and_reloads():
    # (the candidate's digest as it reads once uploaded; no live file yet)
    # Debian's package enables its default site
    result = _lb(
        facts={
            "Sha256File": {f"path={CANDIDATE_CONF}": "b" * 64},
            "Link": {f"path={DEFAULT_SITE}": {"link_target": "/etc/nginx/sites-available/default"}},
        }
    )
    assert result.has_command("apt-get") and result.has_command("nginx")
    conf = result.uploads[CANDIDATE_CONF]
    # every inference host, at its address and server_port, in inventory order
    assert _servers(conf) == [
        "server 10.0.0.21:8000 weight=1 max_fails=3 fail_timeout=10s;  # cpu-1",
        "server 10.0.0.22:9000 weight=1 max_fails=3 fail_timeout=10s;  # cpu-2",
        "server 10.0.0.11:8000 weight=1 max_fails=3 fail_timeout=10s;  # gpu-1",
    ]
    assert "10.0.0.31" not in conf  # the monitoring host is no upstream
    for directive in (
        "least_conn;",
        "keepalive 32;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_next_upstream error timeout;",
        "location = /healthz",
        "listen 0.0.0.0:80 default_server;",
    ):
        assert directive in conf, directive
    assert "non_idempotent" not in re.sub(r"#.*", "", conf)  # a POST is never re-sent
    # the candidate is tested in place by nginx -t before the reload
    promote = result.op("swap it into").commands[0]
    assert promote.index("nginx -t -q") < promote.index("systemctl reload nginx")
    assert f"cp {CANDIDATE_CONF} {LIVE_CONF}.new" in promote
    assert "restart" not in promote
    assert result.has_command(f"rm -f {DEFAULT_SITE}")
    assert result.op("Check nginx answers /healthz").commands


def test_weights_set_weight_and_zero_means_down():
    conf = _lb({"lb_weights": {"cpu-1": 3, "cpu-2": 0}}).uploads[CANDIDATE_CONF]
    servers = _servers(conf)
    assert servers[0].startswith("server 10.0.0.21:8000 weight=3 ")
    assert servers[1] == "server 10.0.0.22:9000 down;  # cpu-2"
    assert servers[2].startswith("server 10.0.0.11:8000 weight=1 ")


def test_the_last_live_server_is_never_marked_failed():
    # the others drained (weight 0): one failed connect must not take the service out
    conf = _lb({"lb_weights": {"cpu-2": 0, "gpu-1": 0}, "lb_max_fails": 2}).uploads[CANDIDATE_CONF]
    assert _servers(conf) == [
        "server 10.0.0.21:8000 weight=1 max_fails=0 fail_timeout=10s;  # cpu-1",
        "server 10.0.0.22:9000 down;  # cpu-2",
        "server 10.0.0.11:8000 down;  # gpu-1",
    ]
    # two live servers: the passive health check applies to both
    conf = _lb({"lb_weights": {"gpu-1": 0}, "lb_max_fails": 2}).uploads[CANDIDATE_CONF]
    assert [s for s in _servers(conf) if "down" not in s] == [
        "server 10.0.0.21:8000 weight=1 max_fails=2 fail_timeout=10s;  # cpu-1",
        "server 10.0.0.22:9000 weight=1 max_fails=2 fail_timeout=10s;  # cpu-2",
    ]


def test_health_check_and_timeout_knobs_reach_the_config():
    data = {
        "lb_max_fails": 1,
        "lb_fail_timeout": "3s",
        "lb_keepalive": 8,
        "lb_connect_timeout": "500ms",
        "lb_read_timeout": "30s",
        "lb_listen": "10.0.0.5:8080",
        "lb_upstream_groups": ["cpu_nodes"],
    }
    conf = _lb(data).uploads[CANDIDATE_CONF]
    assert _servers(conf) == [
        "server 10.0.0.21:8000 weight=1 max_fails=1 fail_timeout=3s;  # cpu-1",
        "server 10.0.0.22:9000 weight=1 max_fails=1 fail_timeout=3s;  # cpu-2",
    ]
    for directive in (
        "keepalive 8;",
        "proxy_connect_timeout 500ms;",
        "proxy_read_timeout 30s;",
        "listen 10.0.0.5:8080 default_server;",
    ):
        assert directive in conf, directive


def _installed_with_upstreams_in_place(main_conf: dict):
    """nginx installed, the live upstream file equal to the candidate, nginx.conf as given."""
    digest = "a" * 64
    facts = {
        **INSTALLED,
        **main_conf,
        "Sha256File": {f"path={CANDIDATE_CONF}": digest, f"path={LIVE_CONF}": digest},
    }
    return _lb(
        facts=facts,
        assume_unchanged=("Upload the nginx configuration", "Remove Debian's default", "Enable"),
    )


def test_converged_host_changes_nothing():
    # the candidate uploaded earlier equals the live file: no test, no reload, no check
    result = _installed_with_upstreams_in_place(TUNED_MAIN_CONF)
    assert [op.name for op in result.changed_ops()] == []
    assert any(f"{LIVE_CONF} already matches" in n for n in result.noops)
    assert not result.has_command("nginx -t")


def test_worker_limits_replace_debians_768_and_only_reload():
    result = _installed_with_upstreams_in_place(DEBIAN_MAIN_CONF)
    changed = [op.name.removeprefix("nginx load balancer | ") for op in result.changed_ops()]
    assert changed[:2] == [
        "Set nginx worker_connections to 4096",
        "Raise nginx's open-file limit to match",
    ]
    (sed,) = result.op("Set nginx worker_connections").commands
    assert sed.startswith("sed -i") and "worker_connections 4096;" in sed and MAIN_CONF in sed
    (append,) = result.op("Raise nginx's open-file limit").commands
    assert append == f"echo 'worker_rlimit_nofile 8256;' >> {MAIN_CONF}"
    # checked by nginx -t, then applied with a reload (new workers), never a restart
    assert result.has_command("nginx -t -q && { ! systemctl is-active -q nginx || systemctl reload")
    assert not result.has_command("restart nginx")
    assert "Check nginx answers /healthz" in changed


def test_worker_connections_knob_sizes_the_file_limit():
    result = _lb({"lb_worker_connections": 20000}, facts={**INSTALLED, **DEBIAN_MAIN_CONF})
    assert "worker_connections 20000;" in result.op("Set nginx worker_connections").commands[0]
    assert "worker_rlimit_nofile 40064;" in result.op("Raise nginx's open-file").commands[0]


def test_changed_weights_only_reload():
    facts = {
        **INSTALLED,
        **TUNED_MAIN_CONF,
        "Sha256File": {f"path={CANDIDATE_CONF}": "b" * 64, f"path={LIVE_CONF}": "a" * 64},
    }
    result = _lb(
        {"lb_weights": {"gpu-1": 0}},
        facts=facts,
        assume_unchanged=("Remove Debian's default", "Enable"),
    )
    changed = [op.name for op in result.changed_ops()]
    assert any("swap it into" in name for name in changed)
    assert result.has_command("systemctl reload nginx")
    assert not result.has_command("systemctl restart") and not result.has_command("restart nginx")


@pytest.mark.parametrize(
    ("data", "nodes", "message"),
    [
        ({"lb_weights": {"cpu-9": 0}}, None, "lb_weights: no upstream host named cpu-9"),
        ({"lb_upstream_groups": ["loadgen"]}, None, "no host in loadgen"),
        (
            {},
            _nodes({"cpu-2": {"server_token_name": None}}),
            "server_token_name: the upstream hosts have different bearer tokens",
        ),
        (
            {},
            _nodes({"gpu-1": {"server_bind": "127.0.0.1"}}),
            "gpu-1 binds 127.0.0.1 (loopback)",
        ),
    ],
)
def test_bad_upstream_data_stops_before_any_change(data, nodes, message):
    with pytest.raises(PyinfraError) as info:
        _lb(data, nodes=nodes)
    assert message in str(info.value)
    assert str(info.value).startswith("lb-1: ")


def test_rocky_is_refused():
    with pytest.raises(PyinfraError, match="Debian/Ubuntu packages"):
        run(
            [loadbalancer],
            profile("rocky9"),
            {},
            host_name="lb-1",
            groups=("loadbalancer",),
            others=_nodes(),
        )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("lb_weights", {"cpu-1": -1}),
        ("lb_weights", {"cpu-1": True}),
        ("lb_weights", ["cpu-1"]),
        ("lb_max_fails", -1),
        ("lb_worker_connections", 100),
        ("lb_worker_connections", "lots"),
        ("lb_fail_timeout", "ten seconds"),
        ("lb_listen", "80"),
        ("server_token_name", "../etc/passwd"),
    ],
)
def test_knob_schema_refuses_bad_values(key, value):
    assert [k for k, _ in validate_data({key: value})] == [key]


def test_weights_from_pyinfra_data_flag_are_accepted():
    # the release engine passes --data lb_weights='{"a": 0}'; pyinfra's CLI parses the value
    # as JSON (pyinfra_cli.util.parse_cli_arg: not imported here, it gevent-patches the process)
    assert validate_data({"lb_weights": json.loads('{"cpu-1": 0, "cpu-2": 2}')}) == []


def _swap_command(tmp_path, test: str) -> tuple[str, Path, Path]:
    """The shell command ``ops.swap_in_tested`` yields, for files under ``tmp_path``."""
    from pyinfra.api import deploy

    from inferops.deploy import ops

    candidate, live = tmp_path / "lb.conf.candidate", tmp_path / "lb.conf"

    @deploy("swap")
    def swap():
        ops.swap_in_tested(
            name="swap it in",
            candidate=str(candidate),
            live=str(live),
            test=test,
            reload=f"touch {tmp_path}/reloaded",
        )

    facts = {"Sha256File": {f"path={candidate}": "b" * 64, f"path={live}": "a" * 64}}
    result = run([swap], merge(profile("debian12"), facts), {})
    return result.op("swap it in").commands[0], candidate, live


@pytest.mark.parametrize("accepted", [True, False])
def test_swap_in_tested_restores_the_previous_file_when_the_test_refuses(tmp_path, accepted):
    # the real command, run by a real shell on local files: the test sees the new file in
    # place; a refusal puts the old one back and never reloads
    command, candidate, live = _swap_command(
        tmp_path, f"grep -q new {tmp_path}/lb.conf" if accepted else "false"
    )
    candidate.write_text("new\n")
    live.write_text("old\n")
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    assert (done.returncode == 0) is accepted, done.stderr
    assert live.read_text() == ("new\n" if accepted else "old\n")
    assert (tmp_path / "reloaded").exists() is accepted
    assert not (tmp_path / "lb.conf.inferops-previous").exists()
    if not accepted:
        assert "refused the new" in done.stderr


def test_swap_in_tested_removes_a_refused_first_file(tmp_path):
    command, candidate, live = _swap_command(tmp_path, "false")
    candidate.write_text("new\n")
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    assert done.returncode != 0 and not live.exists()
