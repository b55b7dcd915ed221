"""Shared core: durations, thresholds file, CLI exit codes."""

import subprocess
import sys

import pytest

from inferops import thresholds
from inferops.exitcodes import UsageError
from inferops.units import parse_duration


@pytest.mark.parametrize(
    "text,seconds",
    [("30", 30), ("30s", 30), ("2m", 120), ("1h30m", 5400), ("250ms", 0.25), ("1.5", 1.5), (7, 7)],
)
def test_parse_duration_accepts_locust_forms(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "abc", "5x", "1h-3m", "-2", "m5", True])
def test_parse_duration_rejects_with_name(bad):
    with pytest.raises(UsageError, match="--duration"):
        parse_duration(bad, name="--duration")


def test_default_thresholds_file_matches_seed_table():
    assert thresholds.load(thresholds.DEFAULT_PATH) == thresholds.DEFAULTS


@pytest.mark.parametrize(
    "body,message",
    [
        ("p99_latency_ms = 'fast'", "p99_latency_ms must be a number"),
        ("p99_latncy_ms = 100", "unknown key 'p99_latncy_ms'"),
        ("max_error_rate = 1.5", "max_error_rate = 1.5 is out of range"),
        ("p99_latency_ms = 0", "p99_latency_ms = 0 is out of range"),
        ("p99_latency_ms = ", "not valid TOML"),
    ],
)
def test_bad_thresholds_name_the_key(tmp_path, body, message):
    path = tmp_path / "t.toml"
    path.write_text(body)
    with pytest.raises(UsageError, match=message):
        thresholds.load(path)


def test_missing_thresholds_file(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        thresholds.load(tmp_path / "nope.toml")


def test_check_min_max_and_unobserved():
    limits = {"p99_latency_ms": 100, "min_qps": 50, "max_gpu_util_percent": 90}
    res = {r["name"]: r for r in thresholds.check(limits, {"p99_latency_ms": 120, "min_qps": 60})}
    assert res["p99_latency_ms"]["ok"] is False
    assert res["min_qps"]["ok"] is True
    assert res["max_gpu_util_percent"] == {
        "name": "max_gpu_util_percent",
        "limit": 90,
        "value": None,
        "ok": None,
    }


def test_cli_bad_flag_exits_2_with_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "inferops", "--no-such-flag"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "--no-such-flag" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2


def test_serve_builds_its_parser_without_the_load_generators_modules():
    """A server host installs the serving lock only: `inferops serve` must not need Locust."""
    import subprocess
    import sys

    code = (
        "import sys; from inferops import cli; cli.build_parser(only='serve'); "
        "bad = sorted(m for m in sys.modules if m.startswith(('locust', 'hdrh', 'inferops.load')));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_full_parser_imports_every_subcommand_module():
    import importlib

    from inferops import cli

    cli.build_parser()
    for _, module_name, _ in cli.COMMANDS:
        assert hasattr(importlib.import_module(module_name), "run")
