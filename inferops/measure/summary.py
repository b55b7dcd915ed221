"""Turn a finished run (recorder + host peaks + thresholds) into ``summary.json``.

Validity rules (``valid`` false, reasons in ``validity``):

* fewer samples than the early-stopping rule needs for a P99 claim (459);
* the load generator was the bottleneck: > 1 % late sends, or its CPU > 90 %;
* the in-flight safety cap refused arrivals;
* the target was unreachable at start, or the run was interrupted (partial).

``passed`` needs a valid run, every checked threshold ``ok``, and — when a P99
bound is set — the early-stopping verdict proving P99 under that bound.

A run invalid only because of late sends (the generator stalled, not busy) cannot prove a
pass, but it can still prove a P99 breach: see :func:`breach_despite_late_sends`
(``breach_proven`` in ``summary.json``, exit 1).
"""

from __future__ import annotations

import time

from inferops import thresholds as thresholds_mod
from inferops.exitcodes import BREACH, INVALID, OK
from inferops.measure.runformat import SCHEMA, Summary
from inferops.measure.validity import (
    GENERATOR_LIMITED,
    INFLIGHT_CAP,
    MAX_GENERATOR_CPU_PCT,
    MAX_LATE_SENDS_PCT,
    MIN_SAMPLES_P99,
    all_generator_limited,
    early_stopping,
    min_over_to_prove_breach,
    stability,
    worker_reasons,
)
from inferops.redact import redact_url


def _r(value, digits=3):
    return None if value is None else round(float(value), digits)


def window_throughputs(rows: list[dict], duration_s: float) -> list[float]:
    """Achieved req/s in three equal windows at the end of the measured window."""
    measured = [r for r in rows if 0 <= r["t_s"] < duration_s]
    if len(measured) < 3:
        return []
    third = len(measured) // 3
    parts = [measured[-3 * third :][i * third : (i + 1) * third] for i in range(3)]
    return [sum(r["achieved_qps"] for r in p) / len(p) for p in parts]


#: errors less than this apart (seconds) belong to one burst
BURST_GAP_S = 2.0


def error_bursts(rows: list[dict], duration_s: float, gap_s: float = BURST_GAP_S) -> list[dict]:
    """When the measured window's errors happened: ``[{"start_s", "end_s", "errors"}]``.

    Seconds with errors (``timeseries.csv`` rows) less than ``gap_s`` apart are one burst;
    a burst spans its first row's start to its last row's end. A node lost behind a load
    balancer shows as one short burst; errors that never stop, as one burst to the end.
    """
    bursts: list[dict] = []
    for row in sorted(rows, key=lambda r: r["t_s"]):
        errors = row.get("errors") or 0
        if errors <= 0 or not 0 <= row["t_s"] < duration_s:
            continue
        start, end = float(row["t_s"]), float(row["t_s"]) + 1.0
        if bursts and start - bursts[-1]["end_s"] < gap_s:
            bursts[-1]["end_s"] = round(end, 3)
            bursts[-1]["errors"] += int(errors)
        else:
            bursts.append(
                {"start_s": round(start, 3), "end_s": round(end, 3), "errors": int(errors)}
            )
    return bursts


def _only_late_sends(reasons: list[str], *, cpu_pct, nodes) -> bool:
    """Whether late sends, and nothing else, made the run invalid.

    Too few samples, refused arrivals and a partial run each have a reason of their own;
    only the generator's CPU shares the ``GENERATOR_LIMITED`` prefix with late sends, so
    its limit is checked here (each worker's with workers: the master sends nothing).
    """
    if not all_generator_limited(reasons):
        return False
    cpus = [node.get("cpu_pct_max") for node in nodes] if nodes else [cpu_pct]
    return not any(cpu is not None and cpu > MAX_GENERATOR_CPU_PCT for cpu in cpus)


