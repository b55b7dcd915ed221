"""Locust scenarios for inference endpoints (inferops): ``locust -f loadtests/ -H URL``.

Open loop: ``--arrival-rate 200`` (Poisson arrivals, CO-corrected latency,
HDR percentiles). Closed loop: leave it 0 and use ``-u``. See docs/load.md for
every option (``--model``, ``--protocol``, ``--scenario``, ``--thresholds``…).
The logic lives in ``inferops.load``; this file only names the classes.
"""

from locust import events

from inferops.load import locust_plugin
from inferops.load.shape import ScenarioShape
from inferops.load.users import ClosedLoopUser, OpenLoopUser

locust_plugin.install(events)


class OpenLoop(OpenLoopUser):
    """Open-loop scheduler user (active with --arrival-rate > 0)."""


class ClosedLoop(ClosedLoopUser):
    """Classic closed-loop user (active with --arrival-rate 0)."""


class Scenario(ScenarioShape):
    """steady | step | ramp | spike | soak, chosen with --scenario."""
