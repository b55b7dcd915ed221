"""The real effects of a rollout: pyinfra, ``inferops bench``, ``inferops compare``, Prometheus.

Each piece runs the same program a user would run by hand, as a subprocess,
so a rollout's evidence is ordinary run folders and its changes ordinary,
idempotent pyinfra deploys:

* ``BenchLoad``: ``inferops bench --rate R`` at a node or the load balancer;
* ``CompareCli``: ``inferops compare BASELINE CANDIDATE --json`` (the nightly
  regression statistics on whole latency distributions);
* ``PrometheusAlerts``: polls ``/api/v1/alerts`` for firing alerts;
* ``PyinfraFleet``: the project's own deploys with ``--limit``: the inference
  deploy switches a node's model version, the load-balancer deploy sets
  nginx weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from inferops.exitcodes import INVALID, InferopsError
from inferops.release.rollout import FULL_WEIGHT, Comparison, LoadResult


def _inferops_cmd() -> list[str]:
    return [sys.executable, "-m", "inferops"]


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label).strip("-").lower()


@dataclass
class BenchLoad:
    """Open-loop load tests; each writes a run folder under ``out_root``."""

    out_root: Path
    node_url: dict[str, str]  # node name -> base URL of its server
    lb_url: str
    model: str
    duration: str = "20s"
    warmup: str = "3s"
    thresholds: str | None = None
    token_files: dict[str | None, str | None] = field(default_factory=dict)  # None: the LB
    extra_args: list[str] = field(default_factory=list)
    timeout_s: float = 600.0
    _count: int = 0

    def load_test(self, label: str, node: str | None, rate: float) -> LoadResult:
        self._count += 1
        out = self.out_root / f"{self._count:02d}-{_slug(label)}"
        target = self.lb_url if node is None else self.node_url[node]
        cmd = [
            *_inferops_cmd(),
            "bench",
            "--target",
            target,
            "--model",
            self.model,
            "--rate",
            f"{rate:.3f}",
            "--duration",
            self.duration,
            "--warmup",
            self.warmup,
            "--out",
            str(out),
            *self.extra_args,
        ]
        if self.thresholds:
            cmd += ["--thresholds", self.thresholds]
        env = dict(os.environ)
        token_file = self.token_files.get(node)
        if token_file:
            # through the environment, never the command line (ps shows arguments)
            try:
                env["INFEROPS_TOKEN"] = Path(token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise InferopsError(f"cannot read the bearer token {token_file}: {exc}") from None
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s, env=env)
        summary_path = out / "summary.json"
        if proc.returncode == 2 or not summary_path.exists():
            raise InferopsError(f"{label}: inferops bench failed: {proc.stderr.strip()[-300:]}")
        summary = json.loads(summary_path.read_text())
        return LoadResult(
            label=label,
            exit_code=proc.returncode,
            run_dir=str(out),
            p99_ms=(summary.get("latency_ms") or {}).get("p99"),
            error_rate=summary.get("error_rate"),
            achieved_qps=summary.get("achieved_qps"),
            invalid_because=tuple(summary.get("validity") or ())
            if proc.returncode == INVALID
            else (),
            breach_proven=(summary.get("breach_proven") or {}).get("reason"),
        )


@dataclass
class CompareCli:
    """The nightly issue's ``inferops compare``: exit 1 = regression, 3 = not comparable."""

    extra_args: list[str] = field(default_factory=list)

    def compare(self, baseline: LoadResult, candidate: LoadResult) -> Comparison:
        proc = subprocess.run(
            [
                *_inferops_cmd(),
                "compare",
                baseline.run_dir,
                candidate.run_dir,
                "--json",
                *self.extra_args,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode not in (0, 1):
            # not comparable or invalid: a canary that cannot be judged is not promoted
            return Comparison(
                True,
                f"could not compare (exit {proc.returncode}): {proc.stderr.strip()[-200:]}",
                {"exit_code": proc.returncode},
            )
        try:
            result = json.loads(proc.stdout)
        except ValueError:
            result = {"raw": proc.stdout[-500:]}
        return Comparison(proc.returncode == 1, _compare_summary(result, proc.returncode), result)


def _compare_summary(result: dict, code: int) -> str:
    moved = [m for m in result.get("metrics", []) if isinstance(m, dict) and m.get("changed")]
    if not moved:
        return "no significant change" if code == 0 else "regression"
    parts = []
    for m in moved[:3]:
        effect = m.get("effect_pct")
        parts.append(
            f"{m.get('name')} {effect:+.1f} %" if effect is not None else str(m.get("name"))
        )
    return ", ".join(parts)


@dataclass
class PrometheusAlerts:
    """Firing alerts from Prometheus's HTTP API, filtered to the inference fleet's.

    A step is judged on every alert that fired while its load ran (the ``ALERTS`` series
    over that window: an alert that fired and resolved inside it still counts), then on
    those that fire while it is watched for ``--interval`` afterwards (``for:`` durations
    make an alert fire after the load that caused it). Credentials in the URL or in
    ``password_file`` are sent as basic auth and never shown.
    """

    url: str
    match: dict[str, str] = field(default_factory=dict)  # label filters, e.g. {"job": "..."}
    poll_s: float = 2.0
    password_file: str | None = None

    def _source(self):
        from inferops.measure.promsource import PrometheusSource

        return PrometheusSource.from_options(
            self.url, (), self.password_file, require_instances=False
        )

    def _matches(self, labels: dict) -> bool:
        return all(labels.get(k) == v for k, v in self.match.items())

    def _call(self, fn):
        from inferops.measure.promsource import PrometheusError

        try:
            return fn(self._source())
        except PrometheusError as exc:
            raise InferopsError(f"cannot read alerts: {exc}") from None

    def _firing(self) -> set[str]:
        data = self._call(lambda src: src._api("alerts", {}))
        alerts = data.get("alerts", []) if isinstance(data, dict) else []
        return {
            a["labels"].get("alertname", "?")
            for a in alerts
            if a.get("state") == "firing" and self._matches(a.get("labels", {}))
        }

    def fired_during(self, seconds: float) -> set[str]:
        """Alerts that were firing at any time in the last ``seconds``."""
        window = max(1, int(seconds + 0.999))
        expr = f'max_over_time(ALERTS{{alertstate="firing"}}[{window}s])'
        result = self._call(lambda src: src.query(expr))
        return {
            r["metric"].get("alertname", "?") for r in result if self._matches(r.get("metric", {}))
        }

    def firing_alerts(self, seconds: float, lookback_s: float = 0.0) -> list[str]:
        seen = self.fired_during(lookback_s) if lookback_s > 0 else set()
        end = time.monotonic() + seconds
        while True:
            seen |= self._firing()
            if time.monotonic() >= end:
                return sorted(seen)
            time.sleep(min(self.poll_s, max(0.0, end - time.monotonic())))


@dataclass
class PyinfraFleet:
    """Version switches and nginx weights through the project's pyinfra deploys.

    The version being rolled out is the inventory's data plus two overrides
    (``server_model_version`` and ``server_model_source``); any other version is the
    inventory as written, unchanged: the previous version is what the inventory
    describes, and switching back to it is a plain run of the deploy (a flip to the
    version still stored on the node, nothing uploaded).
    """

    inventory: str
    node_deploy: str  # e.g. deploys/cpu_node.py
    lb_deploy: str  # deploys/loadbalancer.py
    overrides: dict[str, dict]  # version -> host data that makes a node serve it
    lb_limit: str = "loadbalancer"
    extra_args: list[str] = field(default_factory=list)
    log_dir: Path | None = None

    def _pyinfra(self, deploy: str, limit: str, data: dict) -> None:
        cmd = [sys.executable, "-m", "pyinfra", "-y", self.inventory, deploy, "--limit", limit]
        for key, value in data.items():
            cmd += ["--data", f"{key}={json.dumps(value)}"]
        proc = subprocess.run(
            [*cmd, *self.extra_args], capture_output=True, text=True, timeout=1800
        )
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            # nanoseconds: two runs in one millisecond (or a resumed rollout) never share a log
            name = f"pyinfra-{time.time_ns()}-{_slug(limit)}.log"
            # pyinfra's own output never prints the token (see the deploy's no_log files)
            (self.log_dir / name).write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise InferopsError(f"pyinfra {Path(deploy).name} --limit {limit} failed: {tail[0]}")

    def deploy(self, node: str, version: str) -> None:
        self._pyinfra(self.node_deploy, node, self.overrides.get(version, {}))

    def set_weights(self, weights: dict[str, int]) -> None:
        # every node at full weight is the inventory's own balancer: a plain run, so the
        # fleet ends exactly as the inventory describes it (a later run changes nothing)
        if all(w == FULL_WEIGHT for w in weights.values()):
            self._pyinfra(self.lb_deploy, self.lb_limit, {})
        else:
            self._pyinfra(self.lb_deploy, self.lb_limit, {"lb_weights": weights})
