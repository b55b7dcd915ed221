"""nightly: ``inferops nightly`` on a schedule - a hardened oneshot unit and its timer.

For a ``loadgen`` or controller host that already has the environment
(``python_env``); it installs the suite the way the server does (``suite``):

- the load-test stack the CLI imports beyond the server's lock (``nightly_packages``);
- ``nightly.toml``: a file on the control machine (``nightly_config``), validated
  with the very loader ``inferops nightly`` uses before anything is uploaded, then
  put at ``/etc/inferops/nightly.toml``; relative paths in it resolve in the work
  directory (``nightly_work_dir``), which holds the store, run folders and report;
- secrets (``INFEROPS_TOKEN``, ``PGPASSWORD``): a local env file
  (``nightly_env_file``) uploaded 0600 root:root with ``ops.put_secret`` (never
  shown, not even with ``--diff``) and read by systemd through ``EnvironmentFile=``;
- ``inferops-nightly.service`` (``Type=oneshot``, the service user, the server
  unit's hardening) and ``inferops-nightly.timer`` (``OnCalendar`` checked here).

The deploy never starts a night itself: it enables and starts the timer, and
after a change checks that systemd lists it with a next elapse.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from pyinfra.api import deploy
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from inferops.deploy import ops
from inferops.deploy.common import REPO_ROOT, keep_running, require
from inferops.deploy.knobs import (
    PIP_PIN,
    Check,
    Knob,
    absolute_path,
    declare,
    knob,
    local_file,
    str_list,
    string,
)
from inferops.deploy.layout import CONFIG_DIR, env_pip, env_prefix
from inferops.deploy.suite import install_suite
from inferops.exitcodes import UsageError
from inferops.history import config as nightly_config

SERVICE = "inferops-nightly.service"
TIMER = "inferops-nightly.timer"
UNIT_PATH = f"/etc/systemd/system/{SERVICE}"
TIMER_PATH = f"/etc/systemd/system/{TIMER}"
CONFIG_PATH = f"{CONFIG_DIR}/nightly.toml"
ENV_PATH = f"{CONFIG_DIR}/nightly.env"
TEMPLATES = REPO_ROOT / "templates" / "nightly"

# systemd.time(7): the shorthands, or "[weekdays] [date] time" built from digits, '*',
# ranges, lists, repetitions and '~' (last days of a month), with an optional time zone.
_SHORTHANDS = (
    "minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually",
    "quarterly", "semiannually",
)  # fmt: skip
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"
_CALENDAR = re.compile(
    rf"^(?:{_DAY}(?:[.,]{{1,2}}{_DAY})*\s+)?"  # weekdays: Mon, Mon..Fri, Sat,Sun
    r"(?:[0-9*,./~-]+\s+)?"  # date: *-*-*, 2026-*-01, *-*~1
    r"[0-9*,./]+:[0-9*,./]+(?::[0-9*,./]+)?"  # time: 02:30, *:0/15, 02:30:00
    r"(?:\s+[A-Za-z_]+(?:/[A-Za-z_+-]+)*)?"  # time zone: UTC, Europe/Berlin
)
# systemd.time(7) time spans: "15min", "1h 30min", "90" (seconds), "infinity".
_TIMESPAN = r"^(?:infinity|\d+|\d+ ?(?:us|ms|s|sec|m|min|h|hr|d|w|M|y)(?: ?\d+ ?(?:us|ms|s|sec|m|min|h|hr|d|w|M|y))*)\Z"
# What `inferops nightly` / `bench` / the trend report import beyond the server's lock.
LOADGEN_PACKAGES = ["locust", "hdrhistogram", "scipy", "jinja2", "rich", "pyyaml"]


def on_calendar() -> Check:
    """A systemd ``OnCalendar=`` expression: a strict shape check, then (where the control
    machine has it) ``systemd-analyze calendar``, the parser the timer itself uses."""
    shape = string(what="an OnCalendar expression")

    def check(value):
        problem = shape(value)
        if problem:
            return problem
        if value != value.strip() or "\n" in value or "\r" in value:
            # a line break would add lines to the timer file (unit injection)
            return f"must be one line without surrounding blanks: {value!r}"
        if value.lower() not in _SHORTHANDS and not _CALENDAR.fullmatch(value):
            return (
                f"not an OnCalendar expression (systemd.time(7)): {value!r}; "
                "e.g. 'daily', '*-*-* 02:30:00', 'Mon..Fri 03:00'"
            )
        analyze = shutil.which("systemd-analyze")
        if analyze:
            done = subprocess.run(
                [analyze, "calendar", value], capture_output=True, text=True, timeout=10
            )
            if done.returncode != 0:
                lines = (done.stderr or done.stdout).strip().splitlines() or ["rejected"]
                return f"systemd-analyze calendar: {lines[-1]}"
        return None

    return Check(check)


def timespan(what: str) -> Check:
    return string(pattern=_TIMESPAN, what=f"a systemd time span like {what}")


KNOBS = (
    Knob(
        "nightly_config",
        None,
        local_file(),
        "nightly.toml on the control machine (required); validated like `inferops nightly "
        "--check` before anything is uploaded",
    ),
    Knob(
        "nightly_on_calendar",
        "*-*-* 02:30:00",
        on_calendar(),
        "when the night runs: a systemd OnCalendar expression (host time zone unless one is "
        "given), checked with systemd-analyze calendar where the control machine has it",
    ),
    Knob(
        "nightly_randomized_delay",
        "15min",
        timespan("15min"),
        "RandomizedDelaySec: spreads several controllers loading shared targets",
    ),
    Knob(
        "nightly_timeout",
        "6h",
        timespan("6h"),
        "TimeoutStartSec: the longest one night may take before systemd stops it",
    ),
    Knob(
        "nightly_work_dir",
        "/var/lib/inferops-nightly",
        absolute_path(),
        "working directory (owned by service_user): relative paths in nightly.toml, the "
        "default store history.sqlite, run folders and the trend report",
    ),
    Knob(
        "nightly_env_file",
        None,
        local_file(),
        "local KEY=value file (INFEROPS_TOKEN, PGPASSWORD) uploaded 0600 root:root to "
        "/etc/inferops/nightly.env and read by systemd; its content is never shown",
    ),
    Knob(
        "nightly_on_failure",
        None,
        string(none=True, pattern=r"^[A-Za-z0-9@%:_.-]+\.(service|target)$", what="a unit"),
        "OnFailure= unit started when a night fails (confirmed regression, invalid run)",
    ),
    Knob(
        "nightly_packages",
        LOADGEN_PACKAGES,
        str_list(PIP_PIN, "requirement"),
        "pip packages the load generator needs beyond the server lock (installed when "
        "missing, not hash-checked: pin versions, or put them in python_requirements_lock)",
    ),
)
DEFAULTS = declare(__name__, KNOBS)


def config_source() -> tuple[Path, nightly_config.NightlyConfig]:
    """The local nightly.toml and what it says, validated by ``inferops nightly``'s loader."""
    given = knob("nightly_config")
    require(bool(given), "nightly_config", "required: the nightly.toml to schedule")
    path = Path(given).expanduser()
    require(path.is_file(), "nightly_config", f"no such local file: {given}")
    try:
        loaded = nightly_config.load(path)
    except UsageError as exc:
        require(False, "nightly_config", str(exc))
    return path, loaded


