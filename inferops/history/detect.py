"""The nightly verdict for one scenario: baseline comparison + history + confirming rerun.

A metric becomes a **suspect** when the comparison with the baseline flags it
(:mod:`inferops.history.compare`: effect >= min effect, p < p knob, interval
clear of zero) **and**, once the scenario has at least ``min_history`` earlier
valid runs, the candidate lies outside their run-to-run spread (t prediction
interval at the p knob). That second condition is what stops a fixed "+5 %"
rule crying wolf on a machine whose run-to-run spread is itself a few percent.

A suspect is **confirmed** when the rerun, compared with the same baseline,
flags the same metric the same way, and (with enough history) E-divisive
(:mod:`changepoints`) over earlier runs + candidate + rerun finds a change
point after the baseline, same direction, at least the min effect away from
the baseline's segment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from inferops.history.changepoints import ChangePoint, change_points
from inferops.history.compare import Comparison, MetricChange
from inferops.history.metrics import METRICS
from inferops.history.stats import prediction_p_value


@dataclass
class HistoryKnobs:
    #: earlier valid runs needed before the history gets a say
    min_history: int = 8
    #: E-divisive significance (Otava's default) and window
    changepoint_pvalue: float = 0.001
    window: int = 50


@dataclass
class HistoryCheck:
    metric: str
    runs: int  # earlier runs in the series
    enough: bool
    agrees: bool | None  # None: not enough history to say
    change_point: dict | None  # the change point that carries the change, if any
    segment_change: float | None  # candidate's segment mean vs the baseline's segment mean
    prediction_p: float | None  # candidate against the spread of earlier runs
    note: str


@dataclass
class Suspect:
    metric: str
    kind: str  # regression | improvement
    change: MetricChange
    history: HistoryCheck


def history_check(
    metric: str,
    earlier: list[float | None],
    new: list[float],
    *,
    baseline_index: int | None,
    min_effect: float,
    knobs: HistoryKnobs,
) -> HistoryCheck:
    """Does the series (earlier runs + the ``new`` ones) change after the baseline?

    ``new`` is the candidate, or the candidate and its rerun. ``agrees`` is
    None without enough history, else whether E-divisive puts a change point
    after the baseline with the new runs' segment at least ``min_effect`` away
    from the baseline's segment.
    """
    values = [v for v in earlier if v is not None]
    n = len(values)
    pred = prediction_p_value(values, new[0]) if new else None
    if not new or n < knobs.min_history:
        return HistoryCheck(
            metric, n, False, None, None, None, pred,
            f"{n} earlier runs (< {knobs.min_history}): judged on the baseline comparison alone",
        )  # fmt: skip
    series = [*values, *new]
    points = change_points(series, window=knobs.window, max_pvalue=knobs.changepoint_pvalue)
    base_at = baseline_index or 0
    after = [p for p in points if p.index > base_at]
    if not after:
        return HistoryCheck(
            metric, n, True, False, None, 0.0, pred,
            "no change point since the baseline: within the run-to-run spread",
        )  # fmt: skip
    bounds = [0, *(p.index for p in points), len(series)]
    # the segment holding the baseline, and the new runs' (last) segment
    seg_start = max(b for b in bounds[:-1] if b <= base_at)
    seg_end = min(b for b in bounds[1:] if b > base_at)
    base_mean = sum(series[seg_start:seg_end]) / (seg_end - seg_start)
    last = after[-1]
    tail = series[last.index :]
    change = (sum(tail) / len(tail)) / base_mean - 1 if base_mean else 0.0
    return HistoryCheck(
        metric,
        n,
        True,
        abs(change) >= min_effect,
        _cp_json(last),
        change,
        pred,
        (
            f"change point at run {last.index + 1} of {len(series)} (p={last.p_value:.2g});"
            f" segment mean {100 * change:+.1f} % vs the baseline's segment"
        ),
    )


def _cp_json(cp: ChangePoint) -> dict:
    out = asdict(cp)
    out["change"] = cp.change
    return out


def _min_effect(comparison: Comparison, metric: str) -> float:
    # error rates: the absolute threshold was applied by the comparison already
    return 0.0 if metric == "error_rate" else comparison.knobs.min_effect


def suspects(
    comparison: Comparison,
    earlier: dict[str, list[float | None]],
    *,
    knobs: HistoryKnobs | None = None,
) -> list[Suspect]:
    """Metrics the comparison flags and the earlier runs' spread does not explain.

    With ``min_history`` earlier runs, the candidate must also lie outside
    their spread (two-sided t prediction p below the p knob), on the flagged
    side; with fewer, the baseline comparison decides alone.
    """
    knobs = knobs or HistoryKnobs()
    out = []
    for change in comparison.changes:
        if not change.flagged or change.candidate is None:
            continue
        values = [v for v in earlier.get(change.metric, []) if v is not None]
        pred = prediction_p_value(values, change.candidate)
        note = "judged on the baseline comparison alone"
        if len(values) >= knobs.min_history and pred is not None:
            mean = sum(values) / len(values)
            worse = (change.candidate > mean) == METRICS[change.metric].higher_is_worse
            if pred >= comparison.knobs.p_value or worse != (change.verdict == "regression"):
                continue  # inside the spread of earlier runs: noise
            note = f"outside the spread of {len(values)} earlier runs (p={pred:.2g})"
        check = HistoryCheck(
            change.metric, len(values), len(values) >= knobs.min_history, None, None, None,
            pred, note,
        )  # fmt: skip
        out.append(Suspect(change.metric, change.verdict, change, check))
    return out


def confirm(
    suspected: list[Suspect],
    rerun: Comparison,
    earlier: dict[str, list[float | None]],
    *,
    baseline_index: int | None,
    knobs: HistoryKnobs | None = None,
) -> list[Suspect]:
    """The suspects the rerun confirms.

    The rerun, compared with the same baseline, must flag the same metric the
    same way; with enough history, E-divisive over earlier runs + candidate +
    rerun must also place a change point after the baseline, same direction,
    at least the min effect.
    """
    knobs = knobs or HistoryKnobs()
    again = {c.metric: c for c in rerun.changes if c.flagged}
    out = []
    for s in suspected:
        second = again.get(s.metric)
        if second is None or second.verdict != s.kind or second.candidate is None:
            continue
        check = history_check(
            s.metric,
            earlier.get(s.metric, []),
            [s.change.candidate, second.candidate],
            baseline_index=baseline_index,
            min_effect=_min_effect(rerun, s.metric),
            knobs=knobs,
        )
        if check.agrees is False:
            continue
        if check.agrees:
            worse = (check.segment_change > 0) == METRICS[s.metric].higher_is_worse
            if worse != (s.kind == "regression"):
                continue
        out.append(Suspect(s.metric, s.kind, s.change, check))
    return out
