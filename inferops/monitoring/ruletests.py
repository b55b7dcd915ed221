"""``promtool test rules`` files for the rendered rules: each alert fires on its breaching
series (with the exact labels and annotations), is not yet firing before its ``for`` has
passed, and stays quiet on its healthy series.

The test clock follows the rate window: samples every ``window / 5`` (at most 1m), evaluated
once the window has filled and the alert's ``for`` has passed.
"""

from __future__ import annotations

import math

from inferops.monitoring.promfmt import prom_duration, seconds
from inferops.monitoring.rules import Alert, RuleFile, Series, num


def test_interval(rate_window: str) -> float:
    return min(60.0, seconds(rate_window) / 5)


def _values(series: Series, interval: float, samples: int) -> str:
    if series.counter:
        return f"0+{num(series.value * interval)}x{samples}"
    return f"{num(series.value)}+0x{samples}"


def _case(alert: Alert, kind: str, rate_window: str, runbook_base: str) -> dict:
    interval = test_interval(rate_window)
    eval_at = seconds(rate_window) + seconds(alert.for_) + 2 * interval
    samples = math.ceil(eval_at / interval) + 2
    fixture = alert.fixture
    inputs = fixture.breach if kind == "breach" else fixture.healthy
    expected = []
    if kind == "breach":
        expected.append(
            {
                "exp_labels": {
                    **fixture.labels,
                    "severity": alert.severity,
                    **alert.labels,
                },
                "exp_annotations": alert.expected_annotations(runbook_base),
            }
        )
    checks = [
        {"eval_time": prom_duration(eval_at), "alertname": alert.name, "exp_alerts": expected}
    ]
    hold = seconds(alert.for_)
    if kind == "breach" and hold >= 2 * interval:
        # Still pending one step before `for` has passed since the first possible breach
        # (a gauge breaches at 0, a rate once it has two samples): proves `for` is honoured.
        first = interval if any(s.counter for s in inputs) else 0.0
        checks.insert(
            0,
            {
                "eval_time": prom_duration(first + hold - interval),
                "alertname": alert.name,
                "exp_alerts": [],
            },
        )
    what = "fires on a breaching series" if kind == "breach" else "stays quiet when healthy"
    return {
        "name": f"{alert.name} {what}",
        "interval": prom_duration(interval),
        "input_series": [
            {"series": s.selector, "values": _values(s, interval, samples)} for s in inputs
        ],
        "alert_rule_test": checks,
    }


def rule_test(rule_file: RuleFile, rate_window: str, runbook_base: str) -> dict:
    """The ``<name>_test.yml`` document for ``<name>.yml``."""
    tests = []
    for alert in rule_file.alerts:
        tests.append(_case(alert, "breach", rate_window, runbook_base))
        tests.append(_case(alert, "healthy", rate_window, runbook_base))
    return {
        "rule_files": [f"{rule_file.name}.yml"],
        "evaluation_interval": prom_duration(test_interval(rate_window)),
        "tests": tests,
    }
