"""loadgen: Locust workers for distributed load, ``inferops bench --worker`` under systemd.

For ``loadgen`` hosts that already have the environment (``python_env``):

- the load-generation stack beyond the server's lock (``loadgen_packages``) and the
  suite itself (``suite.install_suite``, the server's wheel);
- a template unit ``inferops-loadgen-worker@.service``; instance ``@N`` runs
  ``inferops bench --worker --master-host H --master-port P`` as the service user,
  restarting after each run (a worker exits when its master quits);
- ``loadgen_workers`` instances (default: one per CPU, from the ``Cpus`` fact), each
  enabled and running; instances above that number are stopped and disabled;
- CPU pinning (``loadgen_cpu_pinning``): instance ``@N`` gets ``CPUAffinity=N-1`` in
  its own drop-in, so two workers never share a core (the generator's capacity per
  core is what ``benchmarks/loadgen_capacity.py`` measures).

The master is ``inferops bench --master --expect-workers K`` on the control machine
(or any host the workers reach): ``loadgen_master_host`` is required.
"""

from __future__ import annotations

import re

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.hardware import Cpus
from pyinfra.facts.systemd import SystemdStatus
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from inferops.deploy import ops
from inferops.deploy.common import REPO_ROOT, require
from inferops.deploy.knobs import (
    PIP_PIN,
    Check,
    Knob,
    boolean,
    declare,
    integer,
    knob,
    str_list,
    string,
)
from inferops.deploy.layout import env_pip, env_prefix
from inferops.deploy.suite import install_suite

UNIT = "inferops-loadgen-worker@.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT}"
TEMPLATES = REPO_ROOT / "templates" / "loadgen"
#: what `inferops bench` imports beyond the server's lock (as the nightly component's list)
LOADGEN_PACKAGES = ["locust", "hdrhistogram", "scipy", "jinja2", "rich", "pyyaml"]
_INSTANCE = re.compile(r"^inferops-loadgen-worker@(\d+)\.service$")
_HOST = r"^[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$"  # a DNS name, IPv4 or IPv6 address


def optional(check: Check) -> Check:
    """``check``, or unset (None)."""
    return Check(lambda value: None if value is None else check(value))


KNOBS = (
    Knob(
        "loadgen_master_host",
        None,
        string(none=True, pattern=_HOST, what="a host name or address"),
        "where the workers find the master (`inferops bench --master`): required",
    ),
    Knob(
        "loadgen_master_port",
        5557,
        integer(1, 65535),
        "the master's port (`bench --master-port`, Locust's 5557 by default)",
    ),
    Knob(
        "loadgen_workers",
        None,
        optional(integer(1, 1024)),
        "worker processes on this host (default: one per CPU)",
    ),
    Knob(
        "loadgen_cpu_pinning",
        True,
        boolean(),
        "pin worker @N to CPU N-1 (CPUAffinity=, a drop-in per instance)",
    ),
    Knob(
        "loadgen_packages",
        LOADGEN_PACKAGES,
        str_list(PIP_PIN, "requirement"),
        "pip packages the load generator needs beyond the server lock (installed when missing)",
    ),
)
DEFAULTS = declare(__name__, KNOBS)


def worker_count() -> int:
    """``loadgen_workers``, else one per CPU the host has."""
    cpus = host.get_fact(Cpus) or 1
    wanted = knob("loadgen_workers") or cpus
    if knob("loadgen_cpu_pinning"):
        require(
            wanted <= cpus,
            "loadgen_workers",
            f"{wanted} workers pinned one per CPU, but the host has {cpus} CPUs "
            "(lower it, or set loadgen_cpu_pinning = false)",
        )
    return wanted


def instance(n: int) -> str:
    return f"inferops-loadgen-worker@{n}.service"


@deploy("inferops load-generator workers", data_defaults=DEFAULTS)
def loadgen():
    """The suite, the worker unit, ``loadgen_workers`` running instances (pinned)."""
    master = knob("loadgen_master_host")
    require(bool(master), "loadgen_master_host", "required: the address of the bench master")
    count = worker_count()
    user = knob("service_user")

    packages_op = ops.pip_install(
        name="Install the load-generation stack",
        pip=env_pip(),
        packages=list(knob("loadgen_packages")),
    )
    suite_op = install_suite()
    unit_op = files.template(
        name=f"Write {UNIT_PATH}",
        src=str(TEMPLATES / f"{UNIT}.j2"),
        dest=UNIT_PATH,
        mode="644",
        user_name=user,
        inferops_bin=f"{env_prefix()}/bin/inferops",
        master_host=master,
        master_port=knob("loadgen_master_port"),
    )
    pin_ops = [_pinning(n) for n in range(1, count + 1)]
    changed = any_changed(unit_op, *pin_ops)
    systemd.daemon_reload(name="Reload systemd (worker unit changed)", _if=changed)
    restart = any_changed(packages_op, suite_op, unit_op, *pin_ops)
    for n in range(1, count + 1):
        systemd.service(
            name=f"Enable and start {instance(n)}",
            service=instance(n),
            running=True,
            enabled=True,
        )
        systemd.service(
            name=f"Restart {instance(n)} (suite, unit or pinning changed)",
            service=instance(n),
            running=True,
            restarted=True,
            _if=restart,
        )
    _retire_extra_instances(count)
    server.shell(
        name=f"Check the {count} workers are running",
        commands=[check_command(count)],
        _if=restart,
    )


def _pinning(n: int):
    """Instance ``@n``'s CPU: a drop-in with ``CPUAffinity=n-1``, or none when pinning is off."""
    dropin_dir = f"/etc/systemd/system/{instance(n)}.d"
    path = f"{dropin_dir}/cpu.conf"
    if not knob("loadgen_cpu_pinning"):
        return files.file(name=f"No CPU pinning for {instance(n)}", path=path, present=False)
    files.directory(name=f"Create {dropin_dir}", path=dropin_dir, mode="755")
    return files.put(
        name=f"Pin {instance(n)} to CPU {n - 1}",
        src=_text(
            f"# Managed by inferops (pyinfra): loadgen_cpu_pinning\n[Service]\nCPUAffinity={n - 1}\n"
        ),
        dest=path,
        mode="644",
    )


def _text(content: str):
    from io import StringIO

    return StringIO(content)


def _retire_extra_instances(count: int) -> None:
    """Stop and disable instances above ``count`` that systemd still has loaded."""
    status = host.get_fact(SystemdStatus, services="inferops-loadgen-worker@*") or {}
    extra = sorted(
        (int(m.group(1)), unit)
        for unit in status
        if (m := _INSTANCE.match(unit)) and int(m.group(1)) > count
    )
    if not extra:
        host.noop(f"no worker instances above @{count}")
    for _, unit in extra:
        systemd.service(
            name=f"Stop and disable {unit} (above loadgen_workers)",
            service=unit,
            running=False,
            enabled=False,
        )


def check_command(count: int) -> str:
    """Fails loudly unless every instance is active a moment after its (re)start."""
    units = " ".join(instance(n) for n in range(1, count + 1))
    return (
        f"sleep 2; systemctl is-active --quiet {units} || "
        f"{{ systemctl status --no-pager {units}; exit 1; }}"
    )
