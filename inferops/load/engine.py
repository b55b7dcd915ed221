"""Run the Locust users programmatically and write a run folder (``inferops bench``).

The same user classes as ``locust -f loadtests/`` run inside a
``locust.env.Environment`` with a ``LocalRunner`` on gevent; numbers come from
the in-process :class:`~inferops.measure.recorder.Recorder` and ``env.stats``
(never Locust's lagging CSV). Public entry points:

* :func:`measure` — one run (open loop at a rate, or closed loop with users);
* :func:`sweep` — the SLO search, one run folder per step under ``steps/NN``.

Both return the summary dict that they also wrote as ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import signal
import time
from dataclasses import dataclass, field

from inferops.load.users import LoadConfig

#: seconds without a successful reply, with connection errors, before a run is abandoned
DEAD_TARGET_S = 3.0


@dataclass
class RunSpec:
    """One measurement: the load, its length and what it is judged against."""

    config: LoadConfig
    users: int | None = None  # closed loop when set
    duration_s: float = 30.0
    warmup_s: float = 5.0
    limits: dict = field(default_factory=dict)  # from inferops.thresholds.load
    slo_p99_ms: float | None = None
    command: list[str] = field(default_factory=list)
    profile: str | None = None
    progress: bool = True
    node_exporter: str | None = None  # host metrics from the target's node_exporter

    @property
    def bound_ms(self) -> float | None:
        return self.slo_p99_ms if self.slo_p99_ms is not None else self.limits.get("p99_latency_ms")

    @property
    def mode(self) -> str:
        return "closed" if self.users else "open"


class _Stop:
    """Why a run ended early (set from signal handlers and the watchdog)."""

    def __init__(self):
        self.reason: str | None = None

    def __call__(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason


def _user_classes():
    from inferops.load.users import ClosedLoopUser, OpenLoopUser

    class BenchOpenLoop(OpenLoopUser):
        pass

    class BenchClosedLoop(ClosedLoopUser):
        pass

    return BenchOpenLoop, BenchClosedLoop


def _default_options():
    from locust import argument_parser

    parser = argument_parser.get_empty_argument_parser()
    argument_parser.setup_parser_arguments(parser)
    return parser.parse(args=[])


def _host_rows(samples: list[dict], rows: list[dict]) -> None:
    """Merge 1 Hz host samples into the per-second rows (by epoch second)."""
    by_sec: dict[int, dict] = {}
    for s in samples:
        by_sec[int(s["t"])] = s
    for row in rows:
        s = by_sec.get(int(row["t"]))
        if s:
            row.update({k: v for k, v in s.items() if k != "t"})


def _peaks(samples: list[dict], start: float, end: float, fallback: dict) -> tuple[dict, float]:
    window = [s for s in samples if start - 1 <= s["t"] <= end + 1] or samples

    def peak(key):
        vals = [s.get(key) for s in window if s.get(key) is not None]
        return max(vals) if vals else None

    if not window:
        host = {
            k: fallback.get(k)
            for k in (
                "cpu_pct_max",
                "memory_pct_max",
                "gpu_util_pct_max",
                "gpu_mem_pct_max",
                "gpu_power_w_max",
                "gpu_temp_c_max",
            )
        }
        return host, fallback.get("gen_cpu_pct_max")
    host = {
        "cpu_pct_max": peak("cpu_pct"),
        "memory_pct_max": peak("mem_pct"),
        "gpu_util_pct_max": peak("gpu_util_pct"),
        "gpu_mem_pct_max": peak("gpu_mem_pct"),
        "gpu_power_w_max": peak("gpu_power_w"),
        "gpu_temp_c_max": peak("gpu_temp_c"),
    }
    return host, peak("gen_cpu_pct")


def _write_locust_outputs(folder, env, csv_tmp) -> None:
    """Locust's own CSV (from its env.stats-based writer) and HTML, moved in atomically."""
    from locust.html import get_html_report

    writer = getattr(env, "_inferops_csv", None)
    if writer is not None:
        # final rows, then move each file in with an atomic write
        for fn, fh, w, start in (
            (
                writer._requests_data_rows,
                writer.requests_csv_filehandle,
                writer.requests_csv_writer,
                None,
            ),
            (
                writer._failures_data_rows,
                writer.failures_csv_filehandle,
                writer.failures_csv_writer,
                writer.failures_csv_data_start,
            ),
            (
                writer._exceptions_data_rows,
                writer.exceptions_csv_filehandle,
                writer.exceptions_csv_writer,
                writer.exceptions_csv_data_start,
            ),
        ):
            if start is None:
                fh.seek(0)
                fh.truncate()
                w.writerow(writer.requests_csv_columns)
            else:
                fh.seek(start)
                fh.truncate()
            fn(w)
        writer._stats_history_data_rows(writer.stats_history_csv_writer, time.time())
        writer.close_files()
        for suffix in ("stats", "stats_history", "failures", "exceptions"):
            tmp = os.path.join(csv_tmp, f"locust_{suffix}.csv")
            with open(tmp, encoding="utf-8") as fh:
                folder.write_text(f"locust_{suffix}.csv", fh.read())
            os.unlink(tmp)
        os.rmdir(csv_tmp)
    folder.write_text("locust.html", get_html_report(env, show_download_link=False))


