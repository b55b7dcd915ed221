"""A run invalid by late sends proves no pass, but can still prove a P99 breach (summary.py).

A CI rollout met exactly this: a canary answering 1 s late at a traffic step, measured by
a generator starved enough to send 1.5 % of its arrivals over 100 ms late. The run was
invalid, so the rollout said "cannot be judged" (exit 3) about a version far over its
400 ms bound.
"""

from __future__ import annotations

from inferops.load.options import LoadConfig
from inferops.measure import summary as summary_mod
from inferops.measure.recorder import Recorder
from inferops.measure.validity import max_over_allowed, min_over_to_prove_breach
from inferops.thresholds import Setting

T0 = 1_700_000_000.0
BOUND_MS = 400.0


def _run(*, n=600, late=9, lag_s=0.3, slow=0, slow_service_s=1.0, bound_ms=BOUND_MS,
         cpu=40.0, dropped=0, workers=None):  # fmt: skip
    """``n`` answers at 60/s in 5 ms; ``late`` of them sent ``lag_s`` late (the generator's
    stall) and ``slow`` of them (others) answered in ``slow_service_s`` by the target."""
    rec = Recorder(late_tolerance_s=0.1)
    for i in range(n):
        intended = T0 + i / 60
        sent = intended + (lag_s if i < late else 0.0)
        service = slow_service_s if late <= i < late + slow else 0.005
        rec.record(intended, sent, sent + service, ok=True)
    for i in range(dropped):
        rec.record_dropped(T0 + i / 60)
    return summary_mod.build(
        recorder=rec,
        config=LoadConfig(
            target="http://x",
            rate=60.0,
            limits={"p99_latency_ms": bound_ms},
            bound=Setting(bound_ms, "thresholds"),
        ),
        started_at=T0,
        duration_s=n / 60,
        host={},
        generator_cpu_pct_max=cpu,
        rows=[],
        workers=workers,
    )


def test_the_binomial_bounds_turn_around_where_they_should():
    # 1 % of 600 is 6: up to 0 over proves P99 under the bound, 13 or more prove it over
    assert max_over_allowed(600) == 0 and min_over_to_prove_breach(600) == 13
    assert min_over_to_prove_breach(10_000) == 125 > 100 > max_over_allowed(10_000) == 77


def test_answers_slow_at_the_target_prove_a_breach_though_the_generator_lagged():
    s = _run(slow=20)
    assert not s.valid and s.validity[0].startswith("load generator limited")
    assert s.breach_proven["service_over"] == 20 and s.breach_proven["needed"] == 13
    assert s.breach_proven["worst_send_lag_ms"] >= 300
    assert summary_mod.exit_code(s) == 1  # a breach, not "cannot be judged"
    assert summary_mod.headline(s).startswith("FAIL (late sends, breach proven)")
    # the evidence travels in summary.json and reads back
    from inferops.measure.runformat import Summary

    again = Summary.from_json(s.to_json(), "summary.json")
    assert again.breach_proven == s.breach_proven


def test_slowness_the_generator_s_lag_can_explain_proves_nothing():
    # 20 answers measured late only because they were sent 900 ms late: their latency is
    # over the bound (counted from the intended send), their service time is not
    s = _run(late=20, lag_s=0.9)
    assert s.latency_ms["p99"] > BOUND_MS and s.service_time_ms["p99"] < 10
    assert s.breach_proven is None and summary_mod.exit_code(s) == 3
    # 1 s at the target, with the generator stalling 700 ms: the stall alone could have
    # read a 400 ms answer 700 ms late, so a 1 s service time proves nothing
    s = _run(lag_s=0.7, slow=20)
    assert s.breach_proven is None and summary_mod.exit_code(s) == 3


def test_too_few_slow_answers_or_a_non_generator_reason_prove_nothing():
    assert _run(slow=12).breach_proven is None  # 12 < 13 needed out of 600
    few = _run(n=300, late=9, slow=100)  # too few samples: not the generator's fault
    assert any(r.startswith("too few samples") for r in few.validity)
    assert few.breach_proven is None and summary_mod.exit_code(few) == 3


def test_a_generator_busy_on_its_own_cpu_or_refusing_arrivals_proves_nothing():
    # the CI run that showed it: 30,000 req/s at an instant server, generator CPU 97 %,
    # the in-flight cap hit; its own 10,000 requests in flight delayed every read by
    # seconds (service times 2-3.3 s) while no send was more than 316 ms late
    busy = _run(slow=200, slow_service_s=3.0, cpu=97.0)
    assert any("CPU reached 97" in r for r in busy.validity)
    assert busy.breach_proven is None and summary_mod.exit_code(busy) == 3
    capped = _run(slow=200, slow_service_s=3.0, dropped=50)
    assert any(r.startswith("in-flight cap") for r in capped.validity)
    assert capped.breach_proven is None and summary_mod.exit_code(capped) == 3

    # with workers: one busy worker is enough to prove nothing; lateness alone still proves
    def node(cpu):
        return {"worker": f"#{cpu}", "late_sends_pct": 1.5, "cpu_pct_max": cpu, "dropped": 0}

    one_busy = {"count": 2, "nodes": [node(40.0), node(95.0)]}
    assert _run(slow=20, cpu=None, workers=one_busy).breach_proven is None
    stalled = {"count": 2, "nodes": [node(40.0), node(50.0)]}
    assert summary_mod.exit_code(_run(slow=20, cpu=None, workers=stalled)) == 1
