"""Fleet sizing: node counts from measured capacity, an Erlang C cross-check, cost.

Capacity rule (what the report proposes)::

    nodes     = ceil(target_qps / (max_qps_at_slo * (1 - headroom)))
    proposed  = nodes + 1                      # N+1: survive one node down

Queueing cross-check: each node is modelled as an M/M/k queue. ``k`` (the
node's effective parallelism) and the service rate ``mu = 1 / mean service
time`` are fitted from the run; a load balancer spreads ``target / n`` to each
of ``n`` nodes. Erlang C gives the chance a request waits; the response-time
tail of M/M/k then gives a predicted P99 to hold against the SLO.

Cost: ``monthly = nodes * hourly_usd * 730`` and
``per 1M requests = monthly / (target_qps * 730 * 3600 / 1e6)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: average hours in a month (8760 / 12), the convention cloud price sheets use
HOURS_PER_MONTH = 730.0


def erlang_c(servers: int, offered_erlangs: float) -> float:
    """Probability that an arriving request must wait in an M/M/c queue.

    ``offered_erlangs`` is ``a = lambda / mu``. Returns 1.0 when ``a >= c``
    (the queue is unstable: everyone waits). Uses the Erlang B recursion,
    which stays accurate for thousands of servers where factorials overflow.
    """
    if servers < 1 or int(servers) != servers:
        raise ValueError(f"servers must be a positive integer, got {servers!r}")
    if offered_erlangs < 0 or math.isnan(offered_erlangs):
        raise ValueError(f"offered load must be >= 0, got {offered_erlangs!r}")
    c, a = int(servers), float(offered_erlangs)
    if a == 0:
        return 0.0
    if a >= c:
        return 1.0
    blocking = 1.0  # Erlang B with 0 servers
    for k in range(1, c + 1):
        blocking = a * blocking / (k + a * blocking)
    return c * blocking / (c - a * (1 - blocking))


def mmc_response_tail(t: float, servers: int, arrival_rate: float, service_rate: float) -> float:
    """P(response time > t) for M/M/c: wait (Erlang C, then exponential) + service."""
    c, lam, mu = servers, arrival_rate, service_rate
    theta = c * mu - lam  # rate at which the queue drains once a request waits
    if theta <= 0:
        return 1.0
    wait_prob = erlang_c(c, lam / mu)
    service_tail = math.exp(-mu * t)
    if abs(theta - mu) < 1e-12 * mu:
        both = (1 + mu * t) * math.exp(-mu * t)  # Erlang-2 when the two rates match
    else:
        both = (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)
    return (1 - wait_prob) * service_tail + wait_prob * both


def mmc_response_quantile(
    q: float, servers: int, arrival_rate: float, service_rate: float
) -> float:
    """The ``q`` quantile of M/M/c response time (in 1/rate units); inf if unstable."""
    if not 0 < q < 1:
        raise ValueError(f"quantile must be in (0, 1), got {q!r}")
    if servers * service_rate <= arrival_rate:
        return math.inf
    target = 1 - q
    lo, hi = 0.0, 1.0 / service_rate
    while mmc_response_tail(hi, servers, arrival_rate, service_rate) > target:
        hi *= 2
    for _ in range(200):  # bisection: the tail is monotone in t
        mid = (lo + hi) / 2
        if mmc_response_tail(mid, servers, arrival_rate, service_rate) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-9 * hi:
            break
    return hi


@dataclass(frozen=True)
class NodeModel:
    """One node as an M/M/k queue, fitted from a run."""

    #: effective parallel servers per node (batch slots x workers), >= 1
    servers: int
    #: mean service time, milliseconds
    service_ms: float

    @property
    def service_rate(self) -> float:
        """Requests per second one server completes."""
        return 1000.0 / self.service_ms

    @property
    def capacity_qps(self) -> float:
        return self.servers * self.service_rate

    def p99_ms(self, qps_per_node: float) -> float:
        seconds = mmc_response_quantile(0.99, self.servers, qps_per_node, self.service_rate)
        return seconds * 1000.0


def fit_node_model(peak_qps: float, service_ms: float) -> NodeModel:
    """Fit k from Little's law at the highest measured throughput: k = ceil(X * S).

    ``peak_qps`` is the highest throughput the node sustained; ``service_ms``
    the mean service time measured at light load. Rounding up keeps the fitted
    node able to carry what it was seen to carry.
    """
    if service_ms <= 0 or not math.isfinite(service_ms):
        raise ValueError(f"service time must be positive, got {service_ms!r}")
    if peak_qps <= 0 or not math.isfinite(peak_qps):
        raise ValueError(f"peak throughput must be positive, got {peak_qps!r}")
    servers = max(1, math.ceil(peak_qps * service_ms / 1000.0 - 1e-9))
    return NodeModel(servers=servers, service_ms=service_ms)


def nodes_for_target(target_qps: float, max_qps_at_slo: float, headroom: float) -> int:
    """``ceil(target / (max_qps_at_slo * (1 - headroom)))``, at least 1; N+1 not included."""
    if not 0 <= headroom < 1:
        raise ValueError(f"headroom must be in [0, 1), got {headroom!r}")
    if max_qps_at_slo <= 0:
        raise ValueError(f"max QPS at the SLO must be positive, got {max_qps_at_slo!r}")
    if target_qps <= 0:
        raise ValueError(f"target QPS must be positive, got {target_qps!r}")
    usable = max_qps_at_slo * (1 - headroom)
    # tolerate float noise so that an exact multiple does not round up a whole node
    return max(1, math.ceil(target_qps / usable - 1e-9))


def nodes_by_queueing(
    model: NodeModel, target_qps: float, slo_p99_ms: float, *, limit: int = 100_000
) -> int | None:
    """Fewest nodes whose predicted P99 (load split evenly) meets the SLO; None if none can.

    A node whose unloaded service already breaks the SLO can never meet it,
    however many nodes are added.
    """
    if model.p99_ms(0.0) > slo_p99_ms:
        return None
    n = max(1, math.floor(target_qps / model.capacity_qps))
    # predicted P99 falls as n grows: gallop up, then bisect down
    hi = n
    while model.p99_ms(target_qps / hi) > slo_p99_ms:
        hi *= 2
        if hi > limit:
            return None
    lo = max(1, hi // 2)
    if model.p99_ms(target_qps / lo) <= slo_p99_ms:
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if model.p99_ms(target_qps / mid) <= slo_p99_ms:
            hi = mid
        else:
            lo = mid
    return hi


def monthly_cost_usd(nodes: int, hourly_usd: float) -> float:
    return nodes * hourly_usd * HOURS_PER_MONTH


def cost_per_million_usd(monthly_usd: float, target_qps: float) -> float:
    """Monthly cost spread over the requests served at ``target_qps`` all month."""
    requests_millions = target_qps * HOURS_PER_MONTH * 3600 / 1e6
    return monthly_usd / requests_millions


def monthly_energy_kwh(nodes: int, power_w: float) -> float:
    return nodes * power_w * HOURS_PER_MONTH / 1000.0


#: how far a measured fleet may be from the prediction before the report flags the model
FLEET_CHECK_TOLERANCE = 0.15


def within_fleet_tolerance(error_pct: float | None) -> bool | None:
    """Whether a measured fleet's error against the prediction is within the tolerance
    (None when there is no measurement to judge)."""
    if error_pct is None:
        return None
    return abs(error_pct) <= FLEET_CHECK_TOLERANCE * 100 + 1e-9


def fleet_capacity(nodes: int, max_qps_at_slo: float) -> float:
    """Max QPS at the SLO that ``nodes`` identical nodes behind a load balancer carry,
    by the capacity rule the report sizes with: each node carries what one node was
    measured to carry (``nodes_for_target`` is its inverse)."""
    if nodes < 1 or int(nodes) != nodes:
        raise ValueError(f"nodes must be a positive integer, got {nodes!r}")
    if max_qps_at_slo <= 0:
        raise ValueError(f"max QPS at the SLO must be positive, got {max_qps_at_slo!r}")
    return nodes * max_qps_at_slo
