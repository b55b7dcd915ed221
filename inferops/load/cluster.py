"""Locust master and workers for inferops: the messages, and local worker processes.

Everything goes through Locust's own runners (``MasterRunner``/``WorkerRunner``)
and their custom messages (``runner.register_message`` / ``send_message``):

* ``inferops_ready`` (worker -> master): this worker's scheduler waits for its share;
* ``inferops_plan`` (master -> workers): the :class:`~inferops.load.split.Plan`;
* ``inferops_flush`` (master -> workers): send your last report now; the worker
  answers with Locust's own ``stats`` message (``report_to_master`` fires, so the
  HDR histograms ride with Locust's stats) and then ``inferops_flushed``.

:class:`LocalWorkers` runs ``inferops bench --worker`` processes for
``inferops bench --workers N``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from inferops.load.split import (
    FLUSH_MESSAGE,
    FLUSHED_MESSAGE,
    LOCAL,
    PLAN_MESSAGE,
    READY_MESSAGE,
    Plan,
)

#: a worker's scheduler gives up waiting for its share after this long
PLAN_WAIT_S = 60.0
#: how long the master waits for every worker's last report
FLUSH_WAIT_S = 10.0


def member_id(environment) -> str:
    """This process's name in the plan: Locust's worker id, or ``local``."""
    _, worker = _roles(environment)
    return environment.runner.client_id if worker else LOCAL


def _roles(environment):
    from locust.runners import MasterRunner, WorkerRunner

    runner = environment.runner
    return isinstance(runner, MasterRunner), isinstance(runner, WorkerRunner)


def install_messages(environment) -> None:
    """Register inferops's custom messages on the environment's runner (once)."""
    from inferops.load.session import session_of

    master, worker = _roles(environment)
    runner = environment.runner
    if master:

        def on_ready(environment, msg, **_kw):
            session = session_of(environment)
            info = dict(msg.data or {}, index=runner.get_worker_index(msg.node_id))
            session.note_worker(msg.node_id, info)  # named even if it dies before reporting
            coordinator = session.coordinator
            if coordinator is not None:
                coordinator.on_ready(msg=msg)

        def on_flushed(environment, msg, **_kw):
            session_of(environment).flushed.add(msg.node_id)

        runner.register_message(READY_MESSAGE, on_ready)
        runner.register_message(FLUSHED_MESSAGE, on_flushed)
    elif worker:

        def on_plan(environment, msg, **_kw):
            session_of(environment).accept_plan(Plan.from_message(msg.data))

        def on_flush(environment, msg, **_kw):
            data: dict = {}
            environment.events.report_to_master.fire(client_id=runner.client_id, data=data)
            runner.send_message("stats", data)  # Locust's own report message
            runner.send_message(FLUSHED_MESSAGE, {})

        runner.register_message(PLAN_MESSAGE, on_plan)
        runner.register_message(FLUSH_MESSAGE, on_flush)


def wait_for_plan(session, environment, me: str) -> Plan | None:
    """The plan this process's scheduler follows (alone: its own; worker: the master's)."""
    import gevent

    _, worker = _roles(environment)
    if not worker:
        if session.plan is None:
            session.accept_plan(
                Plan.alone(session.config.start or time.time(), session.config.seed)
            )
        return session.plan
    deadline = time.time() + PLAN_WAIT_S
    next_ready = 0.0
    while time.time() < deadline:
        plan = session.plan
        if plan is not None and plan.includes(me):
            return plan
        if time.time() >= next_ready:  # idempotent; repeated in case the master restarted
            environment.runner.send_message(
                READY_MESSAGE, {"host": socket.gethostname(), "pid": os.getpid()}
            )
            next_ready = time.time() + 1.0
        gevent.sleep(0.02)
    print(
        f"inferops: no share of the schedule from the master in {PLAN_WAIT_S:g} s", file=sys.stderr
    )
    return None


def active_ids(runner) -> list[str]:
    """Workers Locust still counts (not quit, not missing)."""
    clients = runner.clients
    return [c.id for c in clients.ready + clients.spawning + clients.running]


def flush(environment, session, timeout: float = FLUSH_WAIT_S) -> list[str]:
    """Master: ask every worker for its last report; the ids that did not answer."""
    import gevent

    runner = environment.runner
    expected = set(active_ids(runner))  # a missing worker cannot answer
    session.flushed = set()
    runner.send_message(FLUSH_MESSAGE, {})
    deadline = time.time() + timeout
    while not expected <= session.flushed and time.time() < deadline:
        gevent.sleep(0.02)
    return sorted(expected - session.flushed)


class LocalWorkers:
    """``inferops bench --worker`` processes on this machine, pointed at a local master.

    ``cpus``: pin worker k to ``cpus[k % len(cpus)]`` (``os.sched_setaffinity``).
    Each worker's output goes to a scratch log, shown when it fails.
    """

    def __init__(self, count: int, port: int, *, cpus: list[int] | None = None):
        self.procs: list[subprocess.Popen] = []
        self.logs = []
        for k in range(count):
            log = tempfile.TemporaryFile(mode="w+", prefix="inferops-worker-")
            cmd = [
                sys.executable,
                "-m",
                "inferops",
                "bench",
                "--worker",
                "--master-host",
                "127.0.0.1",
                "--master-port",
                str(port),
            ]
            cpu = cpus[k % len(cpus)] if cpus else None
            self.procs.append(
                subprocess.Popen(
                    cmd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # Ctrl-C reaches the master; it stops the workers
                    preexec_fn=None if cpu is None else _pin(cpu),
                )
            )
            self.logs.append(log)

    def exited(self) -> bool:
        return any(p.poll() is not None for p in self.procs)

    def log_tail(self) -> str:
        for log in self.logs:
            log.seek(0)
            lines = [ln.strip() for ln in log.read().splitlines() if ln.strip()]
            if lines:
                return lines[-1][:300]
        return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Wait for the workers to quit (the master told them); end the stragglers."""
        deadline = time.time() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                _kill_group(proc)
        for log in self.logs:
            log.close()


def _pin(cpu: int):
    def pin():
        os.sched_setaffinity(0, {cpu})

    return pin


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=3)
            return
        except subprocess.TimeoutExpired:
            continue
