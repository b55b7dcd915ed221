"""Open-loop arrival schedules and the load scenarios (steady, step, ramp, spike, soak).

A scenario is a *level* in [0, 1] as a function of time: the fraction of the
peak arrival rate (open loop) or of the peak user count (closed loop).

* ``steady``: 1 for the whole run.
* ``step``: ``steps`` equal plateaus, 1/steps, 2/steps, … 1.
* ``ramp``: linear from 10 % to 100 %.
* ``spike``: ``1/spike_factor`` of the peak, except the middle 20 % of the run at the peak.
* ``soak``: ``steady`` meant for long runs (hours); the same level, its own name in the results.

Arrivals are Poisson (exponential gaps, the default, like real independent
clients) or constant (evenly spaced); either way they are computed from the
clock, never from responses: a slow reply does not delay the next send.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from inferops.exitcodes import UsageError

SCENARIOS = ("steady", "step", "ramp", "spike", "soak")
ARRIVALS = ("poisson", "constant")


@dataclass(frozen=True)
class Scenario:
    name: str = "steady"
    duration_s: float = math.inf
    steps: int = 4
    spike_factor: float = 5.0

    def __post_init__(self):
        if self.name not in SCENARIOS:
            raise UsageError(
                f"--scenario: expected one of {', '.join(SCENARIOS)}, got {self.name!r}"
            )
        if self.steps < 1:
            raise UsageError(f"--steps must be >= 1, got {self.steps}")
        if self.spike_factor < 1:
            raise UsageError(f"--spike-factor must be >= 1, got {self.spike_factor}")

    def level(self, t: float) -> float:
        """Fraction of the peak at ``t`` seconds into the run."""
        d = self.duration_s
        if self.name in ("steady", "soak") or not math.isfinite(d) or d <= 0:
            return 1.0
        x = min(max(t / d, 0.0), 1.0)
        if self.name == "step":
            return min(self.steps, math.floor(x * self.steps) + 1) / self.steps
        if self.name == "ramp":
            return 0.1 + 0.9 * x
        # spike
        return 1.0 if 0.4 <= x < 0.6 else 1.0 / self.spike_factor


def gaps(
    rate_at: Callable[[float], float], *, kind: str = "poisson", seed: int | None = None
) -> Iterator[float]:
    """Offsets (seconds from the start) of successive arrivals.

    ``rate_at(t)`` is the arrival rate in req/s at offset ``t``; a rate of 0
    pauses arrivals (re-checked every 10 ms).
    """
    if kind not in ARRIVALS:
        raise UsageError(f"--arrivals: expected poisson or constant, got {kind!r}")
    rng = random.Random(seed)
    t = 0.0
    while True:
        rate = rate_at(t)
        if rate <= 0:
            t += 0.01
            continue
        t += rng.expovariate(rate) if kind == "poisson" else 1.0 / rate
        yield t