def breach_despite_late_sends(recorder, bound_ms: float | None) -> dict | None:
    """A P99 breach the target caused, proven by a run made invalid by late sends alone.

    Late sends with the generator's CPU under its limit mean the generator was not busy
    but not running: stalled by the machine (other processes, a niced tier, a VM's steal).
    A stall delays the sends due in it (counted against the target by the CO-corrected
    latency) and the reading of answers that arrive in it (counted by the service time);
    so the run's worst send lag bounds both. Answers whose *service time* exceeds the bound
    plus that worst lag were over the bound at the target whatever the generator did; when
    there are as many as prove the P99 over the bound at 99 % confidence
    (:func:`min_over_to_prove_breach`), the breach is proven. A generator busy on its own
    CPU, or one that refused arrivals, proves nothing this way: its own queue of thousands
    of in-flight requests delays every read by far more than any send (a CI run at
    30,000 req/s: sends at most 316 ms late, service times of 3.3 s).
    """
    if bound_ms is None:
        return None
    worst_lag_ms = recorder.quantiles_ms("send_lag")["max"] or 0.0
    over = recorder.count_over(bound_ms + worst_lag_ms, which="service")
    needed = min_over_to_prove_breach(recorder.requests)
    if needed is None or over < needed:
        return None
    return {
        "bound_ms": bound_ms,
        "worst_send_lag_ms": _r(worst_lag_ms),
        "service_over": over,
        "needed": needed,
        "samples": recorder.requests,
        "reason": (
            f"P99 over {bound_ms:g} ms proven despite the late sends: {over} of "
            f"{recorder.requests} answers took over {bound_ms + worst_lag_ms:g} ms at the "
            f"target (the bound plus the generator's worst send lag), {needed} prove it at "
            "99 % confidence"
        ),
    }


def build(
    *,
    recorder,
    config,
    llm=None,
    started_at: float,
    duration_s: float,
    host: dict,
    generator_cpu_pct_max: float | None,
    rows: list[dict],
    partial: bool = False,
    reasons: list[str] | None = None,
    workers: dict | None = None,
) -> Summary:
    """The run's :class:`~inferops.measure.runformat.Summary` (docs/run-format.md).

    ``config`` is the run's :class:`~inferops.load.options.LoadConfig`: target,
    protocol, model, mode, offered rate, limits, the P99 bound and the in-flight cap.
    ``llm``: the :class:`~inferops.measure.llm.LLMRecorder` of a streamed LLM run.
    ``workers``: the ``workers`` block of a distributed run; each worker in
    ``workers["nodes"]`` is judged on its own and named when it saturated.
    """
    limits, bound_ms, max_inflight = config.limits, config.bound_ms, config.max_inflight
    reasons = list(reasons or [])
    n, failures = recorder.requests, recorder.failures
    late_pct = recorder.late_sends_pct()
    if n < MIN_SAMPLES_P99:
        reasons.append(f"too few samples: {n} < {MIN_SAMPLES_P99} needed for a P99 claim")
    if late_pct is not None and late_pct > MAX_LATE_SENDS_PCT:
        reasons.append(
            f"{GENERATOR_LIMITED}: {late_pct:.2f} % late sends "
            f"(> {recorder.late_tolerance_s * 1000:g} ms late; limit {MAX_LATE_SENDS_PCT:g} %)"
        )
    nodes = (workers or {}).get("nodes") or []
    reasons.extend(worker_reasons(nodes))
    if (
        not nodes
        and generator_cpu_pct_max is not None
        and generator_cpu_pct_max > MAX_GENERATOR_CPU_PCT
    ):
        reasons.append(
            f"{GENERATOR_LIMITED}: its CPU reached {generator_cpu_pct_max:.0f} % "
            f"(> {MAX_GENERATOR_CPU_PCT:g} %)"
        )
    if recorder.dropped and not nodes:
        reasons.append(
            f"{INFLIGHT_CAP} ({max_inflight}) reached: {recorder.dropped} arrivals not sent"
        )
    if partial and not any(r.startswith("partial") for r in reasons):
        reasons.append("partial run: interrupted before the end")
    valid = not reasons

    latency = {k: _r(v) for k, v in recorder.quantiles_ms("latency").items()}
    service = {k: _r(v) for k, v in recorder.quantiles_ms("service").items()}
    error_rate = failures / n if n else None
    achieved = (n - failures) / duration_s if duration_s > 0 else None
    if bound_ms is not None:
        es = early_stopping(n, recorder.count_over(bound_ms), bound_ms)
    else:
        es = early_stopping(n, 0, None)
        es["over_bound"] = None
        es["ok"] = n >= MIN_SAMPLES_P99

    observed = {
        "p99_latency_ms": latency["p99"],
        "min_qps": achieved,
        "max_error_rate": error_rate,
        "min_success_rate": None if error_rate is None else 1.0 - error_rate,
        "max_cpu_percent": host.get("cpu_pct_max"),
        "max_memory_percent": host.get("memory_pct_max"),
        "max_gpu_util_percent": host.get("gpu_util_pct_max"),
        "max_gpu_memory_percent": host.get("gpu_mem_pct_max"),
        "max_gpu_power_watts": host.get("gpu_power_w_max"),
        "max_gpu_temp_celsius": host.get("gpu_temp_c_max"),
    }
    llm_summary = llm.summary(duration_s) if llm is not None else None
    if llm_summary is not None:
        observed.update(
            {
                "p99_ttft_ms": llm_summary["ttft_ms"]["p99"],
                "p99_tpot_ms": llm_summary["tpot_ms"]["p99"],
                "min_output_tokens_per_s": llm_summary["output_tokens_per_s"],
                "min_goodput_qps": llm_summary["goodput_qps"],
            }
        )
    checks = thresholds_mod.check(limits, observed)
    for c in checks:
        c["value"] = _r(c["value"], 4)
    for c in checks:
        if c["name"] == "p99_latency_ms" and c["ok"] and bound_ms == c["limit"] and not es["ok"]:
            c["ok"] = False
            c["note"] = "P99 under the limit not proven at 99 % confidence (early stopping)"
    passed = valid and all(c["ok"] is not False for c in checks)
    late_only = _only_late_sends(reasons, cpu_pct=generator_cpu_pct_max, nodes=nodes)
    breach = breach_despite_late_sends(recorder, bound_ms) if late_only else None
    return Summary(
        schema=SCHEMA,
        partial=partial,
        target=redact_url(config.target),
        protocol=config.protocol,
        model=config.model,
        mode=config.mode,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
        duration_s=_r(duration_s),
        warmup_s=_r(config.warmup_s),
        requests=n,
        failures=failures,
        error_rate=_r(error_rate, 6),
        offered_qps=_r(config.rate),
        achieved_qps=_r(achieved),
        latency_ms=latency,
        service_time_ms=service,
        late_sends_pct=_r(late_pct),
        late_tolerance_ms=_r(recorder.late_tolerance_s * 1000.0),
        send_lag_ms={k: _r(v) for k, v in recorder.quantiles_ms("send_lag").items()},
        dropped=recorder.dropped,
        generator_cpu_pct_max=_r(generator_cpu_pct_max, 1),
        host={k: _r(v, 2) for k, v in host.items()},
        valid=valid,
        validity=reasons,
        early_stopping=es,
        stability=stability(window_throughputs(rows, duration_s)),
        thresholds=checks,
        passed=passed,
        llm=llm_summary,
        workers=workers,
        error_bursts=error_bursts(rows, duration_s) if failures else None,
        breach_proven=breach,
    )


