"""Recording and alert rules, from ``thresholds.toml`` and measured capacity.

Every alert carries its own test fixture (a breaching and a healthy set of input
series, the labels it must fire with and the value its expression then has), so
``ruletests`` can ship a ``promtool test rules`` file beside every rule file.

A threshold key that is absent is not alerted on, exactly as the load-test gate
does not check it. A limit no series can cross (``min_qps = 0``,
``max_cpu_percent = 100``) renders no alert, and says so in a comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from inferops.exitcodes import UsageError
from inferops.monitoring import metricnames as m
from inferops.monitoring.capacity import Capacity
from inferops.monitoring.promfmt import FORMATTERS

SEVERITIES = ("critical", "warning", "info")
# Network devices that are not the host's traffic (loopback, containers, bridges).
VIRTUAL_NICS = "lo|veth.*|docker.*|br-.*|virbr.*|cni.*|flannel.*|cali.*"
# Throttle reasons that mean lost performance (dcgm bitmask): HW slowdown 0x8, and
# 0x20/0x40/0x80 (SW thermal, HW thermal, HW power brake). Idle (0x1), app clocks (0x2)
# and SW power cap (0x4) are normal under load. PromQL has no bit operators: floor/modulo.
_HARMFUL_THROTTLE = "floor({x} / 8) % 2 + floor({x} / 32) % 8 > 0"


@dataclass(frozen=True)
class Series:
    """One promtool input series: a counter growing at ``rate`` per second, or a gauge."""

    selector: str
    value: float
    counter: bool = False


@dataclass(frozen=True)
class Fixture:
    breach: list[Series]
    healthy: list[Series]
    labels: dict[str, str]  #: labels the alert fires with (besides alertname and rule labels)
    value: float  #: what the expression evaluates to on ``breach``


@dataclass
class Alert:
    name: str
    expr: str
    summary: str  #: ``{label}`` placeholders
    description: str  #: ``{value}`` and ``{label}`` placeholders
    value_format: str  #: a key of promfmt.FORMATTERS
    for_: str
    severity: str
    fixture: Fixture
    labels: dict[str, str] = field(default_factory=dict)
    comment: str | None = None

    @property
    def anchor(self) -> str:
        return self.name.lower()

    def rule(self, runbook_base: str) -> dict:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity, **self.labels},
            "annotations": {
                "summary": go_template(self.summary, self.value_format),
                "description": go_template(self.description, self.value_format),
                "runbook_url": f"{runbook_base}#{self.anchor}",
            },
        }

    def expected_annotations(self, runbook_base: str) -> dict[str, str]:
        """The annotations promtool must see when the breach fixture fires."""
        shown = FORMATTERS[self.value_format](self.fixture.value)
        labels = {**self.fixture.labels, **self.labels}
        return {
            "summary": self.summary.format(value=shown, **labels),
            "description": self.description.format(value=shown, **labels),
            "runbook_url": f"{runbook_base}#{self.anchor}",
        }


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    labels: dict[str, str] = field(default_factory=dict)

    def rule(self) -> dict:
        rule = {"record": self.record, "expr": self.expr}
        if self.labels:
            rule["labels"] = dict(self.labels)
        return rule


@dataclass
class RuleFile:
    """``rules/<name>.yml``: one recording group and one alert group."""

    name: str
    recordings: list[Recording]
    alerts: list[Alert]
    notes: list[str] = field(default_factory=list)  #: header comments


@dataclass(frozen=True)
class Knobs:
    rate_window: str = "5m"
    headroom: float = 0.2
    for_: dict[str, str] = field(default_factory=dict)  #: alert -> Prometheus duration
    severity: dict[str, str] = field(default_factory=dict)  #: alert -> severity
    runbook_base: str = "docs/monitoring.md"


#: alert -> (default ``for``, default severity). The names and defaults users tune.
DEFAULTS: dict[str, tuple[str, str]] = {
    "InferenceP99LatencyHigh": ("5m", "critical"),
    "InferenceQPSLow": ("10m", "warning"),
    "InferenceErrorRateHigh": ("5m", "critical"),
    "InferenceSuccessRateLow": ("5m", "critical"),
    "InferenceModelNotLoaded": ("5m", "critical"),
    "InferenceTTFTHigh": ("5m", "critical"),
    "InferenceTPOTHigh": ("5m", "critical"),
    "InferenceCapacityHeadroomLow": ("10m", "warning"),
    "ScrapeTargetDown": ("2m", "critical"),
    "HostCPUHigh": ("15m", "warning"),
    "HostMemoryHigh": ("15m", "warning"),
    "GPUUtilizationHigh": ("15m", "warning"),
    "GPUMemoryHigh": ("15m", "warning"),
    "GPUTemperatureHigh": ("5m", "critical"),
    "GPUPowerHigh": ("15m", "warning"),
    "GPUXidError": ("0s", "critical"),
    "GPUClockThrottled": ("10m", "warning"),
}


def check_knobs(knobs: Knobs) -> None:
    for kind, overrides in (("--for", knobs.for_), ("--severity", knobs.severity)):
        for name in overrides:
            if name not in DEFAULTS:
                raise UsageError(f"{kind} {name}: unknown alert; known: {', '.join(DEFAULTS)}")
    for name, level in knobs.severity.items():
        if level not in SEVERITIES:
            raise UsageError(f"--severity {name}={level}: use one of {', '.join(SEVERITIES)}")
    if not 0 < knobs.headroom < 1:
        raise UsageError(f"--headroom {knobs.headroom:g}: must be between 0 and 1 (a fraction)")


def go_template(text: str, value_format: str) -> str:
    """``{value}`` -> ``{{ $value | humanize }}``, ``{instance}`` -> ``{{ $labels.instance }}``."""

    def repl(match: re.Match) -> str:
        name = match.group(1)
        if name == "value":
            return "{{ $value | " + value_format + " }}"
        return "{{ $labels." + name + " }}"

    return re.sub(r"\{(\w+)\}", repl, text)


def num(value: float) -> str:
    """A number for PromQL/labels: shortest exact form (``0.5``, ``329.6``, ``100``)."""
    text = format(float(value), ".15g")
    return text


def _alert(knobs: Knobs, name: str, **kwargs) -> Alert:
    default_for, default_severity = DEFAULTS[name]
    return Alert(
        name=name,
        for_=knobs.for_.get(name, default_for),
        severity=knobs.severity.get(name, default_severity),
        **kwargs,
    )


def _p99(metric: str, window: str, by: str = "le, instance, model") -> str:
    return f"histogram_quantile(0.99, sum by ({by}) (rate({metric}_bucket[{window}])))"


def _histogram_fixture(metric: str, bound_s: float) -> Fixture:
    """All requests in (bound/2, 2*bound] breach (P99 = 1.985 x bound); all in [0, bound/2]
    is healthy. 10 req/s either way."""
    sel = metric + '_bucket{{instance="node-1",model="mlp",le="{}"}}'
    low, high = num(bound_s / 2), num(bound_s * 2)
    return Fixture(
        breach=[
            Series(sel.format(low), 0, True),
            Series(sel.format(high), 10, True),
            Series(sel.format("+Inf"), 10, True),
        ],
        healthy=[
            Series(sel.format(low), 10, True),
            Series(sel.format(high), 10, True),
            Series(sel.format("+Inf"), 10, True),
        ],
        labels={"instance": "node-1", "model": "mlp"},
        value=bound_s / 2 + (bound_s * 2 - bound_s / 2) * 0.99,
    )


def _requests(code: str, rate: float) -> Series:
    return Series(f'{m.REQUESTS}{{instance="node-1",model="mlp",code="{code}"}}', rate, True)


# ---------------------------------------------------------------------------------------


def inference_rules(limits: dict[str, float], knobs: Knobs) -> RuleFile:
    w = knobs.rate_window
    by = "instance, model"
    recordings = [
        Recording(
            "instance_model:inferops_requests:rate", f"sum by ({by}) (rate({m.REQUESTS}[{w}]))"
        ),
        Recording(
            "instance_model_code:inferops_requests:rate",
            f"sum by ({by}, code) (rate({m.REQUESTS}[{w}]))",
        ),
        Recording(
            "instance_model:inferops_requests_errors:ratio",
            f'sum by ({by}) (rate({m.REQUESTS}{{code=~"5.."}}[{w}]))'
            f" / sum by ({by}) (rate({m.REQUESTS}[{w}]))",
        ),
        Recording(
            "instance_model:inferops_request_duration_seconds:p50",
            _p99(m.REQUEST_DURATION, w).replace("0.99", "0.5", 1),
        ),
        Recording(
            "instance_model:inferops_request_duration_seconds:p99", _p99(m.REQUEST_DURATION, w)
        ),
        Recording("instance_model:inferops_queue_wait_seconds:p99", _p99(m.QUEUE_WAIT, w)),
        Recording(
            "instance_model:inferops_inference_duration_seconds:p99",
            _p99(m.INFERENCE_DURATION, w),
        ),
        Recording(
            "instance_model:inferops_batch_size:mean",
            f"sum by ({by}) (rate({m.BATCH_SIZE}_sum[{w}]))"
            f" / sum by ({by}) (rate({m.BATCH_SIZE}_count[{w}]))",
        ),
        Recording(
            "instance_model:inferops_requests_in_flight:sum", f"sum by ({by}) ({m.IN_FLIGHT})"
        ),
        Recording("instance_model:inferops_queue_depth:sum", f"sum by ({by}) ({m.QUEUE_DEPTH})"),
        Recording("instance_model:inferops_time_to_first_token_seconds:p99", _p99(m.TTFT, w)),
        Recording("instance_model:inferops_time_per_output_token_seconds:p99", _p99(m.TPOT, w)),
    ]
    alerts: list[Alert] = []
    notes: list[str] = []

    if "p99_latency_ms" in limits:
        bound_ms = limits["p99_latency_ms"]
        alerts.append(
            _alert(
                knobs,
                "InferenceP99LatencyHigh",
                expr=f"{_p99(m.REQUEST_DURATION, w)} > {num(bound_ms / 1000)}",
                summary="P99 latency of {model} on {instance} above " + f"{bound_ms:g} ms",
                description="P99 latency of model {model} on {instance} is {value} over the last "
                + f"{w} (threshold p99_latency_ms = {bound_ms:g} ms).",
                value_format="humanizeDuration",
                fixture=_histogram_fixture(m.REQUEST_DURATION, bound_ms / 1000),
            )
        )
    if "min_qps" in limits:
        qps = limits["min_qps"]
        if qps <= 0:
            notes.append("InferenceQPSLow: not rendered, min_qps = 0 can never be undercut")
        else:
            alerts.append(
                _alert(
                    knobs,
                    "InferenceQPSLow",
                    expr=f'sum by ({by}) (rate({m.REQUESTS}{{code=~"2.."}}[{w}])) < {num(qps)}',
                    summary="{model} on {instance} serves fewer than " + f"{qps:g} req/s",
                    description="{instance} answered {value} successful req/s for {model} over "
                    + f"the last {w} (threshold min_qps = {qps:g} req/s).",
                    value_format="humanize",
                    fixture=Fixture(
                        breach=[_requests("200", qps / 2)],
                        healthy=[_requests("200", qps * 2)],
                        labels={"instance": "node-1", "model": "mlp"},
                        value=qps / 2,
                    ),
                )
            )
    all_rate = f"sum by ({by}) (rate({m.REQUESTS}[{w}]))"
    if "max_error_rate" in limits:
        limit = limits["max_error_rate"]
        if limit >= 1:
            notes.append("InferenceErrorRateHigh: not rendered, max_error_rate = 1 allows all")
        else:
            bad = (1 + limit) / 2
            alerts.append(
                _alert(
                    knobs,
                    "InferenceErrorRateHigh",
                    expr=f'sum by ({by}) (rate({m.REQUESTS}{{code=~"5.."}}[{w}])) / {all_rate}'
                    f" > {num(limit)}",
                    summary="{model} on {instance} fails more than " + f"{limit:.4g} of requests",
                    description="{value} of requests to {model} on {instance} got a 5xx over the "
                    + f"last {w} (threshold max_error_rate = {limit:g}).",
                    value_format="humanizePercentage",
                    fixture=Fixture(
                        breach=[_requests("200", (1 - bad) * 100), _requests("503", bad * 100)],
                        healthy=[
                            _requests("200", (1 - limit / 2) * 100),
                            _requests("503", limit / 2 * 100),
                        ],
                        labels={"instance": "node-1", "model": "mlp"},
                        value=bad,
                    ),
                )
            )
    if "min_success_rate" in limits:
        limit = limits["min_success_rate"]
        if limit <= 0:
            notes.append("InferenceSuccessRateLow: not rendered, min_success_rate = 0")
        else:
            good = limit / 2
            alerts.append(
                _alert(
                    knobs,
                    "InferenceSuccessRateLow",
                    expr=f'sum by ({by}) (rate({m.REQUESTS}{{code=~"2.."}}[{w}])) / {all_rate}'
                    f" < {num(limit)}",
                    summary="{model} on {instance} succeeds on fewer than "
                    + f"{limit:.4g} of requests",
                    description="only {value} of requests to {model} on {instance} got a 2xx "
                    + f"over the last {w} (threshold min_success_rate = {limit:g}).",
                    value_format="humanizePercentage",
                    fixture=Fixture(
                        breach=[_requests("200", good * 100), _requests("400", (1 - good) * 100)],
                        healthy=[
                            _requests("200", (1 + limit) / 2 * 100),
                            _requests("400", (1 - limit) / 2 * 100),
                        ],
                        labels={"instance": "node-1", "model": "mlp"},
                        value=good,
                    ),
                )
            )
    loaded = f'{m.MODEL_LOADED}{{instance="node-1",model="mlp"}}'
    alerts.append(
        _alert(
            knobs,
            "InferenceModelNotLoaded",
            expr=f"{m.MODEL_LOADED} == 0",
            summary="model {model} on {instance} is not loaded",
            description="{instance} reports inferops_model_loaded = {value} for {model}: the "
            "server is up but not ready (loading or warming up failed).",
            value_format="humanize",
            fixture=Fixture(
                breach=[Series(loaded, 0)],
                healthy=[Series(loaded, 1)],
                labels={"instance": "node-1", "model": "mlp"},
                value=0,
            ),
        )
    )
    for key, name, metric, what in (
        ("p99_ttft_ms", "InferenceTTFTHigh", m.TTFT, "time to first token"),
        ("p99_tpot_ms", "InferenceTPOTHigh", m.TPOT, "time per output token"),
    ):
        if key not in limits:
            continue
        bound_ms = limits[key]
        alerts.append(
            _alert(
                knobs,
                name,
                expr=f"{_p99(metric, w)} > {num(bound_ms / 1000)}",
                summary=f"P99 {what} of " + "{model} on {instance} above " + f"{bound_ms:g} ms",
                description=f"P99 {what} of model "
                + "{model} on {instance} is {value} over the "
                + f"last {w} (threshold {key} = {bound_ms:g} ms).",
                value_format="humanizeDuration",
                fixture=_histogram_fixture(metric, bound_ms / 1000),
            )
        )
    return RuleFile("inference", recordings, alerts, notes)


def host_rules(limits: dict[str, float], knobs: Knobs) -> RuleFile:
    w = knobs.rate_window
    cpu = f'100 * (1 - avg by (instance) (rate({m.NODE_CPU}{{mode="idle"}}[{w}])))'
    mem = f"100 * (1 - {m.NODE_MEM_AVAILABLE} / {m.NODE_MEM_TOTAL})"
    recordings = [
        Recording("instance:node_cpu_utilisation:percent", cpu),
        Recording("instance:node_memory_utilisation:percent", mem),
        Recording(
            "instance:node_network_receive_bytes:rate",
            f'sum by (instance) (rate({m.NODE_NET_RX}{{device!~"{VIRTUAL_NICS}"}}[{w}]))',
        ),
        Recording(
            "instance:node_network_transmit_bytes:rate",
            f'sum by (instance) (rate({m.NODE_NET_TX}{{device!~"{VIRTUAL_NICS}"}}[{w}]))',
        ),
    ]
    up = Series('up{job="node",instance="node-1"}', 0)
    alerts = [
        _alert(
            knobs,
            "ScrapeTargetDown",
            expr="up == 0",
            summary="{job} target {instance} is down",
            description="Prometheus could not scrape job {job} on {instance} (up = {value}): "
            "the exporter or server is not answering.",
            value_format="humanize",
            fixture=Fixture(
                breach=[up],
                healthy=[Series(up.selector, 1)],
                labels={"job": "node", "instance": "node-1"},
                value=0,
            ),
        )
    ]
    notes: list[str] = []
    if "max_cpu_percent" in limits:
        limit = limits["max_cpu_percent"]
        if limit >= 100:
            notes.append("HostCPUHigh: not rendered, max_cpu_percent = 100")
        else:
            busy = (limit + 100) / 2
            idle = [f'{m.NODE_CPU}{{instance="node-1",cpu="{c}",mode="idle"}}' for c in "01"]
            alerts.append(
                _alert(
                    knobs,
                    "HostCPUHigh",
                    expr=f"{cpu} > {num(limit)}",
                    summary="CPU of {instance} above " + f"{limit:g} %",
                    description="{instance} has used {value} % of its CPU on average over the "
                    + f"last {w} (threshold max_cpu_percent = {limit:g} %).",
                    value_format="humanize",
                    fixture=Fixture(
                        breach=[Series(s, 1 - busy / 100, True) for s in idle],
                        healthy=[Series(s, 1 - limit / 200, True) for s in idle],
                        labels={"instance": "node-1"},
                        value=busy,
                    ),
                )
            )
    if "max_memory_percent" in limits:
        limit = limits["max_memory_percent"]
        if limit >= 100:
            notes.append("HostMemoryHigh: not rendered, max_memory_percent = 100")
        else:
            used, total = (limit + 100) / 2, 16e9
            avail = f'{m.NODE_MEM_AVAILABLE}{{instance="node-1"}}'
            tot = Series(f'{m.NODE_MEM_TOTAL}{{instance="node-1"}}', total)
            alerts.append(
                _alert(
                    knobs,
                    "HostMemoryHigh",
                    expr=f"{mem} > {num(limit)}",
                    summary="memory of {instance} above " + f"{limit:g} %",
                    description="{instance} uses {value} % of its memory (threshold "
                    + f"max_memory_percent = {limit:g} %).",
                    value_format="humanize",
                    fixture=Fixture(
                        breach=[Series(avail, (1 - used / 100) * total), tot],
                        healthy=[Series(avail, (1 - limit / 200) * total), tot],
                        labels={"instance": "node-1"},
                        value=used,
                    ),
                )
            )
    return RuleFile("host", recordings, alerts, notes)


def gpu_rules(limits: dict[str, float], knobs: Knobs) -> RuleFile:
    w = knobs.rate_window
    by = "instance, gpu"
    mem = f"100 * {m.GPU_FB_USED} / ({m.GPU_FB_USED} + {m.GPU_FB_FREE})"
    recordings = [
        Recording("instance_gpu:dcgm_gpu_utilisation:percent", f"avg by ({by}) ({m.GPU_UTIL})"),
        Recording("instance_gpu:dcgm_memory_utilisation:percent", f"avg by ({by}) ({mem})"),
        Recording("instance_gpu:dcgm_power_usage:watts", f"avg by ({by}) ({m.GPU_POWER})"),
        Recording("instance_gpu:dcgm_temperature:celsius", f"max by ({by}) ({m.GPU_TEMP})"),
    ]
    labels = {"instance": "node-1", "gpu": "0"}

    def gpu(metric: str, value: float) -> Series:
        return Series(f'{metric}{{instance="node-1",gpu="0"}}', value)

    def fb(used_percent: float) -> list[Series]:
        total = 81_920.0  # MiB, as dcgm reports framebuffer
        used = used_percent / 100 * total
        return [gpu(m.GPU_FB_USED, used), gpu(m.GPU_FB_FREE, total - used)]

    # key, alert, expression, what, unit, series for a value, breach value, healthy value
    limited = [
        (
            "max_gpu_util_percent",
            "GPUUtilizationHigh",
            f"avg_over_time({m.GPU_UTIL}[{w}])",
            "utilisation",
            "%",
            lambda v: [gpu(m.GPU_UTIL, v)],
            lambda lim: (lim + 100) / 2,
            lambda lim: lim / 2,
        ),
        (
            "max_gpu_memory_percent",
            "GPUMemoryHigh",
            mem,
            "memory use",
            "%",
            fb,
            lambda lim: (lim + 100) / 2,
            lambda lim: lim / 2,
        ),
        (
            "max_gpu_temp_celsius",
            "GPUTemperatureHigh",
            m.GPU_TEMP,
            "temperature",
            "C",
            lambda v: [gpu(m.GPU_TEMP, v)],
            lambda lim: lim + 10,
            lambda lim: lim / 2,
        ),
        (
            "max_gpu_power_watts",
            "GPUPowerHigh",
            f"avg_over_time({m.GPU_POWER}[{w}])",
            "power draw",
            "W",
            lambda v: [gpu(m.GPU_POWER, v)],
            lambda lim: lim + max(10.0, lim / 5),
            lambda lim: lim / 2,
        ),
    ]
    alerts: list[Alert] = []
    notes: list[str] = []
    for key, name, expr, what, unit, series, breach, healthy in limited:
        if key not in limits:
            continue
        limit = limits[key]
        if unit == "%" and limit >= 100:
            notes.append(f"{name}: not rendered, {key} = 100")
            continue
        alerts.append(
            _alert(
                knobs,
                name,
                expr=f"{expr} > {num(limit)}",
                summary=f"GPU {{gpu}} {what} on {{instance}} above {limit:g} {unit}",
                description=f"GPU {{gpu}} on {{instance}}: {what} is {{value}} {unit} "
                f"(threshold {key} = {limit:g} {unit}).",
                value_format="humanize",
                fixture=Fixture(
                    breach=series(breach(limit)),
                    healthy=series(healthy(limit)),
                    labels=labels,
                    value=breach(limit),
                ),
            )
        )
    xid_code = 79  # "GPU has fallen off the bus"
    alerts.append(
        _alert(
            knobs,
            "GPUXidError",
            expr=f"{m.GPU_XID} > 0",
            summary="GPU {gpu} on {instance} reported an XID error",
            description="GPU {gpu} on {instance} reported XID {value}: look it up in NVIDIA's "
            "XID table; 48, 63, 64, 74, 79, 92-95 usually mean draining the node.",
            value_format="humanize",
            fixture=Fixture(
                breach=[gpu(m.GPU_XID, xid_code)],
                healthy=[gpu(m.GPU_XID, 0)],
                labels=labels,
                value=xid_code,
            ),
        )
    )
    hw_thermal, normal = 0x40, 0x1 | 0x4  # HW thermal slowdown; idle + SW power cap
    throttle = _HARMFUL_THROTTLE.format(x=m.GPU_THROTTLE)
    alerts.append(
        _alert(
            knobs,
            "GPUClockThrottled",
            expr=f"{m.GPU_THROTTLE} and ({throttle})",
            summary="GPU {gpu} on {instance} is throttling its clocks",
            description="GPU {gpu} on {instance} has clock throttle reasons {value} (bitmask: "
            "0x8 HW slowdown, 0x20 SW thermal, 0x40 HW thermal, 0x80 HW power brake).",
            value_format="humanize",
            fixture=Fixture(
                breach=[gpu(m.GPU_THROTTLE, hw_thermal)],
                healthy=[gpu(m.GPU_THROTTLE, normal)],
                labels=labels,
                value=hw_thermal,
            ),
        )
    )
    return RuleFile("gpu", recordings, alerts, notes)


def capacity_rules(
    capacities: list[Capacity], knobs: Knobs, hosts_by_profile: dict[str, list[str]]
) -> RuleFile:
    """One ``InferenceCapacityHeadroomLow`` per measured profile, its limit written in."""
    w = knobs.rate_window
    h = knobs.headroom
    recordings = [
        Recording(
            "instance_profile:inferops_requests:rate",
            f'sum by (instance, profile) (rate({m.REQUESTS}{{job="{m.JOB_SERVER}"}}[{w}]))',
        )
    ]
    alerts = []
    for cap in capacities:
        limit = (1 - h) * cap.max_qps
        run_labels = {"profile": cap.profile}
        recordings.append(
            Recording(
                "profile:inferops_max_qps_at_slo:measured",
                f"vector({num(cap.max_qps)})",
                run_labels,
            )
        )
        recordings.append(
            Recording(
                "profile:inferops_qps_headroom_limit:measured", f"vector({num(limit)})", run_labels
            )
        )
        hosts = ", ".join(hosts_by_profile.get(cap.profile, [])) or "none yet"
        comment = (
            f"from run {cap.run} (profile {cap.profile}, model {cap.model}, started "
            f"{cap.started_at}): max_qps_at_slo = {cap.max_qps:g} req/s at P99 <= "
            f"{cap.slo_p99_ms:g} ms; fires above (1 - {h:g}) x {cap.max_qps:g} = "
            f"{limit:g} req/s; hosts: {hosts}"
        )
        selector = f'{m.REQUESTS}{{job="{m.JOB_SERVER}",profile="{cap.profile}"}}'
        series = (
            f'{m.REQUESTS}{{job="{m.JOB_SERVER}",profile="{cap.profile}",'
            'instance="node-1",model="mlp",code="200"}'
        )
        alerts.append(
            _alert(
                knobs,
                "InferenceCapacityHeadroomLow",
                expr=f"sum by (instance, profile) (rate({selector}[{w}])) > {num(limit)}",
                summary="{instance} is within " + f"{h:.0%} of its measured capacity",
                description="{instance} (profile {profile}) receives {value} req/s; the SLO sweep "
                + f"measured at most {cap.max_qps:g} req/s at P99 <= {cap.slo_p99_ms:g} ms, so "
                + f"it alerts above {limit:g} req/s (headroom {h:g}). Run: {cap.run}",
                value_format="humanize",
                fixture=Fixture(
                    breach=[Series(series, limit * 1.25, True)],
                    healthy=[Series(series, limit * 0.5, True)],
                    labels={"instance": "node-1", "profile": cap.profile},
                    value=limit * 1.25,
                ),
                comment=comment,
            )
        )
    return RuleFile("capacity", recordings, alerts)


def rule_files(
    limits: dict[str, float],
    knobs: Knobs,
    capacities: list[Capacity],
    hosts_by_profile: dict[str, list[str]],
) -> list[RuleFile]:
    check_knobs(knobs)
    files = [inference_rules(limits, knobs), host_rules(limits, knobs), gpu_rules(limits, knobs)]
    if capacities:
        files.append(capacity_rules(capacities, knobs, hosts_by_profile))
    return files
