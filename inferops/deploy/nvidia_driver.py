"""nvidia_driver: a pinned driver branch, rebooting only when the driver actually changed.

- No NVIDIA GPU on the PCI bus (vendor 10de, class 03xx)? Skipped with a message,
  unless ``nvidia_driver_force``.
- Source: NVIDIA's CUDA repo (``cuda-drivers-<branch>`` / ``nvidia-open-<branch>``;
  dnf module ``nvidia-driver:<branch>-dkms|open`` on RHEL 9) or the distro's packages
  (Ubuntu ``nvidia-headless-<branch>-server[-open]`` + ``nvidia-utils-<branch>-server``;
  Debian 12 non-free ``nvidia-driver`` / ``nvidia-open-kernel-dkms``).
- On apt hosts the driver packages are held (``apt-mark hold``), so an unattended
  upgrade cannot swap the userspace library under a loaded kernel module.
- After a change: ``server.reboot`` (if ``nvidia_reboot``) then ``nvidia-smi -L``,
  which fails the run when the driver does not load.
- A loaded module whose version differs from the installed library (the classic
  "Failed to initialize NVML: Driver/library version mismatch") fails the host with
  both versions named, or reboots it when ``nvidia_mismatch_action = "reboot"``.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server, systemd

from inferops.deploy import ops
from inferops.deploy.common import download_args, install_packages, notice
from inferops.deploy.facts import NvidiaLibraryVersion, NvidiaLoadedModuleVersion
from inferops.deploy.gpu import gpu_or_skip
from inferops.deploy.knobs import Knob, boolean, choice, declare, integer, knob, string
from inferops.deploy.nvidia_repos import prepare_source
from inferops.deploy.platform import Platform, detect

KNOBS = (
    Knob(
        "nvidia_driver_branch",
        "570",
        string(pattern=r"^\d{3}$", what="a branch like 570"),
        "pinned driver branch",
    ),
    Knob(
        "nvidia_driver_source",
        "auto",
        choice("auto", "cuda_repo", "distro"),
        "where the driver comes from; auto: NVIDIA's CUDA repo when cuda_keyring_sha256 is set "
        "(always on RHEL), else the distro",
    ),
    Knob(
        "nvidia_driver_open",
        False,
        boolean(),
        "open GPU kernel modules (required for Blackwell, recommended from Turing on)",
    ),
    Knob("nvidia_persistenced", True, boolean(), "enable nvidia-persistenced (persistence mode)"),
    Knob(
        "nvidia_reboot",
        True,
        boolean(),
        "reboot when (and only when) the driver packages changed; false: tell the operator",
    ),
    Knob(
        "nvidia_mismatch_action",
        "fail",
        choice("fail", "reboot"),
        "loaded kernel module != installed library: fail (naming both versions) or reboot",
    ),
    Knob(
        "reboot_timeout",
        600,
        integer(30),
        "seconds to wait for a host to come back after a driver reboot",
    ),
)
DEFAULTS = declare(__name__, KNOBS)

DEBIAN_DISTRO_BRANCH = "535"  # what bookworm's non-free ships


def driver_packages(platform: Platform, source: str) -> list[str]:
    branch = knob("nvidia_driver_branch")
    is_open = knob("nvidia_driver_open")
    if source == "cuda_repo":
        return [f"nvidia-open-{branch}" if is_open else f"cuda-drivers-{branch}"]
    if platform.distro == "ubuntu":
        flavour = "-open" if is_open else ""
        packages = [
            f"nvidia-headless-{branch}-server{flavour}",
            f"nvidia-utils-{branch}-server",
        ]
        if knob("nvidia_persistenced"):
            packages.append(f"nvidia-compute-utils-{branch}-server")
        return packages
    # Debian 12: one branch per release; headers for DKMS.
    kernel = "nvidia-open-kernel-dkms" if is_open else "nvidia-kernel-dkms"
    packages = [
        f"linux-headers-{platform.deb_arch}",
        kernel,
        "nvidia-driver",
        "firmware-misc-nonfree",
    ]
    if knob("nvidia_persistenced"):
        packages.append("nvidia-persistenced")
    return packages


@deploy("NVIDIA driver", data_defaults=DEFAULTS)
def nvidia_driver():
    """Install the pinned driver; reboot + ``nvidia-smi`` only when it changed."""
    if not gpu_or_skip("the NVIDIA driver"):
        return
    platform = detect(host)
    source = prepare_source(platform, "nvidia_driver_source")
    if source != "cuda_repo" and platform.distro == "debian":
        if knob("nvidia_driver_branch") != DEBIAN_DISTRO_BRANCH:
            notice(
                f"Debian 12's non-free driver is branch {DEBIAN_DISTRO_BRANCH}; "
                f"nvidia_driver_branch = {knob('nvidia_driver_branch')} needs the cuda_repo source"
            )

    if platform.family == "rhel":
        driver = _dnf_driver(platform)
    else:
        packages = driver_packages(platform, source)
        # Recommends pull in the DKMS/firmware bits the driver needs.
        driver = install_packages(
            platform,
            packages,
            name=f"Install NVIDIA driver ({source}: {', '.join(packages)})",
            no_recommends=False,
        )
        names = [p.split("=")[0] for p in packages if not p.startswith("linux-headers")]
        ops.apt_hold(name="Hold the NVIDIA driver packages", packages=names)

    _after_change(driver)
    _mismatch(driver)
    if knob("nvidia_persistenced"):
        systemd.service(
            name="Enable nvidia-persistenced (persistence mode)",
            service="nvidia-persistenced",
            running=True,
            enabled=True,
        )


def _dnf_driver(platform: Platform):
    branch = knob("nvidia_driver_branch")
    stream = f"{branch}-open" if knob("nvidia_driver_open") else f"{branch}-dkms"
    if not knob("nvidia_driver_open"):
        install_packages(platform, ["epel-release"], name="Install EPEL (dkms)")
    return ops.dnf_module_install(
        name=f"Install NVIDIA driver (dnf module nvidia-driver:{stream})",
        module="nvidia-driver",
        stream=stream,
        package="nvidia-driver",
        version_prefix=f"{branch}.",
        **download_args(),
    )


def _after_change(driver) -> None:
    if knob("nvidia_reboot"):
        server.reboot(
            name="Reboot to load the new NVIDIA driver (driver changed)",
            reboot_timeout=knob("reboot_timeout"),
            _if=driver.did_change,
        )
        server.shell(
            name="Check the driver loads: nvidia-smi -L",
            commands=[nvidia_smi_check()],
            _if=driver.did_change,
        )
    else:
        server.shell(
            name="Report: reboot needed to load the new driver (nvidia_reboot = false)",
            commands=["echo 'NVIDIA driver changed: reboot this host to load it' >&2"],
            _if=driver.did_change,
        )


def nvidia_smi_check() -> str:
    """Lists GPUs, or exits 1 saying the driver did not load."""
    return (
        "nvidia-smi -L || { echo 'nvidia-smi failed: the NVIDIA driver did not load' >&2; exit 1; }"
    )


def _mismatch(driver) -> None:
    """Compare the loaded module with the installed library (read at prepare time)."""
    loaded = host.get_fact(NvidiaLoadedModuleVersion)
    library = host.get_fact(NvidiaLibraryVersion)
    if not loaded or not library or loaded == library:
        return
    message = (
        f"NVIDIA driver/library mismatch: kernel module {loaded} is loaded but the "
        f"userspace library is {library}"
    )
    if knob("nvidia_mismatch_action") == "reboot":
        server.reboot(
            name=f"Reboot to resolve the mismatch ({loaded} loaded, {library} installed)",
            reboot_timeout=knob("reboot_timeout"),
            _if=driver.did_not_change,  # a driver change already rebooted
        )
        server.shell(
            name="Check the driver loads after the mismatch reboot",
            commands=[nvidia_smi_check()],
            _if=driver.did_not_change,
        )
    else:
        server.shell(
            name="Fail: NVIDIA driver/library version mismatch",
            commands=[
                f"echo '{message}: reboot the host, or set nvidia_mismatch_action = "
                f'"reboot"\' >&2; exit 1'
            ],
            _if=driver.did_not_change,
        )