def exit_code(summary: Summary) -> int:
    """0 passed, 1 threshold breached (or a P99 breach proven despite late sends), 3
    invalid or partial."""
    if not summary.trusted:
        return BREACH if summary.breach_proven else INVALID
    return OK if summary.passed else BREACH


def headline(summary: Summary) -> str:
    """One line for the terminal."""
    lat = summary.latency_ms or {}

    def ms(v):
        return "-" if v is None else f"{v:.2f}"

    verdict = (
        "PARTIAL"
        if summary.partial
        else "FAIL (late sends, breach proven)"
        if summary.breach_proven
        else "INVALID"
        if not summary.valid
        else "PASS"
        if summary.passed
        else "FAIL"
    )
    offered = summary.offered_qps
    late = summary.late_sends_pct
    llm = summary.llm
    tokens = ""
    if llm:
        tokens = (
            f", TTFT p99 {ms(llm['ttft_ms']['p99'])} ms, TPOT p99 {ms(llm['tpot_ms']['p99'])} ms"
            f", {llm['output_tokens_per_s'] or 0:.1f} output tokens/s"
        )
    return (
        f"{verdict}: {summary.requests} requests, "
        f"{summary.achieved_qps or 0:.1f} req/s achieved"
        + (f" of {offered:.1f} offered" if offered else "")
        + f", p50 {ms(lat.get('p50'))} ms, p99 {ms(lat.get('p99'))} ms, "
        f"errors {summary.failures}, late sends {late if late is not None else '-'} %" + tokens
    )
