"""Accuracy metrics and the rule that refuses a profile (pure numpy; the real models are in test_profiles)."""

from __future__ import annotations

import numpy as np
import pytest

from inferops.exitcodes import UsageError
from inferops.models.accuracy import check_accuracy, cosine_per_sample, is_classifier, summarise


def test_metrics_of_known_arrays():
    ref = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.5]])
    cand = ref.copy()
    cand[0] = [0.0, 1.0, 0.0]  # orthogonal: cosine 0, argmax changes
    cand[3, 2] = 0.6  # small error, same argmax
    summary = summarise({"logits": ref}, {"logits": cand})
    m = summary["outputs"]["logits"]
    assert m["max_abs_error"] == pytest.approx(1.0)
    assert m["mean_abs_error"] == pytest.approx(2.1 / 12)
    assert m["top1_agreement"] == pytest.approx(0.75)
    assert m["cosine_min"] == pytest.approx(0.0)
    assert summary["agreement"] == {"metric": "top1", "output": "logits", "value": 0.75}


def test_cosine_of_zero_outputs():
    zero, one = np.zeros((1, 3)), np.ones((1, 3))
    assert cosine_per_sample(zero, zero)[0] == 1.0
    assert cosine_per_sample(zero, one)[0] == 0.0
    assert cosine_per_sample(one, -one)[0] == pytest.approx(-1.0)


def test_classifier_detection():
    assert is_classifier("logits", (8, 10))
    assert is_classifier("probabilities", (8, 1000))
    assert not is_classifier("output", (8, 1024))
    assert not is_classifier("logits", (8, 1))
    assert not is_classifier("logits", (8, 4, 10))


def test_regression_output_uses_cosine():
    ref = np.random.RandomState(0).normal(size=(20, 16))
    summary = summarise({"output": ref}, {"output": ref * 1.01})
    assert summary["agreement"]["metric"] == "cosine"
    assert summary["agreement"]["value"] == pytest.approx(1.0)
    assert "top1_agreement" not in summary["outputs"]["output"]


def test_task_flag_overrides_the_name():
    ref = np.eye(4)
    assert "top1_agreement" in summarise({"y": ref}, {"y": ref}, "classifier")["outputs"]["y"]
    assert (
        "top1_agreement"
        not in summarise({"logits": ref}, {"logits": ref}, "regression")["outputs"]["logits"]
    )


def test_one_class_reference_falls_back_to_cosine():
    ref = np.tile([0.0, 5.0, 0.0], (50, 1)) + np.random.RandomState(1).normal(0, 0.1, (50, 3))
    summary = summarise({"logits": ref}, {"logits": ref})
    assert summary["outputs"]["logits"]["reference_majority_share"] == 1.0
    assert summary["agreement"]["metric"] == "cosine"
    assert "uninformative" in summary["agreement"]["note"]


def test_mismatched_outputs_are_usage_errors():
    with pytest.raises(UsageError, match="differ in shape"):
        summarise({"y": np.zeros((2, 3))}, {"y": np.zeros((2, 4))})
    with pytest.raises(UsageError, match="no output 'y'"):
        summarise({"y": np.zeros((2, 3))}, {"z": np.zeros((2, 3))})


def _record(metric: str, value: float, count: int) -> dict:
    return {
        "agreement": {"metric": metric, "value": value, "output": "y"},
        "samples": {"count": count},
    }


def test_rule_accepts_within_and_refuses_beyond_the_threshold():
    ok = check_accuracy(_record("top1", 0.995, 1000), 0.01)
    assert ok.accepted and ok.drop == pytest.approx(0.005)
    assert "within 1.00%" in ok.reason
    bad = check_accuracy(_record("top1", 0.98, 1000), 0.01)
    assert not bad.accepted and bad.drop == pytest.approx(0.02)
    assert "exceeds max_accuracy_drop 1.00%" in bad.reason and "1000 samples" in bad.reason


def test_rule_refuses_too_few_samples_to_resolve_the_threshold():
    verdict = check_accuracy(_record("top1", 1.0, 50), 0.01)
    assert not verdict.accepted and "at least 100" in verdict.reason
    assert check_accuracy(_record("top1", 1.0, 100), 0.01).accepted
    # cosine is continuous: no sample-count floor
    assert check_accuracy(_record("cosine", 0.9999, 20), 0.01).accepted


def test_rule_refuses_a_record_without_accuracy():
    verdict = check_accuracy({}, 0.01)
    assert (
        not verdict.accepted and verdict.drop is None and "no accuracy measured" in verdict.reason
    )
    assert not check_accuracy(_record("top1", float("nan"), 500), 0.01).accepted


def test_rule_rejects_a_bad_threshold():
    for bad in (-0.1, 1.5, "1%"):
        with pytest.raises(UsageError, match="max_accuracy_drop"):
            check_accuracy(_record("top1", 1.0, 1000), bad)
