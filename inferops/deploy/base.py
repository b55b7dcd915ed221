"""base: packages, time sync, kernel/ulimit settings for serving, the service user."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server, systemd

from inferops.deploy.common import install_packages, template
from inferops.deploy.facts import ContainerVirt
from inferops.deploy.knobs import DEB_NAME, Knob, choice, declare, knob, str_list, str_map
from inferops.deploy.layout import CONFIG_DIR, STATE_DIR
from inferops.deploy.platform import detect

SYSCTL_FILE = "/etc/sysctl.d/90-inferops.conf"
LIMITS_FILE = "/etc/security/limits.d/90-inferops.conf"
SYSTEMD_LIMITS_FILE = "/etc/systemd/system.conf.d/90-inferops-limits.conf"

KNOBS = (
    Knob(
        "base_packages",
        ["ca-certificates", "curl", "pciutils", "procps", "python3"],
        str_list(DEB_NAME, "package name"),
        "packages every node gets (curl: downloads and checks; pciutils: lspci; python3: venv)",
    ),
    Knob("base_extra_packages", [], str_list(DEB_NAME, "package name"), "site-specific extras"),
    Knob(
        "time_sync",
        "timesyncd",
        choice("timesyncd", "chrony", "none"),
        "time sync daemon (skipped in containers: the outer host owns the clock)",
    ),
    Knob(
        "sysctl",
        {
            "net.core.somaxconn": 4096,
            "net.ipv4.tcp_max_syn_backlog": 8192,
            "net.ipv4.ip_local_port_range": "1024 65000",
            "fs.file-max": 2097152,
        },
        str_map(values=(int, str)),
        f"kernel settings for serving, written to {SYSCTL_FILE} and applied when it changes",
    ),
)
DEFAULTS = declare(__name__, KNOBS)


@deploy("inferops base", data_defaults=DEFAULTS)
def base():
    """Packages, time sync, sysctl + nofile limits, and the ``inferops`` system user."""
    platform = detect(host)
    in_container = host.get_fact(ContainerVirt)

    install_packages(
        platform,
        list(knob("base_packages")) + list(knob("base_extra_packages")),
        name="Install base packages",
    )
    _time_sync(platform, in_container)
    _kernel_settings(in_container)
    _service_user()


def _time_sync(platform, in_container: str) -> None:
    choice = knob("time_sync")
    if choice == "none":
        host.noop("time sync: disabled by data (time_sync = none)")
        return
    if in_container:
        host.noop(f"time sync: skipped inside a {in_container} container (the host owns the clock)")
        return
    if choice == "timesyncd" and platform.family == "rhel":
        host.noop("time sync: systemd-timesyncd is not shipped on RHEL-family; using chrony")
        choice = "chrony"
    if choice == "chrony":
        install_packages(platform, ["chrony"], name="Install chrony")
        service = "chronyd" if platform.family == "rhel" else "chrony"
    else:
        install_packages(platform, ["systemd-timesyncd"], name="Install systemd-timesyncd")
        service = "systemd-timesyncd"
    systemd.service(name=f"Run {service}", service=service, running=True, enabled=True)


def _kernel_settings(in_container: str) -> None:
    sysctl_file = files.template(
        name="Write serving sysctl settings",
        src=template("sysctl.conf.j2"),
        dest=SYSCTL_FILE,
        mode="644",
        settings=knob("sysctl"),
    )
    if in_container:
        host.noop(f"sysctl: {SYSCTL_FILE} written, not applied inside a {in_container} container")
    else:
        server.shell(
            name="Apply sysctl settings (only when they changed)",
            commands=[f"sysctl -q -p {SYSCTL_FILE}"],
            _if=sysctl_file.did_change,
        )
    files.template(
        name="Raise nofile for the service user",
        src=template("limits.conf.j2"),
        dest=LIMITS_FILE,
        mode="644",
        user_name=knob("service_user"),
        nofile=knob("nofile_limit"),
    )
    systemd_limits = files.template(
        name="Raise DefaultLimitNOFILE for systemd units",
        src=template("systemd-limits.conf.j2"),
        dest=SYSTEMD_LIMITS_FILE,
        mode="644",
        nofile=knob("nofile_limit"),
    )
    server.shell(
        name="Re-exec systemd to pick up new limits (only when they changed)",
        commands=["systemctl daemon-reexec"],
        _if=systemd_limits.did_change,
    )


def _service_user() -> None:
    user = knob("service_user")
    server.group(name=f"Create group {user}", group=user, system=True)
    server.user(
        name=f"Create system user {user}",
        user=user,
        group=user,
        home=STATE_DIR,
        shell="/usr/sbin/nologin",
        system=True,
        ensure_home=False,
    )
    files.directory(name=f"Create {STATE_DIR}", path=STATE_DIR, user=user, group=user, mode="750")
    files.directory(
        name=f"Create {CONFIG_DIR}", path=CONFIG_DIR, user="root", group=user, mode="750"
    )
