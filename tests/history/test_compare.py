"""``inferops compare``: verdicts, exit codes, machine output, attribution."""

from __future__ import annotations

import json

from inferops.history.compare import Knobs, compare
from inferops.history.runsource import decode_hdr, load_run, write_run
from inferops.history.synthetic import synthetic_run, write_synthetic_run

from .conftest import inferops


def test_planted_regression_exits_1_and_names_metric_test_and_commit(folders):
    done = inferops("compare", folders[0], folders[10])
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "verdict: REGRESSION in P50 latency" in out
    assert "Mann-Whitney U on per-second P50 (30 vs 30 windows)" in out
    assert "environment: git_sha aaaaaaaaaaaa -> bbbbbbbbbbbb" in out


def test_same_distribution_exits_0(tmp_path):
    a = write_synthetic_run(tmp_path / "a", seed=101)
    b = write_synthetic_run(tmp_path / "b", seed=102)
    done = inferops("compare", a, b)
    assert done.returncode == 0, done.stdout
    assert "verdict: no regression" in done.stdout


def test_json_output_has_effects_intervals_and_tests(folders):
    done = inferops("compare", folders[0], folders[11], "--json")
    doc = json.loads(done.stdout)
    assert doc["exit_code"] == done.returncode == 1
    p50 = next(m for m in doc["metrics"] if m["metric"] == "latency_p50_ms")
    assert p50["verdict"] == "regression"
    assert 0.05 < p50["ci_low"] < p50["effect"] < p50["ci_high"] < 0.25  # planted: +12 %
    assert p50["p_value"] < 0.01 and "Mann-Whitney" in p50["test"]
    assert {m["metric"] for m in doc["metrics"]} >= {
        "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_p999_ms", "error_rate",
    }  # fmt: skip
    assert doc["environment_changes"][0]["what"] == "git_sha"


def test_min_effect_knob_silences_a_smaller_change(folders):
    done = inferops("compare", folders[0], folders[10], "--min-effect", "30%")
    assert done.returncode == 0, done.stdout


def _with(folder, tmp_path, name, edit_summary=None, edit_manifest=None):
    run = load_run(folder)
    if edit_summary:
        edit_summary(run.summary)
    if edit_manifest:
        edit_manifest(run.manifest)

    rows = [{"t_s": float(i), "p50_ms": v} for i, v in enumerate(run.windows["p50_ms"])]
    return write_run(
        tmp_path / name,
        summary=run.summary,
        manifest=run.manifest,
        histograms={k: decode_hdr(v) for k, v in run.histograms.items()},
        timeseries=rows,
    )


def test_different_slo_exits_3(folders, tmp_path):
    other = _with(
        folders[1], tmp_path, "slo",
        edit_summary=lambda s: s["early_stopping"].update(bound_ms=100.0),
        edit_manifest=lambda m: m["thresholds"].update(p99_latency_ms=100.0),
    )  # fmt: skip
    done = inferops("compare", folders[0], other)
    assert done.returncode == 3
    assert "not comparable: different SLO: P99 <= 50 ms vs P99 <= 100 ms" in done.stdout


def test_different_model_protocol_or_rate_exits_3(folders, tmp_path):
    for name, edit, words in (
        ("model", lambda s: s.update(model="cnn"), "different model"),
        ("protocol", lambda s: s.update(protocol="predict"), "different protocol"),
        ("rate", lambda s: s.update(offered_qps=400.0), "different fixed rate"),
    ):
        other = _with(folders[1], tmp_path, name, edit_summary=edit)
        done = inferops("compare", folders[0], other)
        assert done.returncode == 3 and words in done.stdout, name


def test_invalid_run_exits_3(folders, tmp_path):
    other = _with(
        folders[1], tmp_path, "invalid",
        edit_summary=lambda s: s.update(valid=False, validity=["too few samples: 12"]),
    )  # fmt: skip
    done = inferops("compare", folders[0], other, "--json")
    assert done.returncode == 3
    assert "is invalid: too few samples: 12" in json.loads(done.stdout)["problems"][0]


