"""inferops inside stock Locust: options, recorder wiring, worker merging, the gate.

``loadtests/`` calls :func:`install` with ``locust.events``; everything else
happens through Locust's own events, so ``locust -f loadtests/`` keeps its web
UI, ``--headless``, ``locust.conf``, ``--processes`` and master/worker modes:

* ``init_command_line_parser`` — the options below (also in the web UI);
* ``init`` — a :class:`~inferops.measure.recorder.Recorder` on every process that
  sends requests (local or worker);
* ``report_to_master`` / ``worker_report`` — each worker ships its encoded
  histograms and counts with every stats report and is emptied; the master adds
  them up, so its histograms hold exactly every worker's samples;
* ``test_start`` / ``quitting`` — the run window, then the summary, the
  optional run folder (``--run-folder``) and the exit code gate
  (``--thresholds``/``--slo-p99-ms``: 0 pass, 1 breach, 3 invalid).
"""

from __future__ import annotations

import gc
import math
import os
import sys
import time

from inferops.load.arrivals import ARRIVALS, SCENARIOS, Scenario
from inferops.measure.recorder import REPORT_KEY, Recorder


def add_options(parser) -> None:
    """Our options on Locust's own parser (``@events.init_command_line_parser``)."""
    g = parser  # Locust's own parser: its groups lack the web-UI keywords
    g.add_argument("--model", default="", help="model name; payloads from its v2 metadata")
    g.add_argument(
        "--protocol",
        choices=("v2", "predict"),
        default="v2",
        help="v2: POST /v2/models/NAME/infer; predict: POST /predict",
    )
    g.add_argument(
        "--arrival-rate",
        type=float,
        default=0.0,
        help="open-loop arrivals per second in total (0 = classic closed loop)",
    )
    g.add_argument(
        "--arrivals", choices=ARRIVALS, default="poisson", help="open-loop arrival process"
    )
    g.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="steady",
        help="load over time (step/ramp/spike follow --run-time)",
    )
    g.add_argument("--steps", type=int, default=4, help="plateaus of the step scenario")
    g.add_argument("--spike-factor", type=float, default=5.0, help="spike peak / baseline")
    g.add_argument("--input-file", default="", help="sample inputs (.jsonl or .npy)")
    g.add_argument(
        "--token",
        default=os.environ.get("INFEROPS_TOKEN", ""),
        is_secret=True,
        help="bearer token (default $INFEROPS_TOKEN)",
    )
    g.add_argument(
        "--slo-p99-ms",
        type=float,
        default=0.0,
        help="P99 bound for the early-stopping verdict and the gate",
    )
    g.add_argument("--thresholds", default="", help="thresholds.toml to gate the exit code on")
    g.add_argument(
        "--max-inflight",
        type=int,
        default=10_000,
        help="open-loop safety cap on requests in flight",
    )
    g.add_argument(
        "--late-tolerance-ms",
        type=float,
        default=None,
        help="sends later than this after their intended time count as late "
        "(default 5%% of the P99 bound, at least 1 ms)",
    )
    g.add_argument(
        "--run-folder",
        default="",
        include_in_web_ui=False,
        help="write an inferops run folder (summary.json, HDR, ...) here at exit",
    )


def config_from_options(environment):
    """A LoadConfig from Locust's parsed options (called on every process)."""
    from inferops.load.users import LoadConfig

    o = environment.parsed_options
    run_time = getattr(o, "run_time", None)
    duration = float(run_time) if run_time else math.inf
    return LoadConfig(
        target=(environment.host or getattr(o, "host", "") or "").rstrip("/"),
        protocol=getattr(o, "protocol", "v2"),
        model=getattr(o, "model", "") or None,
        token=getattr(o, "token", "") or None,
        input_file=getattr(o, "input_file", "") or None,
        rate=getattr(o, "arrival_rate", 0.0) or None,
        arrivals=getattr(o, "arrivals", "poisson"),
        scenario=Scenario(
            getattr(o, "scenario", "steady"),
            duration_s=duration,
            steps=getattr(o, "steps", 4),
            spike_factor=getattr(o, "spike_factor", 5.0),
        ),
        max_inflight=getattr(o, "max_inflight", 10_000),
        late_tolerance_s=_late_tolerance_s(o),
    )


