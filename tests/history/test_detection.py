"""Detection on synthetic histories in the recorder's own HDR format (FAKE runs, known truth).

Noise model (inferops.history.synthetic): log-normal latencies, a 1 % per-run
factor and a 3 % per-second factor. Figures are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import pytest

from inferops.history import synthetic
from inferops.history.changepoints import change_points
from inferops.history.metrics import METRICS

NIGHTS = 20  # earlier runs before tonight's


def test_planted_10_percent_regression_is_flagged_and_confirmed():
    for seed in range(10):
        verdict = synthetic.judge_night(10_000 + seed, 1.10, nights=NIGHTS)
        assert verdict["flagged"] and verdict["suspected"] and verdict["confirmed"], seed
        p50 = next(s for s in verdict["confirmed_suspects"] if s.metric == "latency_p50_ms")
        assert 0.05 <= p50.change.effect <= 0.16  # the planted +10 %, within noise
        assert p50.history.agrees and p50.history.change_point["index"] == NIGHTS


@pytest.mark.slow
def test_noise_only_false_positive_rate_is_at_most_1_percent():
    seeds = 200
    flagged = suspected = confirmed = 0
    for seed in range(seeds):
        verdict = synthetic.judge_night(seed, 1.0, nights=NIGHTS)
        flagged += verdict["flagged"]
        suspected += verdict["suspected"]
        confirmed += verdict["confirmed"]
    print(f"noise only, {seeds} seeds: flagged vs baseline {flagged}, suspected {suspected}, "
          f"confirmed {confirmed}")  # fmt: skip
    assert confirmed / seeds <= 0.01
    assert suspected / seeds <= 0.01  # even before the rerun, the history keeps it quiet


def test_one_percent_per_night_drift_over_20_nights_is_a_change_point():
    for seed in range(10):
        runs = synthetic.history(20, seed=20_000 + seed, windows=20, rate=100,
                                 scale_at=lambda n: 1.01**n)  # fmt: skip
        p50 = [METRICS["latency_p50_ms"].value(r.summary) for r in runs]
        points = change_points(p50)
        assert points, seed
        assert all(p.change > 0.02 for p in points)  # each one upward
        first_segment = p50[: points[0].index]
        last_segment = p50[points[-1].index :]
        rise = (sum(last_segment) / len(last_segment)) / (sum(first_segment) / len(first_segment))
        assert rise > 1.08  # ~20 % over 20 nights, split into segments
        assert 2 <= points[0].index <= 17


def test_noise_only_series_has_no_change_point():
    for seed in range(10):
        runs = synthetic.history(30, seed=30_000 + seed, windows=20, rate=100)
        assert change_points([METRICS["latency_p50_ms"].value(r.summary) for r in runs]) == []


def test_change_points_step_and_determinism():
    import numpy as np

    rng = np.random.default_rng(7)
    series = np.r_[rng.normal(100, 1, 30), rng.normal(110, 1, 30)].tolist()
    first = change_points(series)
    assert [p.index for p in first] == [30]
    assert abs(first[0].change - 0.10) < 0.01 and first[0].p_value < 1e-10
    assert change_points(series) == first
    assert change_points([1.0, 2.0]) == []
