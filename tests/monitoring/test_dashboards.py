"""Dashboards: structure, datasource references, and every expression parsed by promtool and
naming only rendered recording rules or metrics the exporters serve."""

from __future__ import annotations

import json
import re

import promql_parser
import pytest
import yaml

from inferops.monitoring import metricnames as m
from inferops.monitoring.capacity import read_capacity
from inferops.monitoring.configs import ConfigKnobs
from inferops.monitoring.render import render as render_files
from inferops.monitoring.rules import Knobs
from inferops.monitoring.targets import LOCALHOST
from tests.monitoring.conftest import promtool, sweep_run
from tests.monitoring.test_render import ALL_LIMITS

#: What Grafana substitutes before a query reaches Prometheus (multi-value "All").
GRAFANA_VARIABLES = {"$instance": ".*", "$model": ".*"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash")
    out = root / "mon"
    render_files(
        out,
        hosts=[LOCALHOST],
        limits=dict(ALL_LIMITS),
        capacities=[read_capacity(sweep_run(root / "sweep"))],
        knobs=Knobs(),
        config_knobs=ConfigKnobs(),
        alertmanagers=["127.0.0.1:9093"],
    )
    return out


def dashboards(out):
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "dashboards").glob("*.json"))}


def panels(board):
    return [p for p in board["panels"] if p["type"] != "row"]


def expressions(board):
    for panel in panels(board):
        for target in panel["targets"]:
            yield panel["title"], target["expr"]


def grafana_to_promql(expr: str) -> str:
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def recorded_names(out) -> set[str]:
    names = set()
    for path in (out / "rules").glob("*.yml"):
        if path.name.endswith("_test.yml"):
            continue
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {r["record"] for r in group["rules"] if "record" in r}
    return names


def metric_names(node) -> set[str]:
    """Every metric name a PromQL AST reads."""
    if isinstance(node, promql_parser.VectorSelector):
        return {node.name}
    if isinstance(node, promql_parser.MatrixSelector):
        return metric_names(node.vector_selector)
    if isinstance(node, promql_parser.BinaryExpr):
        return metric_names(node.lhs) | metric_names(node.rhs)
    if isinstance(node, promql_parser.Call):
        return set().union(*(metric_names(a) for a in node.args))
    if isinstance(node, promql_parser.AggregateExpr):
        names = metric_names(node.expr)
        return names | (metric_names(node.param) if node.param is not None else set())
    if isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr)):
        return metric_names(node.expr)
    if isinstance(node, promql_parser.SubqueryExpr):
        return metric_names(node.expr)
    assert isinstance(node, (promql_parser.NumberLiteral, promql_parser.StringLiteral)), node
    return set()


def test_three_dashboards_with_unique_uids_and_panel_ids(rendered):
    boards = dashboards(rendered)
    assert set(boards) == {"inference", "host", "gpu"}
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids)
    for board in boards.values():
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids), board["uid"]
        for panel in board["panels"]:
            pos = panel["gridPos"]
            assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, (board["uid"], panel["title"])


def test_every_datasource_reference_is_the_provisioned_one(rendered):
    provisioned = yaml.safe_load(
        (rendered / "provisioning" / "datasources" / "inferops.yml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    provider = yaml.safe_load(
        (rendered / "provisioning" / "dashboards" / "inferops.yml").read_text()
    )
    assert provider["providers"][0]["type"] == "file"
    for board in dashboards(rendered).values():
        for panel in panels(board):
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}
            for target in panel["targets"]:
                assert target["datasource"] == {"type": "prometheus", "uid": uid}
        for var in board["templating"]["list"]:
            assert var["datasource"] == {"type": "prometheus", "uid": uid}


def test_every_expression_is_parsed_by_promtool(rendered, tmp_path):
    """promtool has no bare query parser here (2.42): each panel query becomes a recording
    rule in a scratch file, and `promtool check rules` parses them all."""
    rules = []
    for board in dashboards(rendered).values():
        for index, (_, expr) in enumerate(expressions(board)):
            rules.append({"record": f"dashboard_check_{len(rules)}_{index}", "expr": expr})
    rules = [{**r, "expr": grafana_to_promql(r["expr"])} for r in rules]
    path = tmp_path / "dashboard_exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_the_scratch_check_rejects_a_broken_expression(tmp_path):
    path = tmp_path / "bad.yml"
    bad = {"record": "x:y", "expr": "sum by (instance (rate(foo[5m]))"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [bad]}]}))
    assert promtool("check", "rules", str(path)).returncode != 0


def test_every_expression_names_only_rendered_rules_or_known_metrics(rendered):
    known = recorded_names(rendered) | m.RAW_METRICS
    seen = set()
    for board in dashboards(rendered).values():
        for title, expr in expressions(board):
            names = metric_names(promql_parser.parse(grafana_to_promql(expr)))
            assert names, (title, expr)
            assert names <= known, (title, names - known)
            seen |= names
        for var in board["templating"]["list"]:
            source = re.fullmatch(r"label_values\((\S+), (\w+)\)", var["query"])
            assert source and source.group(1) in known, var["query"]
    # the dashboards plot recording rules only, and every rule plots somewhere
    assert seen <= recorded_names(rendered)
    assert recorded_names(rendered) <= seen | {"instance_model:inferops_requests_errors:ratio"}


def test_inference_dashboard_has_the_capacity_row(rendered):
    board = dashboards(rendered)["inference"]
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == ["Traffic", "Latency", "Batching", "LLM", "Capacity"]
    capacity = next(p for p in panels(board) if "capacity" in p["title"])
    exprs = [t["expr"] for t in capacity["targets"]]
    assert any(e.startswith("instance_profile:inferops_requests:rate") for e in exprs)
    assert "profile:inferops_max_qps_at_slo:measured" in exprs
    # and the measured number is a recording rule, not a constant baked into the dashboard
    assert "412" not in json.dumps(capacity["targets"])
    titles = {p["title"] for p in panels(board)}
    for needed in (
        "Requests per second",
        "Request latency P50 / P99",
        "Error ratio (5xx)",
        "Mean batch size",
        "Queue wait P99",
        "Requests in flight",
        "Time to first token P99",
        "Time per output token P99",
    ):
        assert needed in titles


def test_threshold_lines_come_from_thresholds(rendered):
    board = dashboards(rendered)["inference"]
    latency = next(p for p in panels(board) if p["title"] == "Request latency P50 / P99")
    steps = latency["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1]["value"] == ALL_LIMITS["p99_latency_ms"] / 1000
    host = dashboards(rendered)["host"]
    cpu = next(p for p in panels(host) if p["title"] == "CPU utilisation")
    assert cpu["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] == 85