def _late_tolerance_s(o) -> float:
    from inferops import thresholds
    from inferops.exitcodes import UsageError
    from inferops.measure.validity import default_late_tolerance_s

    given = getattr(o, "late_tolerance_ms", None)
    if given:
        return given / 1000.0
    bound = getattr(o, "slo_p99_ms", None)
    if not bound and getattr(o, "thresholds", ""):
        try:
            bound = thresholds.load(o.thresholds).get("p99_latency_ms")
        except UsageError:
            bound = None  # the gate reports the bad file itself (exit 2)
    return default_late_tolerance_s(bound)


class _State:
    """Per-process bookkeeping for one test."""

    def __init__(self):
        self.recorder = Recorder()
        self.started = time.time()
        self.stopped: float | None = None
        self.gen_cpu_max: float | None = None
        self.sampler = None
        self.per_worker: dict[str, int] = {}  # master: measured samples each worker sent


def install(events) -> None:
    """Register every listener on Locust's ``events``."""
    from locust.runners import MasterRunner, WorkerRunner

    events.init_command_line_parser.add_listener(add_options)

    @events.init.add_listener
    def on_init(environment, **_kw):
        state = environment.inferops_state = _State()
        environment.inferops_recorder = state.recorder
        runner = environment.runner
        if not isinstance(runner, MasterRunner):  # this process sends requests
            environment.events.request.add_listener(
                lambda **kw: environment.inferops_recorder.on_request(**kw)
            )
            _watch_cpu(environment)
        if isinstance(runner, WorkerRunner):

            @environment.events.report_to_master.add_listener
            def on_report(client_id, data):
                st = environment.inferops_state
                report = st.recorder.take_report()
                report["gen_cpu_max"] = st.gen_cpu_max
                data[REPORT_KEY] = report

        if not isinstance(runner, WorkerRunner):
            # the verdict needs scipy: import it now, not while workers are still sending
            import scipy.stats  # noqa: F401

        if isinstance(runner, MasterRunner):

            @environment.events.worker_report.add_listener
            def on_worker_report(client_id, data):
                report = data.get(REPORT_KEY)
                if report:
                    st = environment.inferops_state
                    st.recorder.merge(report)
                    st.per_worker[client_id] = st.per_worker.get(client_id, 0) + report["counts"][0]
                    cpu = report.get("gen_cpu_max")
                    if cpu is not None:
                        st.gen_cpu_max = max(cpu, st.gen_cpu_max or 0.0)

    @events.test_start.add_listener
    def on_test_start(environment, **_kw):
        # options may have changed (web UI form, or the master's spawn message)
        environment.inferops_config = config_from_options(environment)
        old = getattr(environment, "inferops_state", None)
        state = environment.inferops_state = _State()
        if old is not None and old.sampler is not None:
            old.sampler.stop()
        state.recorder.late_tolerance_s = environment.inferops_config.late_tolerance_s
        # Locust's heap is large: a full collection of it stalls the schedule for
        # ~100 ms. Freeze what exists now so collections only scan new objects.
        gc.collect()
        gc.freeze()
        state.recorder.window_start = state.started
        environment.inferops_recorder = state.recorder
        if not isinstance(environment.runner, WorkerRunner) and _options(environment).run_folder:
            from inferops.measure.sampler_process import ProcessSampler

            state.sampler = ProcessSampler(os.getpid()).start()

    @events.test_stopping.add_listener
    def on_test_stopping(environment, **_kw):
        # arrivals after this point meet a generator busy stopping its users: not measured
        state = getattr(environment, "inferops_state", None)
        if state is not None:
            state.recorder.window_end = min(state.recorder.window_end, time.time())

    @events.test_stop.add_listener
    def on_test_stop(environment, **_kw):
        state = environment.inferops_state
        state.stopped = time.time()

    @events.quitting.add_listener
    def on_quitting(environment, **_kw):
        if isinstance(environment.runner, WorkerRunner):
            return
        finish(environment)


def _options(environment):
    return environment.parsed_options


def _watch_cpu(environment) -> None:
    """Track this process's CPU (% of one core) once a second, like Locust's own monitor."""
    import gevent
    import psutil

    proc = psutil.Process()
    proc.cpu_percent()

    def loop():
        while True:
            gevent.sleep(1.0)
            cpu = proc.cpu_percent()
            st = environment.inferops_state
            st.gen_cpu_max = max(cpu, st.gen_cpu_max or 0.0)

    gevent.spawn(loop)


