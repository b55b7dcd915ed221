"""Unit tests: early stopping, stability, arrivals, scenarios, recorder merging, search."""

from __future__ import annotations

import json
import math
import random
import statistics

import numpy as np
import pytest

from inferops.exitcodes import UsageError
from inferops.load import protocols, sweep
from inferops.load.arrivals import Scenario, gaps
from inferops.measure import validity
from inferops.measure.recorder import Recorder


def test_early_stopping_reference_numbers():
    # MLPerf: 459 samples with none over the bound prove P99; 10k allow 77 over
    assert validity.max_over_allowed(459) == 0
    assert validity.max_over_allowed(458) is None
    assert validity.max_over_allowed(10_000) == 77
    assert validity.min_samples() == 459


def test_early_stopping_verdict():
    assert validity.early_stopping(10_000, 77, 50.0)["ok"] is True
    assert validity.early_stopping(10_000, 78, 50.0)["ok"] is False
    v = validity.early_stopping(100, 0, 50.0)
    assert v["ok"] is False and v["max_over_allowed"] is None


def test_stability_rule():
    assert validity.stability([50, 100, 101, 99])["stable"] is True
    assert validity.stability([100, 100, 80])["stable"] is False
    assert validity.stability([100, 100])["stable"] is False  # too few windows


def test_poisson_gaps_have_the_asked_rate():
    it = gaps(lambda t: 500.0, kind="poisson", seed=3)
    times = [next(it) for _ in range(20_000)]
    diffs = np.diff([0.0, *times])
    assert statistics.fmean(diffs) == pytest.approx(1 / 500, rel=0.03)
    # exponential gaps: standard deviation equals the mean
    assert statistics.pstdev(diffs) == pytest.approx(1 / 500, rel=0.05)
    const = gaps(lambda t: 100.0, kind="constant")
    assert [round(next(const), 9) for _ in range(3)] == [0.01, 0.02, 0.03]


def test_scenario_levels():
    assert Scenario("steady", 10).level(5) == 1.0
    step = Scenario("step", 8, steps=4)
    assert [step.level(t) for t in (0, 2.5, 4.5, 7.9)] == [0.25, 0.5, 0.75, 1.0]
    ramp = Scenario("ramp", 10)
    assert ramp.level(0) == pytest.approx(0.1) and ramp.level(10) == pytest.approx(1.0)
    spike = Scenario("spike", 10, spike_factor=4)
    assert spike.level(1) == 0.25 and spike.level(5) == 1.0 and spike.level(9) == 0.25
    with pytest.raises(UsageError, match="--scenario"):
        Scenario("wave")


def test_recorder_co_correction_and_late_sends():
    r = Recorder()
    t = 1000.0
    r.record(t, t + 0.0005, t + 0.0105, ok=True)  # on time, 10 ms service
    r.record(t, t + 0.200, t + 0.210, ok=True)  # sent 200 ms late: latency 210, service 10
    assert r.latency.get_max_value() == pytest.approx(210_000, rel=1e-3)
    assert r.service.get_max_value() == pytest.approx(10_000, rel=1e-3)
    assert r.late == 1 and r.sends == 2 and r.late_sends_pct() == 50.0


def test_recorder_merge_equals_one_recorder():
    rng = random.Random(7)
    whole, parts = Recorder(), [Recorder(), Recorder(), Recorder()]
    for i in range(3000):
        t = 2000.0 + i / 1000
        lat = rng.expovariate(1 / 0.004)
        ok = rng.random() > 0.01
        whole.record(t, t, t + lat, ok=ok)
        parts[i % 3].record(t, t, t + lat, ok=ok)
    master = Recorder()
    for p in parts:
        # a report crosses a process boundary as msgpack-able bytes/lists
        master.merge(p.take_report())
        assert p.requests == 0 and p.latency.get_total_count() == 0  # emptied
    assert master.requests == whole.requests == 3000
    assert master.failures == whole.failures
    assert master.latency.get_total_count() == 3000
    assert master.quantiles_ms() == whole.quantiles_ms()
    assert [r["achieved_qps"] for r in master.rows(2000)] == [
        r["achieved_qps"] for r in whole.rows(2000)
    ]


def test_recorder_window_excludes_warmup():
    r = Recorder()
    r.window_start = 10.0
    r.record(9.0, 9.0, 9.5, ok=True)
    r.record(10.5, 10.5, 10.6, ok=True)
    assert r.requests == 1
    assert [row["t_s"] for row in r.rows(10.0)] == [-1.0, 0.0]


def test_recorder_count_over():
    r = Recorder()
    for ms in range(1, 101):
        r.record(0.0, 0.0, ms / 1000, ok=True)
    assert r.count_over(90.5) == 10
    # a sample sharing the bound's 0.1 % bucket counts as over: never optimistic
    assert r.count_over(90.0) == 11
    assert r.quantiles_ms()["p99"] == pytest.approx(99.0, rel=2e-3)


def test_search_brackets_and_converges():
    capacity = 437.0

    def step(rate):
        return {"ok": rate <= capacity}

    result = sweep.search(step, start=10, precision=0.02)
    assert result.converged
    assert capacity * 0.98 <= result.best_rate <= capacity
    # an always-failing target finds nothing and says so
    none = sweep.search(lambda r: {"ok": False}, start=10)
    assert none.best_rate is None and none.notes


def test_search_stops_when_a_step_is_interrupted():
    calls = []

    def step(rate):
        calls.append(rate)
        return None if len(calls) == 2 else {"ok": True}

    result = sweep.search(step, start=10)
    assert calls == [10, 20] and result.best_rate == 10 and not result.converged


