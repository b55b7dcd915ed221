"""Grafana dashboards, built in code with grafana-foundation-sdk (never hand-edited JSON).

Every panel plots a recording rule from ``rules``, so dashboards stay cheap to load
and a test can check each expression names only rules that are rendered. Threshold
lines come from the same ``thresholds.toml`` as the alerts.
"""

from __future__ import annotations

import json

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)

from inferops.monitoring.capacity import Capacity
from inferops.monitoring.configs import DATASOURCE_UID

DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
TAGS = ["inferops"]


def _variable(name: str, label: str, source_metric: str) -> dash.QueryVariable:
    return (
        dash.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({source_metric}, {name})")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def _panel(
    title: str,
    unit: str,
    targets: list[tuple[str, str]],
    *,
    description: str = "",
    limit: float | None = None,
    width: int = 8,
) -> timeseries.Panel:
    """A time series panel; ``targets`` are (expr, legend); ``limit`` draws a dashed red line."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(8)
        .line_width(1)
        .fill_opacity(5)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
    )
    for index, (expr, legend) in enumerate(targets):
        panel = panel.with_target(
            prometheus.Dataquery()
            .expr(expr)
            .legend_format(legend)
            .ref_id(chr(ord("A") + index))
            .datasource(DATASOURCE)
        )
    if limit is not None:
        panel = panel.thresholds(
            dash.ThresholdsConfig()
            .mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(None, "green"), Threshold(limit, "red")])
        ).thresholds_style(
            common_b.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)
        )
    return panel


def _dashboard(uid: str, title: str, description: str) -> dash.Dashboard:
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
    )


def inference_dashboard(limits: dict[str, float], capacities: list[Capacity]) -> dict:
    sel = '{instance=~"$instance", model=~"$model"}'
    p99_limit = limits.get("p99_latency_ms")
    board = (
        _dashboard(
            "inferops-inference",
            "inferops / inference",
            "Reference inference servers: traffic, latency, batching (and LLM timings).",
        )
        .with_variable(_variable("instance", "instance", "instance_model:inferops_requests:rate"))
        .with_variable(_variable("model", "model", "instance_model:inferops_requests:rate"))
        .with_row(dash.Row("Traffic"))
        .with_panel(
            _panel(
                "Requests per second",
                "reqps",
                [(f"instance_model:inferops_requests:rate{sel}", "{{instance}} {{model}}")],
                limit=limits.get("min_qps"),
                description="All requests; the dashed line is min_qps.",
            )
        )
        .with_panel(
            _panel(
                "Responses by status code",
                "reqps",
                [
                    (
                        f"instance_model_code:inferops_requests:rate{sel}",
                        "{{instance}} {{model}} {{code}}",
                    )
                ],
            )
        )
        .with_panel(
            _panel(
                "Error ratio (5xx)",
                "percentunit",
                [(f"instance_model:inferops_requests_errors:ratio{sel}", "{{instance}} {{model}}")],
                limit=limits.get("max_error_rate"),
            )
        )
        .with_row(dash.Row("Latency"))
        .with_panel(
            _panel(
                "Request latency P50 / P99",
                "s",
                [
                    (
                        f"instance_model:inferops_request_duration_seconds:p50{sel}",
                        "P50 {{instance}} {{model}}",
                    ),
                    (
                        f"instance_model:inferops_request_duration_seconds:p99{sel}",
                        "P99 {{instance}} {{model}}",
                    ),
                ],
                limit=p99_limit / 1000 if p99_limit is not None else None,
                description="Server-side latency; the dashed line is p99_latency_ms.",
            )
        )
        .with_panel(
            _panel(
                "Queue wait P99",
                "s",
                [
                    (
                        f"instance_model:inferops_queue_wait_seconds:p99{sel}",
                        "{{instance}} {{model}}",
                    )
                ],
            )
        )
        .with_panel(
            _panel(
                "Model execution P99 (one batch)",
                "s",
                [
                    (
                        f"instance_model:inferops_inference_duration_seconds:p99{sel}",
                        "{{instance}} {{model}}",
                    )
                ],
            )
        )
        .with_row(dash.Row("Batching"))
        .with_panel(
            _panel(
                "Mean batch size",
                "short",
                [(f"instance_model:inferops_batch_size:mean{sel}", "{{instance}} {{model}}")],
            )
        )
        .with_panel(
            _panel(
                "Requests in flight",
                "short",
                [
                    (
                        f"instance_model:inferops_requests_in_flight:sum{sel}",
                        "{{instance}} {{model}}",
                    )
                ],
            )
        )
        .with_panel(
            _panel(
                "Queue depth",
                "short",
                [(f"instance_model:inferops_queue_depth:sum{sel}", "{{instance}} {{model}}")],
            )
        )
        .with_row(dash.Row("LLM"))
        .with_panel(
            _panel(
                "Time to first token P99",
                "s",
                [
                    (
                        f"instance_model:inferops_time_to_first_token_seconds:p99{sel}",
                        "{{instance}} {{model}}",
                    )
                ],
                limit=_ms(limits.get("p99_ttft_ms")),
                width=12,
            )
        )
        .with_panel(
            _panel(
                "Time per output token P99",
                "s",
                [
                    (
                        f"instance_model:inferops_time_per_output_token_seconds:p99{sel}",
                        "{{instance}} {{model}}",
                    )
                ],
                limit=_ms(limits.get("p99_tpot_ms")),
                width=12,
            )
        )
    )
    if capacities:
        runs = "; ".join(f"{c.profile}: {c.max_qps:g} req/s ({c.run})" for c in capacities)
        board = board.with_row(dash.Row("Capacity")).with_panel(
            _panel(
                "Live QPS against measured capacity",
                "reqps",
                [
                    (
                        'instance_profile:inferops_requests:rate{instance=~"$instance"}',
                        "live {{instance}} ({{profile}})",
                    ),
                    ("profile:inferops_max_qps_at_slo:measured", "max QPS at SLO ({{profile}})"),
                    (
                        "profile:inferops_qps_headroom_limit:measured",
                        "alert above ({{profile}})",
                    ),
                ],
                description=f"Measured by SLO sweeps: {runs}.",
                width=24,
            )
        )
    return _encode(board)


def host_dashboard(limits: dict[str, float]) -> dict:
    sel = '{instance=~"$instance"}'
    board = (
        _dashboard("inferops-host", "inferops / hosts", "node_exporter: CPU, memory, network.")
        .with_variable(_variable("instance", "instance", "instance:node_cpu_utilisation:percent"))
        .with_panel(
            _panel(
                "CPU utilisation",
                "percent",
                [(f"instance:node_cpu_utilisation:percent{sel}", "{{instance}}")],
                limit=limits.get("max_cpu_percent"),
                width=12,
            )
        )
        .with_panel(
            _panel(
                "Memory utilisation",
                "percent",
                [(f"instance:node_memory_utilisation:percent{sel}", "{{instance}}")],
                limit=limits.get("max_memory_percent"),
                width=12,
            )
        )
        .with_panel(
            _panel(
                "Network",
                "Bps",
                [
                    (f"instance:node_network_receive_bytes:rate{sel}", "rx {{instance}}"),
                    (f"instance:node_network_transmit_bytes:rate{sel}", "tx {{instance}}"),
                ],
                width=24,
            )
        )
    )
    return _encode(board)


def gpu_dashboard(limits: dict[str, float]) -> dict:
    sel = '{instance=~"$instance"}'
    legend = "{{instance}} GPU {{gpu}}"
    board = (
        _dashboard("inferops-gpu", "inferops / GPUs", "dcgm-exporter: utilisation, memory, power.")
        .with_variable(
            _variable("instance", "instance", "instance_gpu:dcgm_gpu_utilisation:percent")
        )
        .with_panel(
            _panel(
                "GPU utilisation",
                "percent",
                [(f"instance_gpu:dcgm_gpu_utilisation:percent{sel}", legend)],
                limit=limits.get("max_gpu_util_percent"),
                width=12,
            )
        )
        .with_panel(
            _panel(
                "GPU memory used",
                "percent",
                [(f"instance_gpu:dcgm_memory_utilisation:percent{sel}", legend)],
                limit=limits.get("max_gpu_memory_percent"),
                width=12,
            )
        )
        .with_panel(
            _panel(
                "GPU power",
                "watt",
                [(f"instance_gpu:dcgm_power_usage:watts{sel}", legend)],
                limit=limits.get("max_gpu_power_watts"),
                width=12,
            )
        )
        .with_panel(
            _panel(
                "GPU temperature",
                "celsius",
                [(f"instance_gpu:dcgm_temperature:celsius{sel}", legend)],
                limit=limits.get("max_gpu_temp_celsius"),
                width=12,
            )
        )
    )
    return _encode(board)


def _ms(value: float | None) -> float | None:
    return None if value is None else value / 1000


def _encode(board: dash.Dashboard) -> dict:
    model = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    # Stable panel ids (the builder leaves them unset): links and alerts point at them.
    for number, panel in enumerate(model.get("panels", []), start=1):
        panel["id"] = number
    return model


def dashboards(limits: dict[str, float], capacities: list[Capacity]) -> dict[str, dict]:
    """``{file stem: dashboard JSON model}``."""
    return {
        "inference": inference_dashboard(limits, capacities),
        "host": host_dashboard(limits),
        "gpu": gpu_dashboard(limits),
    }