def finish(environment) -> dict | None:
    """Summary (and run folder) for the test that just ended; sets the exit code."""
    from locust.runners import MasterRunner

    from inferops import thresholds
    from inferops.exitcodes import InferopsError
    from inferops.measure import summary as summary_mod

    state = getattr(environment, "inferops_state", None)
    if state is None:
        return None
    o = _options(environment)
    config = getattr(environment, "inferops_config", None) or config_from_options(environment)
    end = state.stopped or time.time()
    planned_end = getattr(o, "inferops_window_end", None)
    run_time = getattr(o, "run_time", None)
    # stopped well before --run-time (Ctrl-C, web UI stop): an incomplete run
    partial = bool(run_time) and end - state.started < run_time - 1.0
    if planned_end and not partial:
        end = min(end, planned_end)
    # the window: from the first arrival any worker sent to the planned (or actual) end
    rec = state.recorder
    start = (
        max(state.started, rec.first_intended)
        if math.isfinite(rec.first_intended)
        else state.started
    )
    duration = max(0.0, end - start)
    try:
        limits = thresholds.load(o.thresholds) if o.thresholds else {}
    except InferopsError as exc:
        print(f"inferops: error: {exc}", file=sys.stderr)
        environment.process_exit_code = exc.exit_code
        return None
    samples, host, gen_cpu = [], {}, state.gen_cpu_max
    if state.sampler is not None:
        state.sampler.stop()
        samples = state.sampler.samples()
        from inferops.load.engine import _host_rows, _peaks

        host, sampler_gen = _peaks(samples, state.started, end, state.sampler.peaks())
        gen_cpu = max(x for x in (gen_cpu, sampler_gen, 0.0) if x is not None)
    rows = state.recorder.rows(start, t_end=end)
    if samples:
        _host_rows(samples, rows)
    bound = o.slo_p99_ms or limits.get("p99_latency_ms")
    summary = summary_mod.build(
        recorder=state.recorder,
        target=config.target,
        protocol=config.protocol,
        model=config.model,
        mode="open" if config.rate else "closed",
        started_at=start,
        duration_s=duration,
        warmup_s=0.0,
        offered_qps=config.rate,
        host=host,
        generator_cpu_pct_max=gen_cpu,
        limits=limits,
        bound_ms=bound or None,
        rows=rows,
        max_inflight=config.max_inflight,
        partial=partial,
        reasons=[f"partial run: stopped after {duration:.1f} s of {run_time} s"] if partial else [],
    )
    if isinstance(environment.runner, MasterRunner):
        summary["workers"] = {
            "count": len(state.per_worker),
            "samples": sorted(state.per_worker.values()),
        }
    print("inferops: " + summary_mod.headline(summary), file=sys.stderr)
    for reason in summary["validity"]:
        print(f"inferops: invalid: {reason}", file=sys.stderr)
    if o.thresholds or o.slo_p99_ms or partial:
        environment.process_exit_code = summary_mod.exit_code(summary)
    if o.run_folder:
        _write_folder(environment, o, summary, rows, limits, partial)
    return summary


def _write_folder(environment, o, summary, rows, limits, partial) -> None:
    from locust.html import get_html_report
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

    from inferops.measure import manifest
    from inferops.measure.runfolder import RunFolder

    folder = RunFolder(o.run_folder, overwrite=True)
    state = environment.inferops_state
    folder.write_json(
        "manifest.json",
        manifest.collect(
            ["locust", *sys.argv[1:]], thresholds=limits, profile=getattr(o, "profile", None)
        ),
    )
    folder.write_timeseries(rows)
    folder.write_hdr("latency.hdr", state.recorder.latency)
    folder.write_hdr("service_time.hdr", state.recorder.service)
    import csv
    import io

    stats_csv = StatsCSV(environment, PERCENTILES_TO_REPORT)
    for name, method in (
        ("locust_stats.csv", stats_csv.requests_csv),
        ("locust_failures.csv", stats_csv.failures_csv),
        ("locust_exceptions.csv", stats_csv.exceptions_csv),
    ):
        buf = io.StringIO()
        method(csv.writer(buf))
        folder.write_text(name, buf.getvalue())
    folder.write_text("locust.html", get_html_report(environment, show_download_link=False))
    folder.finish(summary, partial=partial)
    print(f"inferops: run folder: {folder.path}", file=sys.stderr)