def measure(spec: RunSpec, folder) -> dict:
    """Run once and write ``folder`` (a RunFolder); returns the summary."""
    import gevent
    import locust  # noqa: F401 - gevent monkey-patching before anything else
    from locust.env import Environment
    from locust.event import Events
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

    from inferops.load.payloads import TargetUnreachable
    from inferops.load.progress import Progress
    from inferops.measure import summary as summary_mod
    from inferops.measure.recorder import Recorder
    from inferops.measure.sampler_process import ProcessSampler

    config = dataclasses.replace(spec.config)  # a step must not leak its start time
    recorder = Recorder(late_tolerance_s=config.late_tolerance_s)
    started = time.time()
    stop = _Stop()

    def finish(env=None, *, rows=None, host=None, gen_cpu=None, duration=0.0, reasons=()):
        partial = stop.reason is not None
        summary = summary_mod.build(
            recorder=recorder,
            target=config.target,
            protocol=config.protocol,
            model=config.model,
            mode=spec.mode,
            started_at=started,
            duration_s=duration,
            warmup_s=spec.warmup_s,
            offered_qps=None if spec.users else config.rate,
            host=host or {},
            generator_cpu_pct_max=gen_cpu,
            limits=spec.limits,
            bound_ms=spec.bound_ms,
            rows=rows or [],
            partial=partial,
            reasons=list(reasons) + ([f"partial run: {stop.reason}"] if partial else []),
            max_inflight=config.max_inflight,
        )
        folder.write_json("manifest.json", _manifest(spec))
        folder.write_timeseries(rows or [])
        folder.write_hdr("latency.hdr", recorder.latency)
        folder.write_hdr("service_time.hdr", recorder.service)
        if env is not None:
            _write_locust_outputs(folder, env, os.path.join(folder.path, ".locust-tmp"))
        folder.finish(summary, partial=partial)
        return summary

    try:
        config.load_bodies()
    except TargetUnreachable as exc:
        stop(f"target unreachable at start: {exc}")
        return finish(reasons=[])

    open_cls, closed_cls = _user_classes()
    env = Environment(
        user_classes=[closed_cls if spec.users else open_cls],
        events=Events(),
        host=config.target,
        parsed_options=_default_options(),
    )
    env.parsed_options.inferops_open_users = 1
    env.inferops_config = config
    env.inferops_recorder = recorder
    recorder.attach(env.events)
    runner = env.create_local_runner()

    csv_tmp = os.path.join(folder.path, ".locust-tmp")
    os.makedirs(csv_tmp, exist_ok=True)
    env._inferops_csv = StatsCSVFileWriter(
        env, PERCENTILES_TO_REPORT, os.path.join(csv_tmp, "locust")
    )
    csv_greenlet = gevent.spawn(env._inferops_csv)

    handlers = [
        gevent.signal_handler(sig, stop, name)
        for sig, name in (
            (signal.SIGINT, "interrupted (SIGINT)"),
            (signal.SIGTERM, "terminated (SIGTERM)"),
        )
    ]
    sampler = ProcessSampler(os.getpid(), node_exporter=spec.node_exporter)
    sampler.start()
    label = (
        f"{spec.users} users" if spec.users else f"{config.rate:g} req/s"
    ) + f" -> {config.target}"
    progress = Progress(label, spec.warmup_s + spec.duration_s, enabled=spec.progress)
    # long-lived set-up objects out of the collector's way: fewer, shorter GC pauses
    gc.collect()
    gc.freeze()
    t0 = time.time() + 0.05
    config.start = t0
    config.duration_s = spec.warmup_s + spec.duration_s
    recorder.window_start = t0 + spec.warmup_s
    recorder.window_end = recorder.window_start + spec.duration_s
    stats_reset = False
    last_tick = 0
    try:
        users_now = _closed_users(spec, 0.0)
        runner.start(users_now, spawn_rate=max(1, users_now))
        while True:
            now = time.time()
            if now >= recorder.window_end or stop.reason:
                break
            if not stats_reset and now >= recorder.window_start:
                env.stats.reset_all()  # Locust's own CSV/HTML cover the measured window
                stats_reset = True
            if (
                recorder.connection_errors
                and recorder.last_failure > recorder.last_success
                and now - max(recorder.last_success, t0) > DEAD_TARGET_S
            ):
                stop("target stopped answering (connection errors)")
                break
            if int(now) != last_tick:  # percentiles cost ~0.5 ms: once a second is plenty
                last_tick = int(now)
                if spec.users and _closed_users(spec, now - t0) != users_now:
                    users_now = _closed_users(spec, now - t0)  # closed-loop scenario
                    runner.start(users_now, spawn_rate=max(1, users_now))
                p99 = recorder.recent_p99_ms()
                progress.update(
                    now - t0,
                    f"{recorder.requests} req, "
                    f"p99 {'-' if p99 is None else f'{p99:.1f}'} ms (last s), "
                    f"{recorder.failures} errors",
                )
            gevent.sleep(0.2)
        if not spec.users and not stop.reason:
            # open loop: the schedule has ended; give in-flight requests time to land
            deadline = time.time() + config.timeout_s
            while (
                not getattr(env, "inferops_schedule_done", False)
                and time.time() < deadline
                and not stop.reason
            ):
                gevent.sleep(0.05)
    finally:
        runner.quit()
        progress.close()
        sampler.stop()
        csv_greenlet.kill(block=True)
        for h in handlers:
            h.cancel()
        recorder.detach(env.events)

    end = time.time() if stop.reason else recorder.window_end
    duration = max(0.0, min(end, recorder.window_end) - recorder.window_start)
    samples = sampler.samples()
    rows = recorder.rows(recorder.window_start, t_end=min(end, recorder.window_end))
    _host_rows(samples, rows)
    host, gen_cpu = _peaks(
        samples, recorder.window_start, recorder.window_start + duration, sampler.peaks()
    )
    return finish(env, rows=rows, host=host, gen_cpu=gen_cpu, duration=duration)