def packages(config: nightly_config.NightlyConfig) -> list[str]:
    """``nightly_packages``, plus pyinfra when the night provisions first (``[provision]``
    runs ``python -m pyinfra`` from the same environment)."""
    wanted = list(knob("nightly_packages"))
    names = {re.split(r"[\[=]", spec, maxsplit=1)[0].lower() for spec in wanted}
    if config.provision.enabled and "pyinfra" not in names:
        wanted.append("pyinfra")
    return wanted


@deploy("inferops nightly schedule", data_defaults=DEFAULTS)
def nightly():
    """Install the config, the unit and the timer; keep the timer enabled and running."""
    user = knob("service_user")
    work_dir = knob("nightly_work_dir")
    config, loaded = config_source()

    packages_op = ops.pip_install(
        name="Install the load-generation stack",
        pip=env_pip(),
        packages=packages(loaded),
    )
    suite_op = install_suite()
    files.directory(name=f"Create {work_dir}", path=work_dir, user=user, group=user, mode="750")
    config_op = files.put(
        name=f"Upload {CONFIG_PATH}",
        src=str(config),
        dest=CONFIG_PATH,
        user="root",
        group=user,
        mode="640",
    )
    env_op = _env_file()
    unit_op = files.template(
        name=f"Write {UNIT_PATH}",
        src=str(TEMPLATES / "inferops-nightly.service.j2"),
        dest=UNIT_PATH,
        mode="644",
        user_name=user,
        work_dir=work_dir,
        store=f"{work_dir}/history.sqlite",
        env_path=ENV_PATH,
        inferops_bin=f"{env_prefix()}/bin/inferops",
        config_path=CONFIG_PATH,
        timeout=knob("nightly_timeout"),
        on_failure=knob("nightly_on_failure"),
    )
    timer_op = files.template(
        name=f"Write {TIMER_PATH}",
        src=str(TEMPLATES / "inferops-nightly.timer.j2"),
        dest=TIMER_PATH,
        mode="644",
        on_calendar=knob("nightly_on_calendar"),
        randomized_delay=knob("nightly_randomized_delay"),
    )
    units_changed = any_changed(unit_op, timer_op)
    systemd.daemon_reload(name="Reload systemd (nightly units changed)", _if=units_changed)
    # Restarting the timer recomputes its next elapse; the service itself is never started.
    keep_running(TIMER, changed=timer_op.did_change, reason="schedule changed")
    changed = any_changed(packages_op, suite_op, config_op, env_op, unit_op, timer_op)
    server.shell(
        name="Check the nightly timer is scheduled and the config loads on the host",
        commands=[check_command(user)],
        _if=changed,
    )


def _env_file():
    given = knob("nightly_env_file")
    if not given:
        return files.file(name=f"No {ENV_PATH} (no secrets given)", path=ENV_PATH, present=False)
    path = Path(given).expanduser()
    require(path.is_file(), "nightly_env_file", f"no such local file: {given}")
    return ops.put_secret(
        name=f"Upload {ENV_PATH} (secrets)",
        src=str(path),
        dest=ENV_PATH,
        user="root",
        group="root",
        mode="600",
    )


def check_command(user: str) -> str:
    """Fails loudly unless the timer is active with a next elapse and the installed
    ``inferops`` (as the service user) accepts the uploaded config."""
    inferops = f"{env_prefix()}/bin/inferops"
    return (
        f"systemctl is-active --quiet {TIMER} && "
        f"systemctl list-timers --all --no-pager {TIMER} | grep -q {TIMER} && "
        f"runuser -u {user} -- {inferops} nightly --config {CONFIG_PATH} --check >/dev/null || "
        f"{{ systemctl status --no-pager {TIMER}; "
        f"runuser -u {user} -- {inferops} nightly --config {CONFIG_PATH} --check; exit 1; }}"
    )