META = {"name": "m", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3, 2]}]}


def _protocol(name, **kw):
    from inferops.load.protocols.base import ProtocolOptions

    return protocols.create(name, ProtocolOptions(**kw))


def test_payload_from_metadata_sets_batch_to_one(monkeypatch):
    from inferops.load.protocols import predict, v2

    for module in (v2, predict):
        monkeypatch.setattr(module, "fetch_metadata", lambda *a, **k: META)
    (body,) = _protocol("v2", model="m").prepare("http://127.0.0.1:9")
    tensor = json.loads(body)["inputs"][0]
    assert tensor["shape"] == [1, 3, 2] and len(tensor["data"]) == 6
    (pred,) = _protocol("predict", model="m").prepare("http://127.0.0.1:9")
    arr = np.asarray(json.loads(pred)["inputs"])
    assert arr.shape == (1, 3, 2)


def test_payload_files(tmp_path):
    npy = tmp_path / "s.npy"
    np.save(npy, np.arange(12, dtype=np.float32).reshape(2, 3, 2))
    bodies = _protocol("v2", path="/infer", input_file=str(npy)).prepare("http://127.0.0.1:9")
    assert len(bodies) == 2
    assert json.loads(bodies[1])["inputs"][0]["data"] == [6, 7, 8, 9, 10, 11]
    assert json.loads(bodies[1])["inputs"][0]["shape"] == [1, 3, 2]
    jl = tmp_path / "s.jsonl"
    jl.write_text('{"x": [[1, 2]]}\n\n{"inputs": [[3, 4]]}\n')
    v2 = _protocol("v2", model="m", input_file=str(jl)).prepare("http://127.0.0.1:9")
    assert json.loads(v2[0])["inputs"][0] == {
        "name": "x",
        "shape": [1, 2],
        "datatype": "INT64",
        "data": [1, 2],
    }
    # predict sends every line as it is: the body is the user's, whatever its keys
    pred = _protocol("predict", input_file=str(jl)).prepare("http://127.0.0.1:9")
    assert [json.loads(b) for b in pred] == [{"x": [[1, 2]]}, {"inputs": [[3, 4]]}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{nope\n")
    with pytest.raises(UsageError, match=r"bad.jsonl:1: not JSON"):
        _protocol("v2", model="m", input_file=str(bad)).prepare("http://127.0.0.1:9")
    with pytest.raises(UsageError, match="no such file"):
        _protocol("v2", model="m", input_file=str(tmp_path / "missing.npy")).prepare("x")


def test_min_samples_matches_binomial():
    assert validity.max_over_allowed(validity.min_samples()) == 0
    assert math.isclose(0.99**459, 0.0099, rel_tol=0.01)


def test_search_does_not_halve_below_an_invalid_first_step():
    calls = []

    def step(rate):
        calls.append(rate)
        return {"ok": False, "valid": False}

    result = sweep.search(step, start=100)
    assert calls == [100] and result.best_rate is None
    assert "invalid" in result.notes[0]
    # a valid miss halves, but only down to start / 8
    calls.clear()
    result = sweep.search(lambda r: calls.append(r) or {"ok": False, "valid": True}, start=80)
    assert calls == [80, 40, 20, 10]


@pytest.mark.parametrize(
    "bound_ms,expected_s",
    [(None, 0.001), (0, 0.001), (10, 0.001), (100, 0.005), (500, 0.025)],
)
def test_default_late_tolerance_is_share_of_bound(bound_ms, expected_s):
    from inferops.measure.validity import default_late_tolerance_s

    assert default_late_tolerance_s(bound_ms) == pytest.approx(expected_s)


def test_bench_late_tolerance_default_and_override():
    # cli.late_tolerance_s, not cli._spec: _spec imports Locust, whose gevent
    # monkey-patching would leak into every later test in this process
    from inferops.cli import build_parser
    from inferops.load import cli

    base = ["bench", "--target", "http://127.0.0.1:9", "--model", "m", "--rate", "5"]
    limits = {"p99_latency_ms": 500.0}
    args = build_parser().parse_args([*base, "--slo-p99-ms", "200"])
    assert cli.late_tolerance_s(args, limits) == pytest.approx(0.010)
    args = build_parser().parse_args(base)
    assert cli.late_tolerance_s(args, limits) == pytest.approx(0.025)
    args = build_parser().parse_args([*base, "--late-tolerance-ms", "3"])
    assert cli.late_tolerance_s(args, limits) == pytest.approx(0.003)
    args = build_parser().parse_args([*base, "--late-tolerance-ms", "0"])
    with pytest.raises(UsageError, match="--late-tolerance-ms must be > 0"):
        cli.late_tolerance_s(args, limits)


def test_search_lowers_the_rate_when_the_generator_fell_behind():
    # an invalid step the load generator caused is not the target's limit: go lower
    calls = []

    def step(rate):
        calls.append(rate)
        if rate > 30:
            return {"ok": False, "valid": False, "lower_helps": True}
        return {"ok": True, "valid": True}

    result = sweep.search(step, start=100, precision=0.2)
    assert calls[:3] == [100, 50, 25] and result.best_rate is not None
    assert 25 <= result.best_rate <= 30


def test_search_stops_cleanly_on_a_spent_budget():
    calls = []

    def step(rate):
        calls.append(rate)
        if len(calls) == 3:
            return {"stop": "time budget of 10 s spent after 2 steps"}
        return {"ok": True, "valid": True}

    result = sweep.search(step, start=10)
    assert calls == [10, 20, 40] and result.best_rate == 20
    assert not result.converged and result.notes == ["time budget of 10 s spent after 2 steps"]