def _closed_users(spec: RunSpec, t: float) -> int:
    """Closed loop: the scenario scales the user count (open loop: one scheduler)."""
    if not spec.users:
        return 1
    return max(1, math.ceil(spec.users * spec.config.scenario.level(t)))


def _generator_limited(summary: dict) -> bool:
    return any(r.startswith("load generator limited") for r in summary["validity"])


def _step_record(
    s: dict, rate: float, index: int, slo: float, max_err: float, retried: bool = False
) -> dict:
    """One entry of ``slo.steps``."""
    p99 = s["latency_ms"]["p99"]
    err = s["error_rate"] if s["error_rate"] is not None else 1.0
    ok = bool(
        s["valid"]
        and s["early_stopping"]["ok"]
        and p99 is not None
        and p99 <= slo
        and err <= max_err
    )
    step = {
        "offered_qps": round(rate, 3),
        "achieved_qps": s["achieved_qps"],
        "p99_ms": p99,
        "error_rate": s["error_rate"],
        "valid": s["valid"],
        "ok": ok,
        "dir": f"steps/{index:02d}",
    }
    if not s["valid"]:
        step["validity"] = s["validity"]
    if retried:
        step["retried"] = True
    return step


def _manifest(spec: RunSpec) -> dict:
    from inferops.measure import manifest

    cfg = spec.config
    return manifest.collect(
        spec.command,
        thresholds=spec.limits,
        profile=spec.profile,
        extra={
            "load": {
                "target": cfg.target,
                "protocol": cfg.protocol,
                "model": cfg.model,
                "rate": cfg.rate,
                "users": spec.users,
                "arrivals": cfg.arrivals,
                "scenario": cfg.scenario.name,
                "duration_s": spec.duration_s,
                "warmup_s": spec.warmup_s,
                "slo_p99_ms": spec.slo_p99_ms,
                "max_inflight": cfg.max_inflight,
                "input_file": cfg.input_file,
                "host_metrics_from": spec.node_exporter or "load generator host",
            },
        },
    )


#: a sweep step runs long enough for this many samples (early stopping needs 459)
SWEEP_MIN_SAMPLES = 600


