"""Suite-wide hooks: no test tier skips silently.

A test that cannot run because something the machine lacks (Chromium,
promtool, node_exporter, root for the test hosts) skips with a reason that
starts with :data:`MISSING_DEPENDENCY` (or says "not installed"). In CI
(``CI=true``) such a skip is turned into a failure: CI installs every
dependency, so a missing one is a broken pipeline, not a reason to pass.
Outside CI the run ends with a list of the tiers that were skipped and why.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict

import pytest

MISSING_DEPENDENCY = "missing dependency:"
_MISSING = re.compile(r"(?i)missing dependency|not installed|not found on PATH")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def marks_missing_dependency(reason: str) -> bool:
    return bool(_MISSING.search(reason))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and in_ci():
        reason = skip_reason(report)
        if marks_missing_dependency(reason):
            report.outcome = "failed"
            report.longrepr = f"{reason} (CI=true: a missing dependency fails the run)"


def _tier(nodeid: str) -> str:
    parts = nodeid.split("::")[0].split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else parts[0]


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    by_tier: dict[tuple[str, str], int] = defaultdict(int)
    for report in skipped:
        by_tier[(_tier(report.nodeid), skip_reason(report))] += 1
    terminalreporter.section("skipped tiers", sep="-")
    for (tier, reason), count in sorted(by_tier.items()):
        terminalreporter.write_line(f"SKIPPED {tier}: {count} test(s): {reason}")
    if not in_ci():
        terminalreporter.write_line(
            "(in CI, CI=true, a skip for a missing dependency fails the run instead)"
        )
