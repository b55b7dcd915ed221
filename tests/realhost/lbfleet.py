"""Three inference hosts behind one nginx host, deployed by the project's own deploys.

``LbFleet.deploy()`` runs ``deploys/cpu_node.py`` on the ``cpu_nodes`` (one pyinfra
run, hosts in parallel) while ``deploys/loadbalancer.py`` runs on the ``loadbalancer``
host, both through the repository's ``inventory.py`` pointed at a fleet file that
holds only these four hosts. All servers share one bearer token
(``server_token_name``), which a client sends through nginx as it would to one server.

After the deploy each host is capped at a fixed share of a core (``NODE_QUOTA_PCT``,
``LB_QUOTA_PCT``), so three servers, nginx and the load generator fit on two cores and
a host's capacity is a known fraction of one: what the scaling measurement needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.hosts.fleet import Fleet
from tests.hosts.machine import Host
from tests.hosts.pyinfra_run import REPO, RunResult
from tests.realhost.deploying import CPU_NODE, SERVER_PORT, SERVER_UNIT, Deployer

LOADBALANCER = REPO / "deploys/loadbalancer.py"
TOKEN_NAME = "lb-fleet"
LB_PORT = 80
NODE_QUOTA_PCT = 25.0
LB_QUOTA_PCT = 50.0
#: knobs for every host of this fleet: a fast passive health check for the fault test
FLEET_DATA = {
    "server_token_name": TOKEN_NAME,
    "lb_max_fails": 1,
    "lb_fail_timeout": "5s",
    "lb_connect_timeout": "1s",
    "lb_read_timeout": "10s",
    # the rollout test's "breaks under sustained load" version declares a delay in its
    # metadata (inferops/server/faults.py); servers honour it only when allowed
    "server_allow_fault_injection": True,
}


@dataclass
class LbFleet:
    fleet: Fleet
    deployer: Deployer
    nodes: list[Host]
    lb: Host
    data: dict = field(default_factory=lambda: dict(FLEET_DATA))
    fleet_file: Path | None = None

    # --- where things are ---------------------------------------------------
    @property
    def url(self) -> str:
        """nginx: what a client (or ``inferops bench --host``) is pointed at."""
        return f"http://{self.lb.ip}:{LB_PORT}"

    def node_url(self, node: Host) -> str:
        return f"http://{node.ip}:{SERVER_PORT}"

    @property
    def token_file(self) -> Path:
        """The shared bearer token on the control machine (0600)."""
        return self.deployer.state_dir / "tokens" / TOKEN_NAME

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()

    @property
    def inventory(self) -> Path:
        return REPO / "inventory.py"

    @property
    def env(self) -> dict[str, str]:
        """Environment for running pyinfra (or ``PyinfraFleet``) against this fleet."""
        return {**self.deployer.env, "INFEROPS_FLEET": str(self.fleet_file)}

    # --- deploying ------------------------------------------------------------
    def write_fleet_file(self, name: str = "lb-fleet.toml", **data) -> Path:
        """The fleet file for these four hosts; ``data`` overrides knobs for all of them."""
        groups = {n.name: ("cpu_nodes",) for n in self.nodes} | {self.lb.name: ("loadbalancer",)}
        return self.deployer.write_fleet(
            name, data={**self.data, **data}, host_groups=groups, hosts=[*self.nodes, self.lb]
        )

    def deploy(self, **data) -> tuple[RunResult, RunResult]:
        """cpu_node on the nodes and loadbalancer on nginx, concurrently; both must pass."""
        self.data.update(data)
        self.fleet_file = self.write_fleet_file()
        with ThreadPoolExecutor(max_workers=2) as pool:
            nodes = pool.submit(self._run, CPU_NODE, "cpu_nodes")
            lb = pool.submit(self._run, LOADBALANCER, "loadbalancer")
            results = nodes.result(), lb.result()
        for result in results:
            assert result.returncode == 0, result.tail()
        return results

    def redeploy_lb(self, weights: dict[str, int] | None = None, **data) -> RunResult:
        """Re-run the load-balancer deploy with changed data (``weights``: ``lb_weights``),
        as the release engine does: ``--data`` on the command line, the fleet file as is."""
        if weights is not None:
            data["lb_weights"] = weights
        options = []
        for key, value in data.items():
            options += ["--data", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
        result = self._run(LOADBALANCER, "loadbalancer", tuple(options))
        assert result.returncode == 0, result.tail()
        return result

    def use_nodes(self, count: int) -> RunResult:
        """Send traffic to the first ``count`` nodes only (the others weight 0: down)."""
        weights = {n.name: (1 if i < count else 0) for i, n in enumerate(self.nodes)}
        return self.redeploy_lb(weights)

    def _run(self, deploy: Path, limit: str, options: tuple = ()) -> RunResult:
        return self.deployer.run(
            deploy, fleet_file=self.fleet_file, options=(*options, "--limit", limit)
        )

    # --- quotas and faults --------------------------------------------------------
    def apply_quotas(self, node_pct: float = NODE_QUOTA_PCT, lb_pct: float = LB_QUOTA_PCT) -> None:
        for node in self.nodes:
            self.fleet.set_cpu_quota(node, node_pct)
        self.fleet.set_cpu_quota(self.lb, lb_pct)

    def kill_server(self, node: Host, hang_s: float = 1.0) -> None:
        """Crash the node's server and keep it down: it hangs ``hang_s`` (SIGSTOP; requests
        nginx sends meanwhile wait on it), then dies (SIGKILL) and is not restarted (a
        runtime drop-in sets ``Restart=no`` until ``revive_server``): what a wedged server
        killed by a watchdog does to the requests it holds."""
        self.fleet.ssh(
            node,
            f"sudo mkdir -p {_DROPIN_DIR} && printf '[Service]\\nRestart=no\\n' "
            f"| sudo tee {_DROPIN_DIR}/{_FAULT_DROPIN} >/dev/null && sudo systemctl daemon-reload "
            f"&& sudo systemctl kill --kill-whom=main -s SIGSTOP {SERVER_UNIT} && sleep {hang_s} "
            f"&& sudo systemctl kill --kill-whom=main -s SIGKILL {SERVER_UNIT}",
        )

    def revive_server(self, node: Host) -> None:
        """Bring the server back (uncapped while it starts: importing the runtime at 25 % of
        a core takes a minute on a busy machine), then cap the node again."""
        self.fleet.set_cpu_quota(node, None)
        self.fleet.ssh(
            node,
            f"sudo systemctl kill --kill-whom=main -s SIGCONT {SERVER_UNIT} 2>/dev/null; "
            f"sudo rm -f {_DROPIN_DIR}/{_FAULT_DROPIN} && sudo systemctl daemon-reload; "
            f"sudo systemctl reset-failed {SERVER_UNIT}; sudo systemctl start {SERVER_UNIT} && "
            f"for i in $(seq 60); do curl -m 2 -fsS http://127.0.0.1:{SERVER_PORT}/v2/health/ready "
            ">/dev/null && exit 0; sleep 0.5; done; exit 1",
        )
        self.fleet.set_cpu_quota(node, NODE_QUOTA_PCT)


_DROPIN_DIR = f"/run/systemd/system/{SERVER_UNIT}.service.d"
_FAULT_DROPIN = "zz-inferops-fault.conf"


# --- scaling measurement (the realhost test and benchmarks/fleet_scaling.py) -----------


@dataclass
class SweepSettings:
    slo_p99_ms: float = 50.0
    start_qps: float = 40.0
    duration: str = "6s"
    warmup: str = "2s"
    precision: float = 0.05
    budget: str = "60s"
    #: a send later than this counts as late (bench's default is 5 % of the SLO, 2.5 ms):
    #: latency is measured from the intended send time anyway, and a shared 2-core box
    #: wakes the generator a few ms late under load
    late_tolerance_ms: float = 10.0


def bench(lb_fleet: LbFleet, target: str, out: Path, nodes: int, s: SweepSettings,
          extra: tuple = ()) -> int:  # fmt: skip
    """``inferops bench --sweep`` (the real CLI, a subprocess) at ``target``; its exit code."""
    import os
    import subprocess
    import sys

    cmd = [
        sys.executable, "-m", "inferops", "bench", "--target", target, "--model", "mlp",
        "--sweep", "--slo-p99-ms", str(s.slo_p99_ms), "--sweep-start", str(s.start_qps),
        "--sweep-precision", str(s.precision), "--sweep-budget", s.budget,
        "--duration", s.duration, "--warmup", s.warmup, "--nodes", str(nodes),
        "--profile", f"mlp-{nodes}-node{'s' if nodes > 1 else ''}"
        + ("" if target == lb_fleet.url else "-direct"), "--out", str(out),
        "--late-tolerance-ms", str(s.late_tolerance_ms), "--overwrite", "--quiet", *extra,
    ]  # fmt: skip
    env = {**os.environ, "INFEROPS_TOKEN": lb_fleet.token}
    return subprocess.run(cmd, env=env, timeout=900).returncode


def measure_scaling(lb_fleet: LbFleet, out: Path, s: SweepSettings,
                    counts: tuple[int, ...] = (1, 2, 3), direct: bool = False) -> list[Path]:  # fmt: skip
    """``counts`` nodes swept through nginx (the others at weight 0), each sweep starting at
    N x the one-node start rate, after one node swept straight at it when ``direct`` (to
    show what the balancer costs); the run folders, ready for ``inferops report``."""
    from dataclasses import replace

    runs = []
    if direct:
        runs.append(out / "n1-direct")
        with recording_nodes(lb_fleet, runs[-1]):
            bench(lb_fleet, lb_fleet.node_url(lb_fleet.nodes[0]), runs[0], 1, s)
    try:
        for count in counts:
            lb_fleet.use_nodes(count)
            runs.append(out / f"n{count}-nginx")
            with recording_nodes(lb_fleet, runs[-1]):
                bench(lb_fleet, lb_fleet.url, runs[-1], count,
                      replace(s, start_qps=count * s.start_qps))  # fmt: skip
    finally:
        lb_fleet.use_nodes(len(lb_fleet.nodes))
    return runs


# --- what each node's server did during a sweep (its own /metrics) ---------------------


def node_counters(lb_fleet: LbFleet) -> dict[str, dict | None]:
    """Each node's server counters now, from its ``/metrics``: rows and model executions
    (the dynamic-batch histogram), process CPU seconds, requests by status code; ``None``
    for a node that did not answer."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    counters: dict[str, dict | None] = {}
    for node in lb_fleet.nodes:
        try:
            with urllib.request.urlopen(f"{lb_fleet.node_url(node)}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            counters[node.name] = None
            continue
        c = {"rows": 0.0, "batches": 0.0, "cpu_s": 0.0, "requests": {}}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "inferops_batch_size_sum":
                    c["rows"] += sample.value
                elif sample.name == "inferops_batch_size_count":
                    c["batches"] += sample.value
                elif sample.name == "process_cpu_seconds_total":
                    c["cpu_s"] = sample.value
                elif sample.name == "inferops_requests_total":
                    code = sample.labels.get("code", "?")
                    c["requests"][code] = c["requests"].get(code, 0.0) + sample.value
        counters[node.name] = c
    return counters


def node_deltas(before: dict, after: dict) -> dict[str, dict | None]:
    """What each node did between two ``node_counters`` readings: requests by code, rows,
    mean batch and server CPU per row. ``None`` where a reading is missing or the counters
    went backwards (the server restarted in between)."""
    deltas: dict[str, dict | None] = {}
    for name, b in before.items():
        a = after.get(name)
        if a is None or b is None or a["rows"] < b["rows"] or a["cpu_s"] < b["cpu_s"]:
            deltas[name] = None
            continue
        rows, batches = a["rows"] - b["rows"], a["batches"] - b["batches"]
        cpu = a["cpu_s"] - b["cpu_s"]
        codes = {k: round(v - b["requests"].get(k, 0.0)) for k, v in a["requests"].items()}
        deltas[name] = {
            "requests": {k: v for k, v in codes.items() if v},
            "rows": round(rows),
            "mean_batch": round(rows / batches, 2) if batches else None,
            "cpu_s": round(cpu, 2),
            "cpu_us_per_row": round(1e6 * cpu / rows) if rows else None,
        }
    return deltas


@contextmanager
def recording_nodes(lb_fleet: LbFleet, run: Path) -> Iterator[None]:
    """Around one sweep: writes ``<run>.nodes.json`` beside the run folder (not in it: the
    run folder is bench's, written atomically) with ``node_deltas`` over the sweep."""
    before = node_counters(lb_fleet)
    try:
        yield
    finally:
        deltas = node_deltas(before, node_counters(lb_fleet))
        path = run.with_name(run.name + ".nodes.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(deltas, indent=1) + "\n")
