"""How far a candidate model's outputs are from the reference's, and the rule that refuses a profile.

Per output: max and mean absolute error and the per-sample cosine similarity;
for classifier outputs also top-1 agreement (the fraction of samples where both
models pick the same class).

One number, the *agreement*, decides whether a profile may be recommended:
top-1 agreement for a classifier, else the mean cosine similarity. Top-1
agreement means nothing when the reference gives (almost) every sample the same
class, as random inputs do to the embedded ``cnn``: then the record says so and
the agreement falls back to cosine similarity. ``max_accuracy_drop`` (a
fraction, 0..1) bounds ``1 - agreement``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from inferops.exitcodes import UsageError

#: Output names that mark a classifier's scores.
_CLASSIFIER_NAME = re.compile(r"logit|prob|softmax|score|class", re.IGNORECASE)
#: Above this share of samples in one reference class, top-1 agreement says nothing.
UNINFORMATIVE_MAJORITY = 0.9


def is_classifier(name: str, shape: tuple[int, ...]) -> bool:
    """A ``[batch, classes]`` output named like scores (logits, probs, ...)."""
    return len(shape) == 2 and shape[1] >= 2 and bool(_CLASSIFIER_NAME.search(name))


def cosine_per_sample(ref: np.ndarray, cand: np.ndarray) -> np.ndarray:
    a = ref.reshape(len(ref), -1).astype(np.float64)
    b = cand.reshape(len(cand), -1).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = (a * b).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / (na * nb)
    # Two all-zero outputs agree; one all-zero output shares no direction with the other.
    cos = np.where((na == 0) & (nb == 0), 1.0, np.where((na == 0) | (nb == 0), 0.0, cos))
    return np.clip(cos, -1.0, 1.0)


def output_metrics(ref: np.ndarray, cand: np.ndarray, classifier: bool) -> dict:
    """Error metrics of one output over all samples (first axis)."""
    if ref.shape != cand.shape:
        raise UsageError(f"outputs differ in shape: reference {ref.shape}, candidate {cand.shape}")
    diff = np.abs(ref.astype(np.float64) - cand.astype(np.float64))
    cos = cosine_per_sample(ref, cand)
    metrics = {
        "max_abs_error": float(diff.max()),
        "mean_abs_error": float(diff.mean()),
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
    }
    if classifier:
        ref_top = ref.argmax(axis=1)
        counts = np.bincount(ref_top, minlength=ref.shape[1])
        metrics["top1_agreement"] = float((ref_top == cand.argmax(axis=1)).mean())
        metrics["reference_majority_share"] = float(counts.max() / len(ref_top))
    return metrics


def summarise(
    ref_outputs: dict[str, np.ndarray], cand_outputs: dict[str, np.ndarray], task: str = "auto"
) -> dict:
    """Per-output metrics plus the one ``agreement`` figure the accuracy rule reads.

    ``task`` is ``auto`` (classifier when an output looks like scores, see
    :func:`is_classifier`), ``classifier`` or ``regression``.
    """
    if task not in ("auto", "classifier", "regression"):
        raise UsageError(f"unknown task {task!r}; choose auto, classifier or regression")
    missing = sorted(set(ref_outputs) - set(cand_outputs))
    if missing:
        raise UsageError(f"candidate has no output {missing[0]!r}")
    outputs = {}
    for name, ref in ref_outputs.items():
        classifier = (task == "classifier" and ref.ndim == 2 and ref.shape[1] >= 2) or (
            task == "auto" and is_classifier(name, ref.shape)
        )
        outputs[name] = output_metrics(ref, cand_outputs[name], classifier)
    return {"outputs": outputs, "agreement": _agreement(outputs)}


def _agreement(outputs: dict[str, dict]) -> dict:
    first = next(iter(outputs))
    for name, m in outputs.items():
        if "top1_agreement" not in m:
            continue
        if m["reference_majority_share"] <= UNINFORMATIVE_MAJORITY:
            return {"metric": "top1", "output": name, "value": m["top1_agreement"]}
        note = (
            f"the reference puts {m['reference_majority_share']:.0%} of samples in one class, "
            "so top-1 agreement is uninformative; using cosine similarity"
        )
        return {"metric": "cosine", "output": name, "value": m["cosine_mean"], "note": note}
    return {"metric": "cosine", "output": first, "value": outputs[first]["cosine_mean"]}


@dataclass(frozen=True)
class AccuracyVerdict:
    """Whether a profile may be recommended, and why (one line for the report)."""

    accepted: bool
    drop: float | None
    reason: str


def check_accuracy(record: dict, max_accuracy_drop: float) -> AccuracyVerdict:
    """Refuse a profile whose accuracy drop exceeds ``max_accuracy_drop`` (fraction, 0..1).

    Also refused: a record without an agreement figure, and a top-1 comparison
    over too few samples to resolve the threshold (fewer than 1/threshold, so a
    single disagreeing sample would already exceed it). A refused profile is
    treated like an invalid run: the report must not recommend it.
    """
    if not isinstance(max_accuracy_drop, (int, float)) or not 0 <= max_accuracy_drop <= 1:
        raise UsageError(f"max_accuracy_drop must be a fraction in 0..1, got {max_accuracy_drop!r}")
    agreement = record.get("agreement") or {}
    value = agreement.get("value")
    metric = agreement.get("metric", "?")
    if not isinstance(value, (int, float)) or math.isnan(value):
        return AccuracyVerdict(False, None, "no accuracy measured: run `inferops model compare`")
    count = int((record.get("samples") or {}).get("count") or 0)
    drop = max(0.0, 1.0 - float(value))
    # cosine drifts are thousandths of a percent: show them, not "0.00%"
    digits = 2 if drop == 0 or drop >= 1e-3 else 4
    over = f"{metric} agreement {value:.{digits}%} over {count} samples"
    if metric == "top1" and max_accuracy_drop > 0:
        needed = math.ceil(1 / max_accuracy_drop)
        if count < needed:
            return AccuracyVerdict(
                False,
                drop,
                f"{count} samples cannot resolve a {max_accuracy_drop:.2%} drop; compare on at "
                f"least {needed}",
            )
    # 1 - 0.99 is 0.01000000000000001 in floating point: not over a bound of 0.01
    if drop > max_accuracy_drop + 1e-12:
        return AccuracyVerdict(
            False,
            drop,
            f"accuracy drop {drop:.{digits}%} ({over}) exceeds max_accuracy_drop "
            f"{max_accuracy_drop:.2%}",
        )
    return AccuracyVerdict(
        True, drop, f"accuracy drop {drop:.{digits}%} ({over}) within {max_accuracy_drop:.2%}"
    )