def test_bad_input_exits_2_with_one_line(tmp_path, folders):
    missing = inferops("compare", tmp_path / "nope", folders[0])
    assert missing.returncode == 2 and "not a run folder" in missing.stderr
    (tmp_path / "half").mkdir()
    half = inferops("compare", tmp_path / "half", folders[0])
    assert half.returncode == 2 and "not a finished run (no summary.json)" in half.stderr
    knob = inferops("compare", folders[0], folders[1], "--p-value", "2")
    assert knob.returncode == 2 and "--p-value" in knob.stderr
    for done in (missing, half, knob):
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_error_rate_regression_uses_fisher_and_an_absolute_floor():
    base, cand = synthetic_run(seed=1), synthetic_run(seed=2)
    cand.summary.update(failures=120, error_rate=120 / cand.summary["requests"])
    result = compare(base, cand)
    err = next(c for c in result.changes if c.metric == "error_rate")
    assert err.verdict == "regression" and "Fisher" in err.test and err.p_value < 1e-10
    cand.summary.update(failures=2, error_rate=2 / cand.summary["requests"])
    err = next(c for c in compare(base, cand).changes if c.metric == "error_rate")
    assert err.verdict == "unchanged"  # 2 in 6000 is below the 0.1-point floor


def test_sweeps_compare_capacity_by_their_brackets():
    def sweep(qps):
        run = synthetic_run(seed=3)
        run.summary.update(mode="sweep", slo={"p99_ms": 50.0, "max_qps": qps, "precision": 0.02,
                                               "converged": True})  # fmt: skip
        return run

    slower = compare(sweep(400.0), sweep(340.0))
    qps = next(c for c in slower.changes if c.metric == "max_qps")
    assert qps.verdict == "regression" and round(qps.effect, 3) == -0.15
    assert [c.metric for c in slower.changes] == ["max_qps", "error_rate"]  # latency: other rates
    same = next(c for c in compare(sweep(400.0), sweep(404.0)).changes if c.metric == "max_qps")
    assert same.verdict == "unchanged"  # inside the bisection brackets


def _with_a_stall(run, stalled_ms: float, requests: int):
    """``run`` with ``requests`` more answers ``stalled_ms`` late: one stall of the box."""
    hist = decode_hdr(run.histograms["latency"])
    hist.record_value(int(stalled_ms * 1000), requests)
    encoded = hist.encode()
    run.histograms["latency"] = encoded.decode("ascii") if isinstance(encoded, bytes) else encoded
    run.summary["latency_ms"]["p999"] = hist.get_value_at_percentile(99.9) / 1000.0
    return run


def test_a_quantile_is_judged_only_with_the_samples_a_claim_on_it_needs():
    # a rollout's load test: 60 req/s for 10 s, 600 answers; the candidate met one stall
    short = dict(windows=10, rate=60)
    base = synthetic_run(seed=5, **short)
    cand = _with_a_stall(synthetic_run(seed=6, **short), stalled_ms=150.0, requests=4)
    changes = {c.metric: c for c in compare(base, cand, Knobs(min_effect=3.0)).changes}
    p999 = changes["latency_p999_ms"]
    assert p999.effect > 3.0  # the stall alone moved it more than four-fold
    assert p999.verdict == "untested"
    assert p999.test == "none: 600 samples in a run; a P99.9 claim needs 4,603"
    assert changes["latency_p99_ms"].verdict == "unchanged"  # 600 >= 459: judged
    assert changes["latency_p99_ms"].p_value is not None
    # 6,000 answers a run are enough for a P99.9 claim: judged, and the stall is found
    base, cand = synthetic_run(seed=5), _with_a_stall(synthetic_run(seed=6), 150.0, 40)
    p999 = next(c for c in compare(base, cand).changes if c.metric == "latency_p999_ms")
    assert p999.verdict == "regression" and p999.p_value is not None
