"""Sizing math: Erlang C against textbook values, M/M/c tails, node counts, cost."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferops.report import sizing


def erlang_c_textbook(c: int, a: float) -> float:
    """The closed form with factorials, as printed in queueing textbooks."""
    top = a**c / math.factorial(c) * c / (c - a)
    bottom = sum(a**k / math.factorial(k) for k in range(c)) + top
    return top / bottom


def test_erlang_c_two_servers_one_erlang_is_one_third():
    assert sizing.erlang_c(2, 1.0) == pytest.approx(1 / 3, rel=1e-12)


@pytest.mark.parametrize("rho", [0.1, 0.5, 0.7, 0.95])
def test_erlang_c_single_server_is_utilisation(rho):
    # M/M/1: an arrival waits exactly when the server is busy, probability rho
    assert sizing.erlang_c(1, rho) == pytest.approx(rho, rel=1e-12)


def test_erlang_c_four_servers_three_erlangs_by_hand():
    # B(4, 3) = (81/24) / (1 + 3 + 9/2 + 27/6 + 81/24) = 3.375 / 16.375
    b = 3.375 / 16.375
    assert sizing.erlang_c(4, 3.0) == pytest.approx(4 * b / (4 - 3 * (1 - b)), rel=1e-12)
    assert sizing.erlang_c(4, 3.0) == pytest.approx(0.5094, abs=5e-5)


@pytest.mark.parametrize("c,a", [(5, 1.36), (10, 4.46), (20, 12.03)])
def test_erlang_c_from_the_published_erlang_b_table(c, a):
    # The standard Erlang B table gives these loads for 1 % blocking; Erlang C follows
    # from B as C = cB / (c - a(1 - B)). The table rounds a to 0.01 E, hence rel=2 %.
    blocking = 0.01
    expected = c * blocking / (c - a * (1 - blocking))
    assert sizing.erlang_c(c, a) == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("c,a", [(3, 2.2), (10, 8.5), (25, 20.0), (60, 55.5)])
def test_erlang_c_recursion_matches_factorial_form(c, a):
    assert sizing.erlang_c(c, a) == pytest.approx(erlang_c_textbook(c, a), rel=1e-9)


def test_erlang_c_unstable_and_idle_edges():
    assert sizing.erlang_c(3, 3.0) == 1.0
    assert sizing.erlang_c(3, 5.0) == 1.0
    assert sizing.erlang_c(3, 0.0) == 0.0
    with pytest.raises(ValueError):
        sizing.erlang_c(0, 1.0)
    with pytest.raises(ValueError):
        sizing.erlang_c(2, -1.0)


# no deadline: a shared 2-core machine must not turn slowness into a failure
@settings(deadline=None)
@given(c=st.integers(1, 200), load=st.floats(0.01, 0.99))
def test_erlang_c_is_a_probability_monotone_in_load_and_servers(c, load):
    a = load * c
    p = sizing.erlang_c(c, a)
    assert 0.0 <= p <= 1.0
    assert sizing.erlang_c(c, a * 0.9) <= p + 1e-12  # less load, less waiting
    assert sizing.erlang_c(c + 1, a) <= p + 1e-12  # one more server, less waiting


@pytest.mark.parametrize("lam,mu", [(50.0, 100.0), (90.0, 100.0), (1.0, 4.0)])
def test_mm1_p99_response_is_exponential_quantile(lam, mu):
    # M/M/1 response time is exponential with rate mu - lambda
    expected = math.log(100) / (mu - lam)
    got = sizing.mmc_response_quantile(0.99, 1, lam, mu)
    assert got == pytest.approx(expected, rel=1e-6)


def test_mmc_quantile_is_infinite_when_unstable():
    assert sizing.mmc_response_quantile(0.99, 2, 200.0, 100.0) == math.inf


def _simulate_mmc_p99(c: int, lam: float, mu: float, n: int = 200_000, seed: int = 1) -> float:
    """FCFS M/M/c by simulation: an independent check of the closed-form tail."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / lam, n))
    services = rng.exponential(1 / mu, n)
    free = [0.0] * c
    response = np.empty(n)
    for i in range(n):
        start = max(arrivals[i], heapq.heappop(free))
        done = start + services[i]
        heapq.heappush(free, done)
        response[i] = done - arrivals[i]
    return float(np.quantile(response[n // 10 :], 0.99))


@pytest.mark.parametrize("c,lam,mu,tol", [(3, 150.0, 100.0, 0.04), (2, 150.0, 100.0, 0.08)])
def test_mmc_p99_agrees_with_simulation(c, lam, mu, tol):
    # 50 % and 75 % busy; the simulated P99 is noisier the busier the queue
    model = sizing.mmc_response_quantile(0.99, c, lam, mu)
    assert _simulate_mmc_p99(c, lam, mu) == pytest.approx(model, rel=tol)


@pytest.mark.parametrize(
    "target,max_qps,headroom,nodes",
    [
        (1000, 200, 0.15, 6),  # 1000 / 170 = 5.88
        (1000, 250, 0.20, 5),  # exactly 5: no extra node for float noise
        (10, 200, 0.15, 1),  # never zero
        (5000, 412, 0.0, 13),  # 12.14
    ],
)
def test_nodes_for_target(target, max_qps, headroom, nodes):
    assert sizing.nodes_for_target(target, max_qps, headroom) == nodes


@pytest.mark.parametrize(
    "bad", [{"headroom": 1.0}, {"headroom": -0.1}, {"max_qps": 0}, {"target": 0}]
)
def test_nodes_for_target_rejects_nonsense(bad):
    args = {"target": 100, "max_qps": 50, "headroom": 0.1} | bad
    with pytest.raises(ValueError):
        sizing.nodes_for_target(args["target"], args["max_qps"], args["headroom"])


def test_fit_node_model_uses_littles_law():
    model = sizing.fit_node_model(peak_qps=180.0, service_ms=12.0)  # 180 * 0.012 = 2.16
    assert model.servers == 3
    assert model.service_rate == pytest.approx(1000 / 12)
    assert model.capacity_qps >= 180.0
    assert sizing.fit_node_model(50.0, 4.0).servers == 1


@settings(deadline=None)
@given(
    target=st.floats(10, 50_000),
    service_ms=st.floats(1, 40),
    peak=st.floats(20, 2000),
    slack=st.floats(1.05, 20),
)
def test_nodes_by_queueing_is_the_fewest_that_meet_the_slo(target, service_ms, peak, slack):
    model = sizing.fit_node_model(peak, service_ms)
    slo = model.p99_ms(0.0) * slack  # above an idle node's P99, so some n meets it
    n = sizing.nodes_by_queueing(model, target, slo)
    assert n is not None
    assert model.p99_ms(target / n) <= slo
    if n > 1:
        assert model.p99_ms(target / (n - 1)) > slo


def test_nodes_by_queueing_none_when_service_alone_breaks_slo():
    model = sizing.NodeModel(servers=1, service_ms=20.0)  # idle P99 = 20 ms * ln 100 = 92 ms
    assert sizing.nodes_by_queueing(model, 100.0, 50.0) is None


def test_cost_formulas():
    monthly = sizing.monthly_cost_usd(4, 1.25)
    assert monthly == pytest.approx(4 * 1.25 * 730)
    # 100 req/s for 730 h = 262.8 M requests
    assert sizing.cost_per_million_usd(monthly, 100.0) == pytest.approx(monthly / 262.8)
    assert sizing.monthly_energy_kwh(4, 500) == pytest.approx(4 * 0.5 * 730)
