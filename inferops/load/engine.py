"""Run the Locust users programmatically and write a run folder (``inferops bench``).

The same user classes as ``locust -f loadtests/`` run inside a
``locust.env.Environment`` with a ``LocalRunner`` on gevent, measured by the
same :class:`~inferops.load.session.RunSession` as under stock Locust. Public
entry points:

* :func:`measure` — one run (open loop at a rate, or closed loop with users);
* :func:`sweep` — the SLO search, one run folder per step under ``steps/NN``.

Both return the :class:`~inferops.measure.runformat.Summary` they also wrote as
``summary.json``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import signal
import sys
import time

from inferops.load import settle
from inferops.load.options import LoadConfig
from inferops.load.session import RunSession
from inferops.load.settle import DEFAULT_SETTLE_MAX_S
from inferops.measure.runformat import (
    HISTOGRAMS,
    LLM_HISTOGRAMS,
    LOCUST_FILES,
    TIMESERIES,
    SloResult,
    SloStep,
)
from inferops.measure.validity import GENERATOR_LIMITED, INFLIGHT_CAP, PLANNED_SAMPLES_P99
from inferops.redact import redact_url
from inferops.thresholds import Slo, meets_slo

#: seconds without a successful reply, with connection errors, before a run is abandoned
DEAD_TARGET_S = 3.0
#: why a run ended early: the target went silent (:func:`_target_dead`), or a signal came
TARGET_DEAD = "target stopped answering (connection errors)"
SIGNAL_STOPS = {signal.SIGINT: "interrupted (SIGINT)", signal.SIGTERM: "terminated (SIGTERM)"}
#: how far past --sweep-budget a sweep may go while no step has met the SLO yet
BUDGET_STRETCH = 3.0
#: the sweep's error-rate limit when the thresholds have none
DEFAULT_MAX_ERROR_RATE = 0.01


class _Stop:
    """Why a run ended early (set from signal handlers and the watchdog)."""

    def __init__(self):
        self.reason: str | None = None

    def __call__(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason


# --- one run -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """Where the load comes from when it is not this process (``--workers``/``--master``).

    ``local``: worker processes started here (``--workers N``); ``expect``: workers
    to wait for (local ones included); ``cpus``: pin local worker k to ``cpus[k % len]``.
    """

    local: int = 0
    expect: int = 1
    bind_host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (local workers only)
    cpus: tuple[int, ...] = ()
    connect_wait_s: float = 60.0


def measure(
    config: LoadConfig,
    folder,
    *,
    command=(),
    progress: bool = True,
    cluster: ClusterSpec | None = None,
):
    """Run once and write ``folder`` (a RunFolder); returns the Summary.

    With ``cluster``, this process is a Locust master: its workers send, it
    merges their histograms and judges the run (docs/load.md, "Distributed load").
    """
    import locust  # noqa: F401 - gevent monkey-patching before anything else

    from inferops.load.protocols.tensors import TargetUnreachable

    config = dataclasses.replace(config)  # a step must not leak its start time
    session = RunSession(config)
    stop = _Stop()
    try:
        config.load_bodies()
    except TargetUnreachable as exc:
        stop(f"target unreachable at start: {exc}")
        return _finish(session, None, folder, stop, session.started, session.started, command)

    env, runner = _environment(config, cluster)
    if cluster is None:
        session.start(env).attach(env.events)
    else:
        session.start(env).attach(env.events, sends=False, master=True)
    history = _HistoryCsv(env, folder.path)
    handlers = _on_signals(stop)
    workers = None
    window_start = window_end = None
    try:
        if cluster is None:
            window_start, window_end = _schedule(config, session)
            _drive(config, session, env, runner, stop, progress)
            if config.mode == "open" and not stop.reason:
                _drain(config, session, stop)
        else:
            workers = _local_workers(runner, cluster)
            window_start, window_end = _start_cluster(
                config, session, runner, cluster, stop, workers
            )
            if window_start is not None:
                schedulers = runner.worker_count if config.mode == "open" else None
                _drive(config, session, env, runner, stop, progress, schedulers=schedulers)
                _drain_cluster(config, session, env, stop)
    finally:
        runner.quit()
        if workers is not None:
            workers.stop()
        if session.coordinator is not None:
            session.coordinator.stop()
        session.stop_sampling()
        history.stop()
        for h in handlers:
            h.cancel()
        session.detach()
    if window_start is None:  # stopped before the workers started: nothing was measured
        window_start = window_end = time.time()
    end = time.time() if stop.reason else window_end
    end = max(window_start, min(end, window_end))
    history_text = history.take()  # and its scratch folder is gone before summary.json lands
    return _finish(session, env, folder, stop, window_start, end, command, history_text)


_USER_CLASSES: tuple | None = None


def bench_user_classes() -> tuple:
    """The two user classes ``inferops bench`` runs; the same names on master and workers."""
    global _USER_CLASSES
    if _USER_CLASSES is None:
        from inferops.load.users import ClosedLoopUser, OpenLoopUser

        class BenchOpenLoop(OpenLoopUser):
            pass

        class BenchClosedLoop(ClosedLoopUser):
            pass

        _USER_CLASSES = (BenchOpenLoop, BenchClosedLoop)
    return _USER_CLASSES


def _environment(config: LoadConfig, cluster: ClusterSpec | None = None):
    """A Locust Environment with one user class (open- or closed-loop) and its runner.

    Alone: a LocalRunner. With ``cluster``: a MasterRunner (the config travels to
    the workers in Locust's spawn message, see :func:`_start_cluster`).
    """
    from locust import argument_parser
    from locust.env import Environment
    from locust.event import Events

    from inferops.load import cluster as cluster_mod

    open_loop, closed_loop = bench_user_classes()
    parser = argument_parser.get_empty_argument_parser()
    argument_parser.setup_parser_arguments(parser)
    env = Environment(
        user_classes=[open_loop if config.mode == "open" else closed_loop],
        events=Events(),
        host=config.target,
        parsed_options=parser.parse(args=[]),
    )
    if cluster is None:
        return env, env.create_local_runner()
    runner = env.create_master_runner(cluster.bind_host, cluster.port)
    cluster_mod.install_messages(env)
    return env, runner


def _local_workers(runner, spec: ClusterSpec):
    from inferops.load import cluster

    if not spec.local:
        return None
    return cluster.LocalWorkers(spec.local, runner.server.port, cpus=list(spec.cpus))


def _start_cluster(config, session, runner, spec: ClusterSpec, stop: _Stop, workers=None):
    """Wait for the workers, hand out the schedule; the measured window, or (None, None)
    when the run was stopped before the schedule started."""
    import gevent

    from inferops.exitcodes import InvalidMeasurement
    from inferops.load.split import Coordinator

    where = "--workers" if spec.local else "--master"
    if not spec.local:
        print(
            f"inferops: master waiting for {spec.expect} worker(s) on "
            f"{spec.bind_host}:{runner.server.port}",
            file=sys.stderr,
            flush=True,
        )
    deadline = time.time() + spec.connect_wait_s
    while runner.worker_count < spec.expect and not stop.reason:
        if workers is not None and workers.exited():
            raise InvalidMeasurement(
                f"--workers: a worker exited before connecting: {workers.log_tail() or '?'}"
            )
        if time.time() > deadline:
            raise InvalidMeasurement(
                f"{where}: {runner.worker_count} of {spec.expect} workers connected "
                f"within {spec.connect_wait_s:g} s"
            )
        gevent.sleep(0.05)
    if stop.reason:
        return None, None
    config.schedule_s = config.warmup_s + config.duration_s
    runner.environment.parsed_options.inferops_bench = config.to_wire()  # rides the spawn message
    if config.mode == "open":
        session.coordinator = Coordinator(
            runner, seed=config.seed, expected=spec.expect, on_change=session.note_change
        ).start()
        n = runner.worker_count
        runner.start(n, spawn_rate=n)  # one scheduler per worker
        deadline = time.time() + 30.0
        while session.coordinator.plan is None:
            if stop.reason:
                return None, None
            if time.time() > deadline:
                raise InvalidMeasurement(f"{where}: the workers' schedulers did not start in 30 s")
            gevent.sleep(0.02)
        t0 = session.coordinator.plan.t0
    else:
        t0 = time.time()
    config.start = t0
    recorder = session.recorder
    recorder.window_start = t0 + config.warmup_s
    recorder.window_end = recorder.window_start + config.duration_s
    return recorder.window_start, recorder.window_end


def _drain_cluster(config, session, env, stop: _Stop) -> None:
    """Wait for every worker's in-flight requests to land, taking their last reports."""
    import gevent

    from inferops.load import cluster

    deadline = time.time() + config.timeout_s + 1.0
    while True:
        silent = cluster.flush(env, session)
        active = cluster.active_ids(env.runner)
        done = config.mode == "closed" or all(session.nodes.get(i, {}).get("done") for i in active)
        if (done and not silent) or stop.reason or time.time() > deadline:
            return
        gevent.sleep(0.2)


def serve_as_worker(master_host: str, master_port: int) -> int:
    """``inferops bench --worker``: send this worker's share of each test the master runs."""
    import locust  # noqa: F401 - gevent monkey-patching before anything else
    from locust import argument_parser
    from locust.env import Environment
    from locust.event import Events

    from inferops.load import cluster
    from inferops.load.locust_plugin import watch_cpu
    from inferops.load.session import ENV_ATTR

    parser = argument_parser.get_empty_argument_parser()
    argument_parser.setup_parser_arguments(parser)
    env = Environment(
        user_classes=list(bench_user_classes()),
        events=Events(),
        parsed_options=parser.parse(args=[]),
    )

    @env.events.test_start.add_listener
    def on_test_start(environment, **_kw):
        old = getattr(environment, ENV_ATTR, None)
        if old is not None:
            old.detach()
        config = LoadConfig.from_wire(environment.parsed_options.inferops_bench)
        session = RunSession(config)
        session.start(environment, sample_host=False)
        session.attach(environment.events, sends=True, worker=True)

    try:
        runner = env.create_worker_runner(master_host, master_port)
    except ConnectionError:  # Locust retried for minutes
        from inferops.exitcodes import InvalidMeasurement

        raise InvalidMeasurement(
            f"--worker: no master answered at {master_host}:{master_port}"
        ) from None
    cluster.install_messages(env)
    watch_cpu(env)
    runner.greenlet.join()
    return 0


class _HistoryCsv:
    """Locust's own ``locust_stats_history.csv``, written by its public StatsCSVFileWriter."""

    def __init__(self, env, folder):
        import gevent
        from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

        self.tmp = os.path.join(folder, ".locust-tmp")
        os.makedirs(self.tmp, exist_ok=True)
        self.writer = StatsCSVFileWriter(
            env, PERCENTILES_TO_REPORT, os.path.join(self.tmp, "locust")
        )
        self.path = self.writer.stats_history_file_name()
        self.greenlet = gevent.spawn(self.writer)

    def stop(self) -> None:
        self.greenlet.kill(block=True)
        self.writer.stats_history_flush()
        self.writer.close_files()

    def take(self) -> str | None:
        """The history's text; the scratch files are removed."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                return fh.read()
        except OSError:
            return None
        finally:
            for name in os.listdir(self.tmp):
                os.unlink(os.path.join(self.tmp, name))
            os.rmdir(self.tmp)


def _on_signals(stop: _Stop) -> list:
    """Ctrl-C or SIGTERM end the run early; what was measured is written as partial."""
    import gevent

    return [gevent.signal_handler(sig, stop, name) for sig, name in SIGNAL_STOPS.items()]


def _schedule(config: LoadConfig, session: RunSession) -> tuple[float, float]:
    """Fix t=0 of the schedule and the measured window after the warm-up."""
    t0 = time.time() + 0.05
    config.start = t0
    config.schedule_s = config.warmup_s + config.duration_s
    recorder = session.recorder
    recorder.window_start = t0 + config.warmup_s
    recorder.window_end = recorder.window_start + config.duration_s
    return recorder.window_start, recorder.window_end


def _drive(
    config, session, env, runner, stop: _Stop, show_progress: bool, schedulers: int | None = None
) -> None:
    """Run the users until the window ends, a signal arrives or the target goes dead.

    ``schedulers``: open loop under a master, one scheduler per worker (already started).
    """
    import gevent

    from inferops.load.progress import Progress

    recorder, t0 = session.recorder, config.start
    label = (
        f"{config.users} users" if config.mode == "closed" else f"{config.rate:g} req/s"
    ) + f" -> {redact_url(config.target)}"
    progress = Progress(label, config.schedule_s, enabled=show_progress)
    stats_reset = False
    last_tick = 0
    users_now = _closed_users(config, 0.0)
    if schedulers is None:
        runner.start(users_now, spawn_rate=max(1, users_now))
    try:
        while True:
            now = time.time()
            if now >= recorder.window_end or stop.reason:
                return
            if not stats_reset and now >= recorder.window_start:
                env.stats.reset_all()  # Locust's own CSV/HTML cover the measured window
                stats_reset = True
            if _target_dead(recorder, now, t0):
                stop(TARGET_DEAD)
                return
            if int(now) != last_tick:  # percentiles cost ~0.5 ms: once a second is plenty
                last_tick = int(now)
                wanted = _closed_users(config, now - t0)
                if config.mode == "closed" and wanted != users_now:
                    users_now = wanted  # closed-loop scenario
                    runner.start(users_now, spawn_rate=max(1, users_now))
                _show(progress, recorder, now - t0)
            gevent.sleep(0.2)
    finally:
        progress.close()


def _target_dead(recorder, now: float, t0: float) -> bool:
    return bool(
        recorder.connection_errors
        and recorder.last_failure > recorder.last_success
        and now - max(recorder.last_success, t0) > DEAD_TARGET_S
    )


def _show(progress, recorder, elapsed: float) -> None:
    p99 = recorder.recent_p99_ms()
    progress.update(
        elapsed,
        f"{recorder.requests} req, "
        f"p99 {'-' if p99 is None else f'{p99:.1f}'} ms (last s), "
        f"{recorder.failures} errors",
    )


def _drain(config: LoadConfig, session: RunSession, stop: _Stop) -> None:
    """Open loop: the schedule has ended; give in-flight requests time to land."""
    import gevent

    deadline = time.time() + config.timeout_s
    while not session.schedule_done and time.time() < deadline and not stop.reason:
        gevent.sleep(0.05)


def _finish(session, env, folder, stop, window_start, window_end, command, history=None):
    """The Summary of the run, and its run folder."""
    partial = stop.reason is not None
    summary = session.finish(
        window_start=window_start,
        window_end=window_end,
        partial=partial,
        reasons=[f"partial run: {stop.reason}"] if partial else [],
    )
    session.write(folder, env, summary, command=list(command), history_csv=history)
    return summary


def _closed_users(config: LoadConfig, t: float) -> int:
    """Closed loop: the scenario scales the user count (open loop: one scheduler)."""
    if config.mode == "open" or not config.users:
        return 1
    return max(1, math.ceil(config.users * config.scenario.level(t)))


# --- the SLO sweep -------------------------------------------------------------------------


def sweep(
    config: LoadConfig,
    folder,
    *,
    start_qps: float = 10.0,
    max_qps: float = 1e6,
    precision: float = 0.02,
    max_steps: int = 25,
    say=print,
    command=(),
    progress: bool = True,
    budget_s: float | None = None,
    cluster: ClusterSpec | None = None,
    settle_max_s: float = DEFAULT_SETTLE_MAX_S,
):
    """Find the highest open-loop rate whose P99 meets the bound in force.

    Doubles the rate from ``start_qps`` until a step misses the SLO, then
    bisects the bracket until it is narrower than ``precision`` of its upper
    end. A step counts as meeting the SLO only when it is valid, its P99 is
    proven under the bound by early stopping, and its error rate is within
    ``max_error_rate`` (default 1 %); an invalid step is never used to claim
    capacity (it closes the bracket from above and is named in ``slo.notes``);
    when the load generator could not keep up, the search lowers the rate.
    With ``budget_s`` no step starts that would end after the budget: the sweep
    stops there, not converged, and what it proved stands. After an overloaded
    step the target is probed one request at a time until it has recovered, for up to
    ``settle_max_s`` (0: never; :mod:`inferops.load.settle`). Ctrl-C between
    steps ends it as a partial run, with its folder written.
    """
    from inferops.exitcodes import UsageError
    from inferops.load.sweep import search

    if config.streaming:
        if config.slo_ttft_ms is None and config.slo_tpot_ms is None:
            raise UsageError(
                f"--sweep with --protocol {config.protocol} needs --slo-ttft-ms "
                "and/or --slo-tpot-ms"
            )
    elif config.bound_ms is None:
        raise UsageError("--sweep needs --slo-p99-ms (or p99_latency_ms in the thresholds)")
    steps = _SweepSteps(
        config, folder, say=say, command=command, progress=progress, budget_s=budget_s
    )
    steps.cluster = cluster
    steps.settle_max_s = settle_max_s
    try:
        result = search(
            steps.run, start=start_qps, ceiling=max_qps, precision=precision, max_steps=max_steps
        )
    except KeyboardInterrupt:  # between two steps (during one, the step ends partial)
        steps.stopped = SIGNAL_STOPS[signal.SIGINT]
        result = _interrupted(steps)
    best_index = steps.index_of(result.best_rate)
    top = _sweep_summary(steps, result, best_index, precision=precision, start_qps=start_qps)
    _write_sweep_folder(folder, config, top, steps, best_index, command)
    return top


class _SweepSteps:
    """Runs the sweep's steps (``steps/NN``), each a full :func:`measure`."""

    def __init__(self, config: LoadConfig, folder, *, say, command, progress, budget_s=None):
        self.config, self.folder, self.say = config, folder, say
        self.command, self.progress = command, progress
        self.llm = config.streaming  # the knee: P99 TTFT and TPOT (E2E P99 only when bound)
        self.budget_s = budget_s
        self.started = time.monotonic()
        self.slo = Slo(
            config.bound_ms if config.bound_ms is not None else math.inf,
            config.limits.get("max_error_rate", DEFAULT_MAX_ERROR_RATE),
        )
        self.records: list[SloStep] = []
        self.summaries: list = []
        self.stopped: str | None = None
        self.cluster: ClusterSpec | None = None  # each step's workers (--workers/--master)
        self.settle_max_s = DEFAULT_SETTLE_MAX_S
        self.settle_notes: list[str] = []

    def run(self, rate: float, retry: bool = True) -> dict | None:
        """One step at ``rate``: ``{"ok", "valid"}`` for the search, None when interrupted."""
        index = len(self.records)
        step_config = dataclasses.replace(
            self.config,
            rate=rate,
            users=None,
            duration_s=max(self.config.duration_s, PLANNED_SAMPLES_P99 / rate),
        )
        over = self._over_budget(step_config)
        if over:
            self.say(f"sweep: {over}")
            return {"stop": over}
        settled = self._settle(index, step_config)
        if settled is not None:
            if settled.interrupted:
                self.stopped = "interrupted (while the target recovered)"
                return None
            if not settled.recovered and settled.last_p50_ms is None:
                self.stopped = f"the target stopped answering and {settled.describe()}"
                self.say(f"sweep: {self.stopped}")
                return None
            over = self._over_budget(step_config)  # the wait took time of its own
            if over:
                self.say(f"sweep: {over}")
                return {"stop": over}
        s = measure(
            step_config,
            self.folder.step(index),
            command=self.command,
            progress=self.progress,
            cluster=self.cluster,
        )
        if retry and not s.valid and not s.partial and _generator_limited(s):
            # a busy machine can stall the generator once; a rate is invalid only twice over
            self._keep(s, rate, index, retried=True)
            self.say(
                f"sweep step {index:02d}: {rate:.1f} req/s invalid "
                f"({'; '.join(s.validity)}); measuring it again"
            )
            return self.run(rate, retry=False)
        step = self._keep(s, rate, index)
        if settled is not None:
            step.settled_s = round(settled.waited_s, 1)
            step.recovered = settled.recovered
        self.say(
            f"sweep step {index:02d}: {rate:.1f} req/s -> {self._measured(step)}, "
            f"{'valid' if s.valid else 'INVALID'}, "
            f"{'meets' if step.ok else 'misses'} SLO {self.describe()}"
        )
        if s.partial and not (self.settle_max_s > 0 and _stopped_answering(s)):
            self.stopped = s.validity[-1] if s.validity else "partial"
            return None
        # a target that stopped answering under a step's load was overloaded, or died:
        # the wait before the next step tells which (it recovers, or the sweep stops)
        lower_helps = _lower_helps(s) or _stopped_answering(s)
        return {"ok": step.ok, "valid": step.valid, "lower_helps": lower_helps}

    def _settle(self, index: int, step_config):
        """After an overloaded step, probe until the target is back to light load.

        Returns the :class:`~inferops.load.settle.Settling`, or None when the
        previous step left no backlog (or settling is off). The wait comes out
        of the time budget, leaving the next step its own time.
        """
        if not self.records or self.settle_max_s <= 0 or not self._left_backlog(self.records[-1]):
            return None
        reference_p50 = self._light_load_p50()
        max_s = min(self.settle_max_s, self._time_left(step_config))
        self.say(
            f"sweep: step {index - 1:02d} overloaded the target; probing it one request "
            f"at a time until it recovers (at most {max_s:.0f} s)"
        )
        attempts = itertools.count()

        def probe():
            return self._probe(self.folder.probe(index, next(attempts)))

        result = settle.settle(probe, reference_p50_ms=reference_p50, max_s=max_s)
        self.say(f"sweep: before step {index:02d} the target {result.describe()}")
        if not result.recovered and not result.interrupted:
            self.settle_notes.append(
                f"before step steps/{index:02d} the target {result.describe()}; "
                "that step may read high"
            )
        return result

    def _left_backlog(self, step: SloStep) -> bool:
        """Did ``step`` overload the target (:func:`inferops.load.settle.overloaded`)?"""
        if settle.overloaded(
            step.p99_ms, self.slo.p99_ms, step.error_rate, self.slo.max_error_rate
        ):
            return True
        if not self.llm:
            return False
        return any(
            settle.overloaded(measured, bound, None, 1.0)
            for measured, bound in (
                (step.p99_ttft_ms, self.config.slo_ttft_ms),
                (step.p99_tpot_ms, self.config.slo_tpot_ms),
            )
            if bound is not None
        )

    def _light_load_p50(self) -> float | None:
        """The median latency of the lowest-rate step that met the SLO, or None."""
        met = [
            (st.offered_qps, s.latency_ms.get("p50"))
            for st, s in zip(self.records, self.summaries, strict=True)
            if st.ok and s.latency_ms.get("p50") is not None
        ]
        return min(met)[1] if met else None

    def _probe(self, folder):
        """One probe (a short run folder under ``settle/``); None on Ctrl-C.

        One closed-loop user: a request at a time adds no queue of its own, so
        the probe reads the backlog left behind, not one it made.
        """
        probe_config = dataclasses.replace(
            self.config,
            rate=None,
            users=1,
            warmup_s=0.0,
            duration_s=settle.PROBE_S,
            node_exporter=None,
            prometheus=None,
        )
        s = measure(
            probe_config, folder, command=self.command, progress=False, cluster=self.cluster
        )
        if _ended_by(s, *SIGNAL_STOPS.values()):
            return None
        return settle.Probe(p50_ms=s.latency_ms.get("p50"), requests=s.requests, errors=s.failures)

    def _over_budget(self, step_config) -> str | None:
        """Why the next step must not start (its end would pass the budget), or None.

        Until a step has met the SLO the sweep has nothing to stand on, so it may
        go on (re-measuring, lowering the rate) up to :data:`BUDGET_STRETCH` times
        the budget; after that, or once a capacity is proven, the budget holds.
        """
        if self.budget_s is None or not self.records:
            return None  # the first step always runs: a sweep with no step says nothing
        if self._time_left(step_config) >= 0:
            return None
        elapsed = time.monotonic() - self.started
        return (
            f"time budget of {self.budget_s:g} s spent after {len(self.records)} steps "
            f"({elapsed:.0f} s); the result stands, not converged"
        )

    def _time_left(self, step_config) -> float:
        """Seconds of budget that would be left after the next step (inf: no budget)."""
        if self.budget_s is None:
            return math.inf
        elapsed = time.monotonic() - self.started
        step_s = step_config.warmup_s + step_config.duration_s
        proven = any(st.ok for st in self.records)
        limit = self.budget_s if proven else self.budget_s * BUDGET_STRETCH
        return limit - elapsed - step_s

    def _keep(self, s, rate: float, index: int, retried: bool = False) -> SloStep:
        p99 = s.latency_ms["p99"]
        step = SloStep(
            offered_qps=round(rate, 3),
            achieved_qps=s.achieved_qps,
            p99_ms=p99,
            error_rate=s.error_rate,
            valid=s.valid,
            dir=f"steps/{index:02d}",
            validity=None if s.valid else s.validity,
            retried=True if retried else None,
            ok=False,
        )
        step.ok = meets_slo(step, self.slo, p99_proven=s.early_stopping["ok"])
        if self.llm:
            llm = s.llm or {}
            step.p99_ttft_ms = (llm.get("ttft_ms") or {}).get("p99")
            step.p99_tpot_ms = (llm.get("tpot_ms") or {}).get("p99")
            step.output_tokens_per_s = llm.get("output_tokens_per_s")
            step.ok = step.ok and _within(step.p99_ttft_ms, self.config.slo_ttft_ms)
            step.ok = step.ok and _within(step.p99_tpot_ms, self.config.slo_tpot_ms)
        self.records.append(step)
        self.summaries.append(s)
        return step

    def describe(self) -> str:
        """The SLO in words: ``p99 <= 50 ms`` or ``p99 TTFT <= 500 ms, p99 TPOT <= 50 ms``."""
        parts = []
        if self.llm:
            for name, bound in (
                ("TTFT", self.config.slo_ttft_ms),
                ("TPOT", self.config.slo_tpot_ms),
            ):
                if bound is not None:
                    parts.append(f"p99 {name} <= {bound:g} ms")
        if math.isfinite(self.slo.p99_ms):
            parts.append(f"p99 <= {self.slo.p99_ms:g} ms")
        return ", ".join(parts)

    def _measured(self, step: SloStep) -> str:
        def ms(v):
            return "-" if v is None else f"{v:.2f} ms"

        if self.llm:
            return f"p99 TTFT {ms(step.p99_ttft_ms)}, p99 TPOT {ms(step.p99_tpot_ms)}"
        return f"p99 {ms(step.p99_ms)}"

    def index_of(self, rate: float | None) -> int | None:
        """search() counts calls; a retried rate added two steps, so map rate -> last step."""
        if rate is None:
            return None
        return max(
            i for i, st in enumerate(self.records) if st.ok and st.offered_qps == round(rate, 3)
        )

    def notes(self) -> list[str]:
        return self.settle_notes + [
            f"step {st.dir} at {st.offered_qps:g} req/s was invalid "
            f"({'; '.join(st.validity or [])}); "
            + ("measured again" if st.retried else "not used to claim capacity")
            for st in self.records
            if not st.valid
        ]


def _within(value: float | None, bound: float | None) -> bool:
    """A measured P99 meets its bound (no bound: met; bound but nothing measured: not)."""
    return bound is None or (value is not None and value <= bound)


def _generator_limited(summary) -> bool:
    return any(r.startswith(GENERATOR_LIMITED) for r in summary.validity)


def _stopped_answering(summary) -> bool:
    """The step ended early because the target stopped answering (see :func:`_target_dead`)."""
    return _ended_by(summary, TARGET_DEAD)


def _ended_by(summary, *reasons: str) -> bool:
    """A partial run whose validity names one of ``reasons`` (``partial run: <reason>``)."""
    return summary.partial and any(r.endswith(reasons) for r in summary.validity)


def _lower_helps(summary) -> bool:
    """Invalid only because the generator fell behind (or hit its in-flight cap)."""
    return not summary.valid and all(
        r.startswith((GENERATOR_LIMITED, INFLIGHT_CAP)) for r in summary.validity
    )


def _interrupted(steps: _SweepSteps):
    from inferops.load.sweep import SearchResult

    best = [st for st in steps.records if st.ok]
    rate = max((st.offered_qps for st in best), default=None)
    return SearchResult(best_rate=rate, notes=["interrupted between steps"])


def _sweep_summary(steps: _SweepSteps, result, best_index, *, precision, start_qps):
    """The sweep's top-level Summary: its capacity step's numbers plus ``slo``."""
    slo_ms = steps.slo.p99_ms if math.isfinite(steps.slo.p99_ms) else None
    if not steps.summaries:  # stopped before any step finished
        now = time.time()
        steps.summaries.append(
            RunSession(steps.config).finish(window_start=now, window_end=now, partial=True)
        )
    base = steps.summaries[best_index if best_index is not None else -1]
    top = dataclasses.replace(
        base,
        mode="sweep",
        slo=SloResult(
            p99_ms=slo_ms,
            ttft_ms=steps.config.slo_ttft_ms if steps.llm else None,
            tpot_ms=steps.config.slo_tpot_ms if steps.llm else None,
            max_qps=result.best_rate,
            precision=precision,
            converged=result.converged,
            steps=steps.records,
            notes=steps.notes() + result.notes,
        ),
    )
    partial = steps.stopped is not None
    reasons = []
    if partial:
        reasons.append(f"partial run: sweep stopped: {steps.stopped}")
    if result.best_rate is None and not partial:
        reasons.append(
            f"no valid step met the SLO ({steps.describe()}) at or above {start_qps:g} req/s"
        )
    if reasons:
        top.valid = False
        top.validity = list(top.validity) + reasons
        top.passed = False
    top.partial = partial
    return top


def _write_sweep_folder(folder, config, top, steps: _SweepSteps, best_index, command) -> None:
    """The sweep folder: the capacity step's files copied up, summary.json last."""
    from inferops.measure import manifest

    folder.write_json(manifest.MANIFEST, manifest.collect_for(config, list(command)))
    if best_index is not None:
        step_dir = folder.path / steps.records[best_index].dir
        for name in (*HISTOGRAMS.values(), *LLM_HISTOGRAMS.values(), TIMESERIES, *LOCUST_FILES):
            if (step_dir / name).exists():
                folder.write_bytes(name, (step_dir / name).read_bytes())
    else:
        from inferops.measure.recorder import new_histogram

        for name in HISTOGRAMS.values():
            folder.write_hdr(name, new_histogram())
        folder.write_timeseries([])
    folder.finish(top, partial=top.partial)
