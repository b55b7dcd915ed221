"""Scheduling files: the systemd service and timer templates render and pass
``systemd-analyze verify``; the CI example is valid YAML that keeps the report."""

from __future__ import annotations

import shutil
import subprocess
import sys

import jinja2
import pytest

from .conftest import ROOT

TEMPLATES = ROOT / "templates" / "nightly"


def render(name: str, **values) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined
    )
    return env.get_template(name).render(**values)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_service_and_timer_render_and_verify(tmp_path):
    service = render(
        "inferops-nightly.service.j2",
        user_name="root",
        work_dir=str(tmp_path),
        store=str(tmp_path / "history.sqlite"),
        env_path=str(tmp_path / "nightly.env"),
        inferops_bin=sys.executable,  # any existing absolute executable
        config_path=str(tmp_path / "nightly.toml"),
        timeout="4h",
        on_failure="",
    )
    timer = render(
        "inferops-nightly.timer.j2", on_calendar="*-*-* 02:30:00", randomized_delay="15min"
    )
    (tmp_path / "inferops-nightly.service").write_text(service)
    (tmp_path / "inferops-nightly.timer").write_text(timer)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no",
         str(tmp_path / "inferops-nightly.service"), str(tmp_path / "inferops-nightly.timer")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    problems = [
        line for line in done.stderr.splitlines()
        if "inferops-nightly" in line  # ignore complaints about the host's own units
    ]  # fmt: skip
    assert done.returncode == 0 and problems == [], done.stderr
    assert "ExecStart=" + sys.executable + " nightly --config" in service
    assert "OnCalendar=*-*-* 02:30:00" in timer and "Persistent=true" in timer
    calendar = subprocess.run(
        ["systemd-analyze", "calendar", "*-*-* 02:30:00"], capture_output=True, text=True
    )
    assert calendar.returncode == 0


def test_ci_example_runs_nightly_and_keeps_the_report():
    import yaml

    doc = yaml.safe_load((ROOT / "docs/examples/nightly-ci.yml").read_text())
    assert doc[True]["schedule"][0]["cron"] == "30 2 * * *"  # YAML 1.1 reads `on` as True
    steps = doc["jobs"]["nightly"]["steps"]
    commands = " ".join(s.get("run", "") for s in steps)
    assert "inferops nightly --config nightly.toml" in commands
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and "nightly-runs/trend.html" in upload["with"]["path"]


def test_cron_example_locks_and_logs():
    line = next(
        x for x in (TEMPLATES / "crontab.example").read_text().splitlines()
        if x and not x.startswith("#") and "inferops nightly" in x
    )  # fmt: skip
    minute, hour, dom, month, dow, command = line.split(None, 5)
    assert (minute, hour, dom, month, dow) == ("30", "2", "*", "*", "*")
    assert (
        "flock -n" in command and "--config nightly.toml" in command and ">> nightly.log" in command
    )
