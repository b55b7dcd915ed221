"""The sweep lets an overloaded target recover before its next step (inferops/load/settle.py).

Pure logic with scripted probes and a fake clock, then the sweep's wiring with a
scripted ``measure`` (no Locust, no server): which steps are followed by a wait,
what a step that made the target stop answering does to the search, and when the
sweep gives up on a target. The real thing, a serial server left with a backlog,
is ``tests/load/test_bench.py::test_sweep_lets_an_overloaded_target_recover``.
"""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest

from inferops.load import engine, settle
from inferops.load.options import LoadConfig, Setting
from inferops.load.settle import Probe


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def scripted(clock: Clock, probes: list, seconds: float = 2.5):
    """probe() returning the given Probes (None: interrupted), each taking ``seconds``."""
    seen = iter(probes)

    def probe():
        clock.now += seconds
        return next(seen)

    return probe


def test_overloaded_means_far_over_the_bound_or_errors():
    assert not settle.overloaded(110.0, 100.0, 0.0, 0.01)  # a narrow miss leaves no backlog
    assert settle.overloaded(201.0, 100.0, 0.0, 0.01)
    assert settle.overloaded(50.0, 100.0, 0.02, 0.01)  # errors: timeouts, 504s, resets
    assert settle.overloaded(None, 100.0, 0.0, 0.01)  # nothing came back at all
    assert not settle.overloaded(5000.0, None, 0.0, 0.01)  # no latency bound: errors only
    assert not settle.overloaded(5000.0, math.inf, 0.0, 0.01)


def test_recovered_against_the_light_load_median():
    assert settle.recovered_below(10.0) == 20.0
    assert settle.recovered_below(1.0) == 6.0  # a fast target's jitter is absolute
    clock = Clock()
    probes = [Probe(900.0, 3, 0), Probe(40.0, 50, 0), Probe(12.0, 160, 0)]
    result = settle.settle(scripted(clock, probes), reference_p50_ms=10.0, max_s=60, clock=clock)
    assert result.recovered and result.probes == 3 and result.waited_s == 7.5
    assert result.last_p50_ms == 12.0
    assert "recovered after 7.5 s (3 probes, median 12.0 ms" in result.describe()


def test_a_probe_with_errors_or_no_reply_is_not_recovered():
    clock = Clock()
    probes = [Probe(None, 0, 0), Probe(8.0, 100, 2), Probe(8.0, 100, 0)]
    result = settle.settle(scripted(clock, probes), reference_p50_ms=10.0, max_s=60, clock=clock)
    assert result.recovered and result.probes == 3


def test_without_a_reference_the_median_must_stop_falling():
    clock = Clock()
    probes = [Probe(800.0, 4, 0), Probe(300.0, 8, 0), Probe(25.0, 80, 0), Probe(22.0, 90, 0)]
    result = settle.settle(scripted(clock, probes), reference_p50_ms=None, max_s=60, clock=clock)
    assert result.recovered and result.probes == 4 and result.last_p50_ms == 22.0
    assert "waited for the median to stop falling" in result.describe()
    # errors in between break a streak: two clean probes in a row are needed
    clock = Clock()
    probes = [Probe(25.0, 80, 0), Probe(24.0, 80, 3), Probe(23.0, 80, 0), Probe(23.5, 80, 0)]
    result = settle.settle(scripted(clock, probes), reference_p50_ms=None, max_s=60, clock=clock)
    assert result.recovered and result.probes == 4


def test_the_wait_is_bounded():
    clock = Clock()
    stuck = [Probe(900.0, 2, 0)] * 100
    result = settle.settle(scripted(clock, stuck), reference_p50_ms=10.0, max_s=10, clock=clock)
    assert not result.recovered and result.probes == 4 and result.waited_s == 10.0
    assert "had NOT recovered after 10.0 s" in result.describe()
    # the first probe always runs, even with no time left
    clock = Clock()
    result = settle.settle(scripted(clock, stuck), reference_p50_ms=10.0, max_s=0, clock=clock)
    assert not result.recovered and result.probes == 1


def test_interrupted_probe_ends_the_wait():
    clock = Clock()
    result = settle.settle(
        scripted(clock, [Probe(900.0, 2, 0), None]), reference_p50_ms=10.0, max_s=60, clock=clock
    )
    assert result.interrupted and not result.recovered and result.probes == 1


# --- the sweep's wiring, with measure() scripted ---------------------------------------


@dataclasses.dataclass
class FakeSummary:
    """The fields of a Summary the sweep reads."""

    latency_ms: dict
    valid: bool
    partial: bool
    validity: list
    error_rate: float
    early_stopping: dict
    requests: int
    failures: int
    achieved_qps: float | None = None
    llm: dict | None = None
    passed: bool = True
    mode: str = "open"
    slo: object = None


