"""inferops inside stock Locust: options, the run session, worker merging, the gate.

``loadtests/`` calls :func:`install` with ``locust.events``; everything else
happens through Locust's own events, so ``locust -f loadtests/`` keeps its web
UI, ``--headless``, ``locust.conf``, ``--processes`` and master/worker modes:

* ``init_command_line_parser`` — the load options (:mod:`inferops.load.options`,
  the same declarations as ``inferops bench``; also in the web UI);
* ``init`` / ``test_start`` — a :class:`~inferops.load.session.RunSession` per
  test on every process; it owns its ``request``, ``report_to_master`` (worker)
  and ``worker_report`` (master) listeners, so the master's histograms hold
  exactly every worker's samples;
* ``test_stopping`` / ``test_stop`` / ``quitting`` — the run window, then the
  summary, the optional run folder (``--run-folder``) and the exit code gate
  (``--thresholds``/``--slo-p99-ms``: 0 pass, 1 breach, 3 invalid).
"""

from __future__ import annotations

import math
import sys
import time

from inferops.exitcodes import InferopsError
from inferops.load import cluster
from inferops.load.options import LoadConfig, add_load_options
from inferops.load.session import ENV_ATTR, RunSession
from inferops.load.split import Coordinator


def add_options(parser) -> None:
    """Our options on Locust's own parser (``@events.init_command_line_parser``)."""
    add_load_options(parser, locust=True)


def config_from_options(environment) -> LoadConfig:
    """A LoadConfig from Locust's parsed options (called on every process)."""
    o = environment.parsed_options
    return LoadConfig.from_namespace(
        o,
        host=environment.host or getattr(o, "host", "") or "",
        run_time=getattr(o, "run_time", None) or None,
        seed_thresholds=False,
    )


def _new_session(environment, *, at_start: bool = False) -> RunSession | None:
    """This process's session for the next test, listening as its role requires.

    A bad option or thresholds file is one line and exit 2: at start-up at once;
    from the web UI's form, the test keeps the previous settings.
    """
    from locust.runners import MasterRunner, WorkerRunner

    from inferops.load.protocols.tensors import TargetUnreachable

    try:
        config = config_from_options(environment)
        try:  # a bad input file (or 401, unknown model) is exit 2 now, not a failing user
            config.load_bodies()
        except TargetUnreachable:
            pass  # measured: every request fails, the run is judged invalid
    except InferopsError as exc:
        print(f"inferops: error: {exc}", file=sys.stderr)
        if at_start:
            sys.exit(exc.exit_code)
        environment.process_exit_code = exc.exit_code
        return None
    runner = environment.runner
    master = isinstance(runner, MasterRunner)
    session = RunSession(config)
    session.attach(
        environment.events,
        sends=not master,
        worker=isinstance(runner, WorkerRunner),
        master=master,
    )
    return session


def install(events) -> None:
    """Register every listener on Locust's ``events``."""
    from locust.runners import MasterRunner, WorkerRunner

    events.init_command_line_parser.add_listener(add_options)

    @events.init.add_listener
    def on_init(environment, **_kw):
        session = _new_session(environment, at_start=True)
        if session is None:
            return
        setattr(environment, ENV_ATTR, session)
        runner = environment.runner
        cluster.install_messages(environment)
        if not isinstance(runner, MasterRunner):  # this process sends requests
            watch_cpu(environment)
        if not isinstance(runner, WorkerRunner):
            # the verdict needs scipy: import it now, not while workers are still sending
            import scipy.stats  # noqa: F401

    @events.test_start.add_listener
    def on_test_start(environment, **_kw):
        # options may have changed (web UI form, or the master's spawn message)
        old = getattr(environment, ENV_ATTR, None)
        session = _new_session(environment)
        if session is None:
            return
        if old is not None:
            old.detach()
            old.stop_sampling()
            if old.coordinator is not None:
                old.coordinator.stop()
        sample = not isinstance(environment.runner, WorkerRunner) and bool(
            environment.parsed_options.run_folder
        )
        session.start(environment, sample_host=sample)
        session.recorder.window_start = session.started
        if isinstance(environment.runner, MasterRunner) and session.config.rate:
            # one global schedule, split across the workers (inferops.load.split)
            session.coordinator = Coordinator(
                environment.runner,
                seed=session.config.seed,
                expected=getattr(environment.parsed_options, "expect_workers", 1) or 1,
                on_change=session.note_change,
            ).start()

    @events.test_stopping.add_listener
    def on_test_stopping(environment, **_kw):
        # arrivals after this point meet a generator busy stopping its users: not measured
        session = getattr(environment, ENV_ATTR, None)
        if session is not None:
            session.recorder.window_end = min(session.recorder.window_end, time.time())

    @events.test_stop.add_listener
    def on_test_stop(environment, **_kw):
        session = getattr(environment, ENV_ATTR, None)
        if session is not None:
            session.stopped = time.time()
            if session.coordinator is not None:
                session.coordinator.stop()  # workers leaving now is the end, not a re-split

    @events.quitting.add_listener
    def on_quitting(environment, **_kw):
        if isinstance(environment.runner, WorkerRunner):
            return
        finish(environment)


def watch_cpu(environment) -> None:
    """Track this process's CPU (% of one core) once a second, like Locust's own monitor."""
    import gevent
    import psutil

    proc = psutil.Process()
    proc.cpu_percent()

    def loop():
        while True:
            gevent.sleep(1.0)
            cpu = proc.cpu_percent()
            session = getattr(environment, ENV_ATTR, None)
            if session is not None:
                session.note_generator_cpu(cpu)

    gevent.spawn(loop)


def finish(environment):
    """Summary (and run folder) for the test that just ended; sets the exit code."""
    from inferops.measure.runfolder import RunFolder
    from inferops.measure.summary import exit_code, headline

    session = getattr(environment, ENV_ATTR, None)
    if session is None:
        return None
    o = environment.parsed_options
    end = session.stopped or time.time()
    planned_end = getattr(o, "inferops_window_end", None)
    run_time = getattr(o, "run_time", None)
    # stopped well before --run-time (Ctrl-C, web UI stop): an incomplete run
    partial = bool(run_time) and end - session.started < run_time - 1.0
    if planned_end and not partial:
        end = min(end, planned_end)
    # the window: from the first arrival any worker sent to the planned (or actual) end
    rec = session.recorder
    start = (
        max(session.started, rec.first_intended)
        if math.isfinite(rec.first_intended)
        else session.started
    )
    duration = max(0.0, end - start)
    summary = session.finish(
        window_start=start,
        window_end=max(start, end),
        partial=partial,
        reasons=[f"partial run: stopped after {duration:.1f} s of {run_time} s"] if partial else [],
    )
    print("inferops: " + headline(summary), file=sys.stderr)
    for reason in summary.validity:
        print(f"inferops: invalid: {reason}", file=sys.stderr)
    if o.thresholds or o.slo_p99_ms or partial:
        environment.process_exit_code = exit_code(summary)
    if o.run_folder:
        folder = RunFolder(o.run_folder, overwrite=True, secrets=session.config.secrets)
        session.write(folder, environment, summary, command=["locust", *sys.argv[1:]])
        print(f"inferops: run folder: {folder.path}", file=sys.stderr)
    return summary