def sweep(
    spec: RunSpec,
    folder,
    *,
    start_qps: float = 10.0,
    max_qps: float = 1e6,
    precision: float = 0.02,
    max_steps: int = 25,
    say=print,
) -> dict:
    """Find the highest open-loop rate whose P99 meets ``spec.slo_p99_ms``.

    Doubles the rate from ``start_qps`` until a step misses the SLO, then
    bisects the bracket until it is narrower than ``precision`` of its upper
    end. A step counts as meeting the SLO only when it is valid, its P99 is
    proven under the bound by early stopping, and its error rate is within
    ``max_error_rate`` (default 1 %); an invalid step is never used to claim
    capacity (it closes the bracket from above and is named in ``slo.notes``).
    """
    from inferops.load.sweep import search

    slo = spec.bound_ms
    if slo is None:
        from inferops.exitcodes import UsageError

        raise UsageError("--sweep needs --slo-p99-ms (or p99_latency_ms in the thresholds)")
    max_err = spec.limits.get("max_error_rate", 0.01)
    steps: list[dict] = []
    summaries: list[dict] = []
    stopped = {"reason": None}

    def run_step(rate: float, retry: bool = True) -> dict | None:
        index = len(steps)
        duration = max(spec.duration_s, SWEEP_MIN_SAMPLES / rate)
        step_spec = dataclasses.replace(
            spec,
            config=dataclasses.replace(spec.config, rate=rate),
            users=None,
            duration_s=duration,
            slo_p99_ms=slo,
        )
        s = measure(step_spec, folder.step(index))
        if retry and not s["valid"] and not s["partial"] and _generator_limited(s):
            # a busy machine can stall the generator once; a rate is invalid only twice over
            steps.append(_step_record(s, rate, index, slo, max_err, retried=True))
            summaries.append(s)
            say(
                f"sweep step {index:02d}: {rate:.1f} req/s invalid "
                f"({'; '.join(s['validity'])}); measuring it again"
            )
            return run_step(rate, retry=False)
        step = _step_record(s, rate, index, slo, max_err)
        ok, p99 = step["ok"], step["p99_ms"]
        steps.append(step)
        summaries.append(s)
        say(
            f"sweep step {index:02d}: {rate:.1f} req/s -> p99 "
            f"{'-' if p99 is None else f'{p99:.2f}'} ms, "
            f"{'valid' if s['valid'] else 'INVALID'}, {'meets' if ok else 'misses'} SLO {slo:g} ms"
        )
        if s["partial"]:
            stopped["reason"] = s["validity"][-1] if s["validity"] else "partial"
            return None
        return step

    result = search(
        run_step, start=start_qps, ceiling=max_qps, precision=precision, max_steps=max_steps
    )
    notes = [
        f"step {st['dir']} at {st['offered_qps']:g} req/s was invalid "
        f"({'; '.join(st.get('validity', []))}); "
        + ("measured again" if st.get("retried") else "not used to claim capacity")
        for st in steps
        if not st["valid"]
    ]
    notes += result.notes
    # search() counts calls; a retried rate added two steps, so map rate -> last step
    best_index = None
    if result.best_rate is not None:
        best_index = max(
            i
            for i, st in enumerate(steps)
            if st["ok"] and st["offered_qps"] == round(result.best_rate, 3)
        )
    if best_index is not None:
        top = dict(summaries[best_index])
    else:
        top = dict(summaries[-1]) if summaries else {}
    partial = stopped["reason"] is not None
    top.update(
        {
            "mode": "sweep",
            "slo": {
                "p99_ms": slo,
                "max_qps": result.best_rate,
                "precision": precision,
                "converged": result.converged,
                "steps": steps,
                "notes": notes,
            },
        }
    )
    reasons = []
    if partial:
        reasons.append(f"partial run: sweep stopped: {stopped['reason']}")
    if result.best_rate is None and not partial:
        reasons.append(
            f"no valid step met the SLO (p99 <= {slo:g} ms) at or above {start_qps:g} req/s"
        )
    if reasons:
        top["valid"] = False
        top["validity"] = list(top.get("validity", [])) + reasons
        top["passed"] = False
    folder.write_json("manifest.json", _manifest(spec))
    if best_index is not None:
        # the headline histograms and timeseries are those of the capacity step
        step_dir = folder.path / steps[best_index]["dir"]
        for name in (
            "latency.hdr",
            "service_time.hdr",
            "timeseries.csv",
            "locust.html",
            "locust_stats.csv",
            "locust_stats_history.csv",
            "locust_failures.csv",
            "locust_exceptions.csv",
        ):
            folder.write_bytes(name, (step_dir / name).read_bytes())
    else:
        from inferops.measure.recorder import new_histogram

        folder.write_hdr("latency.hdr", new_histogram())
        folder.write_hdr("service_time.hdr", new_histogram())
        folder.write_timeseries([])
    folder.finish(top, partial=partial)
    return top
