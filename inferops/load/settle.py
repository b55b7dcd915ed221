"""Letting a target recover between two sweep steps.

An open-loop step above a target's capacity leaves a backlog behind it. Most
servers do not drop queued work when its client has gone (nginx gives up with a
504, the generator's timeout fires, the node still computes every queued
request), so the next, lower step inherits the backlog and reads high: a sweep
that halves after a collapse then places the knee too low. (The fleet benchmark
saw it: one node met the SLO at 640 req/s, collapsed at 1,280, and then missed at
960, 800, 720 and 680 with P99s up to 10 s while the queue drained.)

So before a step that follows an *overloaded* one (:func:`overloaded`), the
sweep probes the target with one request at a time (a closed loop of one user,
which adds no queue of its own) until it answers as it did at light load: the
probe's median latency within :func:`recovered_below` of the median of the
lowest-rate step that met the SLO, and no errors. A probe during which nothing
came back (every reply stuck behind the backlog) is not clean either. With no such step yet
(the first step already missed), recovered means the median stopped falling
(two probes in a row within :data:`STEADY_FRACTION`). The wait is bounded; a
target that has not recovered by then is named in the sweep's notes, and its
next step may read high.

Pure logic over a ``probe() -> Probe | None`` callback, like
:mod:`inferops.load.sweep`, so it is tested without servers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

#: a step is overloaded (leaves a backlog worth waiting for) at P99 above this many bounds
OVERLOAD_FACTOR = 2.0
#: recovered: probe median <= this many times the light-load median ...
RECOVERED_FACTOR = 2.0
#: ... or the light-load median plus this much (a fast target's jitter is absolute)
RECOVERED_SLACK_MS = 5.0
#: no reference yet: steady when two probe medians agree within this fraction (or the slack)
STEADY_FRACTION = 0.2
#: one probe's measured window
PROBE_S = 2.0
#: the longest a sweep waits for a target to recover (``--sweep-settle-max``)
DEFAULT_SETTLE_MAX_S = 60.0


@dataclass
class Probe:
    """What one probe saw."""

    p50_ms: float | None
    requests: int
    errors: int

    @property
    def clean(self) -> bool:
        return self.requests > 0 and self.errors == 0 and self.p50_ms is not None


@dataclass
class Settling:
    """How a wait for recovery ended."""

    recovered: bool
    waited_s: float
    probes: int
    last_p50_ms: float | None
    reference_p50_ms: float | None
    interrupted: bool = False

    def describe(self) -> str:
        last = "-" if self.last_p50_ms is None else f"{self.last_p50_ms:.1f} ms"
        if self.reference_p50_ms is not None:
            against = f"light-load median {self.reference_p50_ms:.1f} ms"
        else:
            against = "no light-load step yet: waited for the median to stop falling"
        verdict = "recovered" if self.recovered else "had NOT recovered"
        return (
            f"{verdict} after {self.waited_s:.1f} s ({self.probes} probe"
            f"{'s' if self.probes != 1 else ''}, median {last}; {against})"
        )


def overloaded(
    p99_ms: float | None,
    bound_ms: float | None,
    error_rate: float | None,
    max_error_rate: float,
) -> bool:
    """Did a step leave the target a backlog? P99 far over the bound, or errors.

    A step that missed the bound narrowly leaves a backlog of a fraction of a
    second, gone before the next step's warm-up ends; one with no successful
    reply at all (P99 None) is overloaded by definition.
    """
    if error_rate is not None and error_rate > max_error_rate:
        return True
    if bound_ms is None or not math.isfinite(bound_ms):
        return False
    return p99_ms is None or p99_ms > OVERLOAD_FACTOR * bound_ms


def recovered_below(reference_p50_ms: float) -> float:
    """The probe median under which a target counts as back to light load."""
    return max(RECOVERED_FACTOR * reference_p50_ms, reference_p50_ms + RECOVERED_SLACK_MS)


def _steady(previous: float, now: float) -> bool:
    return abs(now - previous) <= max(STEADY_FRACTION * previous, RECOVERED_SLACK_MS)


def settle(
    probe: Callable[[], Probe | None],
    *,
    reference_p50_ms: float | None,
    max_s: float,
    clock: Callable[[], float] | None = None,
) -> Settling:
    """Probe until the target is back to light-load latency, or ``max_s`` has passed.

    ``probe()`` returns None when interrupted (the sweep then stops). The first
    probe always runs: a target that recovered at once costs one probe.
    """
    clock = clock or time.monotonic
    start = clock()
    previous: float | None = None
    probes = 0
    last: float | None = None
    while True:
        seen = probe()
        if seen is None:
            return Settling(False, clock() - start, probes, last, reference_p50_ms, True)
        probes += 1
        last = seen.p50_ms
        if seen.clean:
            if reference_p50_ms is not None:
                done = seen.p50_ms <= recovered_below(reference_p50_ms)
            else:
                done = previous is not None and _steady(previous, seen.p50_ms)
            if done:
                return Settling(True, clock() - start, probes, last, reference_p50_ms)
            previous = seen.p50_ms
        else:
            previous = None  # errors: the target is still shedding or failing
        if clock() - start >= max_s:
            return Settling(False, clock() - start, probes, last, reference_p50_ms)