def summary(p99, *, p50=None, errors=0.0, valid=True, partial=False, validity=(), requests=600):
    return FakeSummary(
        latency_ms={"p99": p99, "p50": p50 if p50 is not None else (p99 or 0) / 3 or None},
        valid=valid,
        partial=partial,
        validity=list(validity),
        error_rate=errors,
        early_stopping={"ok": valid and p99 is not None and p99 <= 100},
        requests=requests,
        failures=round(errors * requests),
    )


class FakeFolder:
    def __init__(self):
        self.path = None

    def step(self, index):
        return ("step", index)

    def probe(self, index, attempt):
        return ("probe", index, attempt)


@pytest.fixture
def sweep_with(monkeypatch):
    """Run a sweep against a scripted target: ``law(rate, config)`` answers each step."""

    def run(law, probes, *, settle_max_s=60.0, budget_s=None):
        calls = []
        probes = list(probes)
        clock = Clock()  # the waits' time: each probe takes 2.5 s of it
        monkeypatch.setattr(settle, "time", SimpleNamespace(monotonic=clock))

        def fake_measure(config, folder, **_kw):
            calls.append(folder)
            if folder[0] == "probe":
                assert config.mode == "closed" and config.users == 1  # adds no queue
                clock.now += 2.5
                return probes.pop(0)
            return law(config.rate)

        monkeypatch.setattr(engine, "measure", fake_measure)
        monkeypatch.setattr(engine, "_write_sweep_folder", lambda *a, **k: None)
        config = LoadConfig(
            target="http://127.0.0.1:9", model="m", bound=Setting(100.0, "--slo-p99-ms")
        )
        said = []
        top = engine.sweep(
            config,
            FakeFolder(),
            start_qps=100,
            precision=0.3,
            max_steps=6,
            say=said.append,
            settle_max_s=settle_max_s,
            budget_s=budget_s,
        )
        return top, calls, said

    return run


def light(p50):
    return summary(p50 * 2, p50=p50)


def silent_from_200(rate):
    """A target that stops answering (every request times out) from 200 req/s up."""
    if rate < 200:
        return light(5)
    return summary(
        None,
        errors=1.0,
        valid=False,
        partial=True,
        validity=["partial run: target stopped answering (connection errors)"],
    )


def test_sweep_waits_only_after_an_overloaded_step(sweep_with):
    def law(rate):  # capacity ~300: 200 fine, 400 collapses, 300 a narrow miss
        return {100: light(5), 200: summary(60), 400: summary(5000, errors=0.3)}.get(
            rate, summary(110)
        )

    recovered = [summary(900, p50=900), light(6)]
    top, calls, said = sweep_with(law, recovered)
    folders = [c for c in calls]
    # 100, 200, 400 (collapse) -> two probes -> 300 (narrow miss: no probe) -> 250 ...
    assert folders[:6] == [
        ("step", 0),
        ("step", 1),
        ("step", 2),
        ("probe", 3, 0),
        ("probe", 3, 1),
        ("step", 3),
    ]
    assert ("probe", 4, 0) not in folders  # 300 missed by 10 %: no backlog worth a wait
    steps = top.slo.steps
    assert steps[3].settled_s is not None and steps[3].recovered is True
    assert steps[2].settled_s is None and steps[4].settled_s is None
    assert any("overloaded the target" in line for line in said)


def test_a_step_that_silenced_the_target_is_a_miss_when_it_recovers(sweep_with):
    top, _calls, _said = sweep_with(silent_from_200, [light(5)] * 10)
    assert not top.partial and top.slo.max_qps is not None and top.slo.max_qps >= 100
    assert top.slo.steps[1].ok is False and top.slo.steps[2].recovered is True


def test_a_target_that_never_answers_again_stops_the_sweep(sweep_with):
    silent = [summary(None, errors=1.0, requests=40)] * 200
    top, calls, said = sweep_with(silent_from_200, silent, settle_max_s=5)
    assert top.partial and "stopped answering" in top.validity[-1]
    assert top.slo.max_qps == 100  # what was proven before stands
    assert calls[-1][0] == "probe"


def test_settling_off_keeps_the_old_behaviour(sweep_with):
    top, calls, _said = sweep_with(silent_from_200, [], settle_max_s=0)
    assert top.partial and all(c[0] == "step" for c in calls) and len(calls) == 2


def test_a_target_still_slow_after_the_wait_is_named_in_the_notes(sweep_with):
    def law(rate):
        return {100: light(5), 200: summary(5000)}.get(rate, summary(60))

    top, _calls, _said = sweep_with(law, [summary(900, p50=900)] * 50, settle_max_s=5)
    assert not top.partial and top.slo.steps[2].recovered is False
    assert any("had NOT recovered" in n and "steps/02" in n for n in top.slo.notes)
