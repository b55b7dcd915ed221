"""``deploys/loadbalancer.py`` on a real host, in front of three inference hosts deployed by
``deploys/cpu_node.py`` (the session's ``lb_fleet``): nginx spreads requests over the three,
passes the shared bearer token through, answers ``/healthz`` itself, runs its workers with
the raised connection and open-file limits, takes a weight-0 host out with a reload (not a
restart), and a second run changes nothing."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from tests.realhost.deploying import assert_no_changes

pytestmark = pytest.mark.realhost

MODEL = "mlp"


def _infer_body(client: httpx.Client, base: str, headers: dict) -> dict:
    meta = client.get(f"{base}/v2/models/{MODEL}", headers=headers).json()
    spec = meta["inputs"][0]
    shape = [1 if d in (-1, None) else d for d in spec["shape"]]
    count = 1
    for d in shape:
        count *= d
    return {"inputs": [{"name": spec["name"], "shape": shape, "datatype": spec["datatype"],
                        "data": [0.5] * count}]}  # fmt: skip


def _served_by(lb_fleet, requests: int) -> Counter:
    """Which node answered each of ``requests`` inferences through nginx, read from the
    nodes' own request counters (the servers' Prometheus metrics)."""
    before = {n.name: _served(lb_fleet, n) for n in lb_fleet.nodes}
    headers = {"Authorization": f"Bearer {lb_fleet.token}"}
    with httpx.Client(timeout=10) as client:
        body = _infer_body(client, lb_fleet.url, headers)
        for _ in range(requests):
            response = client.post(f"{lb_fleet.url}/v2/models/{MODEL}/infer", json=body,
                                   headers=headers)  # fmt: skip
            assert response.status_code == 200, response.text
    return Counter({n.name: _served(lb_fleet, n) - before[n.name] for n in lb_fleet.nodes})


def _served(lb_fleet, node) -> float:
    headers = {"Authorization": f"Bearer {lb_fleet.token}"}
    text = httpx.get(f"{lb_fleet.node_url(node)}/metrics", headers=headers, timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("inferops_requests_total{") and 'code="200"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_nginx_spreads_requests_over_every_node_with_the_shared_token(lb_fleet):
    health = httpx.get(f"{lb_fleet.url}/healthz", timeout=10)
    assert health.status_code == 200 and health.text == "ok\n"
    # no token: the servers refuse (nginx adds none); the shared token works through it
    assert httpx.get(f"{lb_fleet.url}/v2/models/{MODEL}", timeout=10).status_code == 401
    served = _served_by(lb_fleet, 60)
    assert sum(served.values()) == 60, served
    assert all(served[n.name] >= 5 for n in lb_fleet.nodes), served


def test_workers_run_with_the_raised_connection_and_file_limits(lb_fleet):
    # in force, not just written: nginx -T is the configuration nginx parses, and a
    # worker's own /proc limits say whether worker_rlimit_nofile reached it
    ssh = lb_fleet.fleet.ssh
    parsed = ssh(lb_fleet.lb, "sudo nginx -T 2>/dev/null").stdout
    assert "worker_connections 4096;" in parsed and "worker_rlimit_nofile 8256;" in parsed
    worker = ssh(lb_fleet.lb, "pgrep -f 'nginx: worker process' | head -1").stdout.strip()
    limits = ssh(lb_fleet.lb, f"sudo grep 'Max open files' /proc/{worker}/limits").stdout.split()
    assert limits[3] == "8256", limits  # soft limit: Debian's unit leaves 1024


def test_weight_zero_takes_a_node_out_with_a_reload(lb_fleet):
    pid = lb_fleet.fleet.ssh(lb_fleet.lb, "systemctl show -p MainPID --value nginx").stdout
    drained = lb_fleet.nodes[2]
    try:
        result = lb_fleet.use_nodes(2)
        assert any("nginx -t" in name for name in result.changed_ops), result.changed_ops
        served = _served_by(lb_fleet, 30)
        assert served[drained.name] == 0, served
        assert sum(served.values()) == 30
        after = lb_fleet.fleet.ssh(lb_fleet.lb, "systemctl show -p MainPID --value nginx").stdout
        assert after == pid  # reloaded, never restarted
        conf = lb_fleet.fleet.ssh(lb_fleet.lb, "cat /etc/nginx/conf.d/inferops-lb.conf").stdout
        assert f"down;  # {drained.name}" in conf
    finally:
        lb_fleet.use_nodes(3)


def test_second_run_changes_nothing(lb_fleet):
    assert_no_changes(lb_fleet.redeploy_lb())
