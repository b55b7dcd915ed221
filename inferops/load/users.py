"""The Locust users: an open-loop scheduler user and a classic closed-loop user.

:class:`OpenLoopUser` is one Locust user that *schedules* requests instead of
issuing them in a loop: it computes arrival times from the clock (Poisson or
constant, at ``rate × scenario level``), sleeps until each, and spawns one
greenlet per request, so a slow or stalled server never delays the next send
(no coordinated omission). Concurrency is not capped by a user count; a
generous safety cap (``max_inflight``) only guards the generator, and every
arrival it refuses is counted and makes the run invalid.

Each request fires Locust's ``request`` event with ``response_time`` measured
from the *intended* send time and ``context = {intended, sent, done}`` so the
:class:`~inferops.measure.recorder.Recorder` can keep the service time too
(streamed LLM requests add ``llm``: first-token time, chunk gaps, tokens).
HTTP goes through geventhttpclient (what Locust's FastHttpUser uses) with a
connection pool and pre-encoded bodies; what a request is and when its reply
counts as a success is the protocol adapter's (``inferops/load/protocols/``).

:class:`ClosedLoopUser` is Locust's classic closed loop (``--users N``): each
user sends, waits for the reply, sends again; kept to show what closed-loop
numbers hide. It goes through the same protocol adapter, so every protocol
(streaming too) runs both ways.

Both are abstract here; ``loadtests/`` subclasses them (Locust only runs
concrete classes found in the locustfile).
"""

from __future__ import annotations

import itertools
import time

import gevent
from gevent.pool import Group
from locust import User, constant, task

from inferops.load import cluster
from inferops.load.session import session_of
from inferops.load.split import JUDGE_HORIZON_S, due, walk

#: libev waits on epoll, whose timeout is whole milliseconds (rounded up)
TIMER_RESOLUTION_S = 0.001


class InFlightCapReached(Exception):
    """The open-loop generator refused an arrival: too many requests in flight."""


def apply_window_end(environment) -> None:
    """Under ``locust -f`` with ``-t``, stop measuring at the planned end (see shape.py)."""
    end = getattr(environment.parsed_options, "inferops_window_end", None)
    if end:
        recorder = session_of(environment).recorder
        recorder.window_end = min(recorder.window_end, float(end))


class OpenLoopUser(User):
    """The open-loop scheduler: one per process, sending its share of the global schedule."""

    abstract = True
    wait_time = constant(0)

    @task
    def schedule(self):
        env = self.environment
        session = session_of(env)
        if session.scheduler_running:  # one scheduler per process: a second would double
            _idle()
        session.scheduler_running = True
        config, recorder = session.config, session.recorder
        apply_window_end(env)
        me = cluster.member_id(env)
        plan = cluster.wait_for_plan(session, env, me)
        if plan is None:
            _idle()
        start = plan.t0
        client = _client(config, concurrency=config.max_inflight)
        proto = config.proto
        bodies = itertools.cycle(config.load_bodies())
        method, path, fire = proto.method, config.path, env.events.request.fire
        inflight = Group()
        scenario, rate = config.scenario, config.rate or 0.0
        health = session.health
        health.group = inflight  # its size goes into each report to the master

        def rate_at(t: float) -> float:
            return rate * scenario.level(t)  # the cluster's rate: every worker walks it all

        drained = False

        def one(intended: float, body: bytes) -> None:
            sent = time.time()
            outcome = _call(proto, client, body)
            done = time.time()
            context = {"intended": intended, "sent": sent, "done": done}
            if outcome.llm is not None:
                context["llm"] = outcome.llm
            fire(
                request_type=method,
                name=path,
                response_time=(done - intended) * 1000.0,
                response_length=outcome.length,
                response=None,
                exception=outcome.error,
                start_time=sent,
                url=path,
                context=context,
            )

        try:
            for offset, u in walk(rate_at, kind=config.arrivals, seed=plan.seed):
                intended = due(start, offset, config.schedule_s, recorder.window_end)
                if intended is None:
                    break
                ahead = intended - time.time() - JUDGE_HORIZON_S
                if ahead > 0:  # judge ownership only under the plan in force near the arrival
                    gevent.sleep(ahead)
                if not session.plan.owns(me, offset, u):
                    continue
                delay = intended - time.time()
                if delay > TIMER_RESOLUTION_S:
                    # epoll rounds timer waits up to whole ms: wake one tick early
                    gevent.sleep(delay - TIMER_RESOLUTION_S)
                    now = time.time()
                    if now < intended:
                        intended = now  # sent up to 1 ms early: the arrival moves, never lags
                elif delay > 0:
                    intended = time.time()
                recorder.record_offered(intended)
                n = len(inflight)
                if n >= config.max_inflight:
                    fire(
                        request_type=method,
                        name=path,
                        response_time=0.0,
                        response_length=0,
                        response=None,
                        url=path,
                        start_time=intended,
                        exception=InFlightCapReached(f"{config.max_inflight} in flight"),
                        context={"intended": intended, "dropped": True},
                    )
                    continue
                if n >= health.inflight_max:
                    health.inflight_max = n + 1
                inflight.spawn(one, intended, next(bodies))
            # schedule over: let what is in flight finish (its latency still counts)
            inflight.join(timeout=config.timeout_s)
            drained = session.schedule_done = True
        finally:
            if not drained:  # stopped mid-schedule (-t, Ctrl-C): replies on the way still count
                inflight.join(timeout=min(2.0, config.timeout_s))
            inflight.kill(block=False)
            client.close()
        _idle()  # nothing more to send; idle until the runner stops us


def _idle():
    while True:
        gevent.sleep(3600)


class ClosedLoopUser(User):
    """Classic closed loop: each user sends, waits for the reply, sends again."""

    abstract = True
    wait_time = constant(0)

    def on_start(self):
        config = session_of(self.environment).config
        apply_window_end(self.environment)
        self._proto = config.proto
        self._bodies = itertools.cycle(config.load_bodies())
        self._client = _client(config, concurrency=1)

    def on_stop(self):
        self._client.close()

    @task
    def send(self):
        proto = self._proto
        sent = time.time()
        outcome = _call(proto, self._client, next(self._bodies))
        done = time.time()
        context = {"sent": sent, "done": done}  # no intended time: nothing to lag behind
        if outcome.llm is not None:
            context["llm"] = outcome.llm
        self.environment.events.request.fire(
            request_type=proto.method,
            name=proto.path,
            response_time=(done - sent) * 1000.0,
            response_length=outcome.length,
            response=None,
            exception=outcome.error,
            start_time=sent,
            url=proto.path,
            context=context,
        )


def _client(config, *, concurrency: int):
    from geventhttpclient import HTTPClient

    return HTTPClient.from_url(
        config.target,
        concurrency=concurrency,
        connection_timeout=config.timeout_s,
        network_timeout=config.timeout_s,
        headers=config.headers(),
    )


def _call(proto, client, body: bytes):
    """One request through the protocol; a transport error is a failed outcome too."""
    from inferops.load.protocols.base import Outcome

    try:
        return proto.call(client, body)
    except Exception as exc:  # every failure is a failed request, never a crash
        return Outcome(exc, 0)
