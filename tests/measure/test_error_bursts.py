"""``summary.error_bursts``: when a run's errors happened and how many, from its rows."""

from __future__ import annotations

from inferops.measure.summary import error_bursts


def _rows(errors_by_second: dict[int, int], seconds: int = 20, offset: float = 0.4):
    return [{"t_s": s + offset, "errors": errors_by_second.get(s, 0)} for s in range(-2, seconds)]


def test_adjacent_seconds_make_one_burst_with_their_total():
    bursts = error_bursts(_rows({5: 3, 6: 1}), duration_s=20)
    assert bursts == [{"start_s": 5.4, "end_s": 7.4, "errors": 4}]


def test_errors_far_apart_are_separate_bursts_and_warmup_is_ignored():
    rows = _rows({-1: 9, 3: 2, 12: 1})
    assert error_bursts(rows, duration_s=20) == [
        {"start_s": 3.4, "end_s": 4.4, "errors": 2},
        {"start_s": 12.4, "end_s": 13.4, "errors": 1},
    ]


def test_a_one_second_gap_does_not_split_a_burst():
    assert error_bursts(_rows({4: 1, 6: 1}), duration_s=20) == [
        {"start_s": 4.4, "end_s": 7.4, "errors": 2}
    ]


def test_no_errors_no_bursts():
    assert error_bursts(_rows({}), duration_s=20) == []
