"""The scenario as a Locust ``LoadTestShape`` (steady, step, ramp, spike, soak).

Open loop (``--arrival-rate``): one scheduler user per worker (one in local
mode) for the whole run; the scenario varies the *arrival rate* of the one
global schedule the workers share (:mod:`inferops.load.split`: a worker
joining or leaving re-splits it). Closed loop:
the scenario varies the user count between 1 and ``-u``. The run ends at
``--run-time`` (unset: runs until stopped; step/ramp/spike then stay at peak).
"""

from __future__ import annotations

import math
import time

from locust import LoadTestShape

from inferops.load.session import session_of
from inferops.load.users import ClosedLoopUser, OpenLoopUser


class ScenarioShape(LoadTestShape):
    abstract = True
    use_common_options = True

    def tick(self):
        env = self.runner.environment
        o = env.parsed_options
        config = session_of(env).config
        t = self.get_run_time()
        run_time = getattr(o, "run_time", None)
        if run_time and t >= run_time:
            return None
        if run_time:
            # the measured window ends on schedule, not when each worker hears "stop"
            o.inferops_window_end = time.time() - t + run_time
        classes = self.runner.user_classes
        if config.rate:
            # one scheduler per worker; they share one global schedule (inferops.load.split)
            n = max(1, getattr(self.runner, "worker_count", 1) or 1)
            users = [c for c in classes if issubclass(c, OpenLoopUser)]
            return n, n, users
        peak = max(1, int(getattr(o, "num_users", None) or 1))
        users = max(1, math.ceil(peak * config.scenario.level(t)))
        rate = getattr(o, "spawn_rate", None) or peak
        return users, rate, [c for c in classes if issubclass(c, ClosedLoopUser)]
