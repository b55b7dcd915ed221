"""Custom pyinfra facts the components read before deciding what to change.

Each fact's command tolerates absence (``|| true``) so a bare host yields an
empty answer rather than a failed fact.
"""

from __future__ import annotations

import re

from pyinfra.api import FactBase

NVIDIA_VENDOR = "0x10de"


class NvidiaGpus(FactBase):
    """PCI addresses of NVIDIA display/3D controllers (vendor 10de, class 03xx).

    Read from ``/sys/bus/pci/devices`` (always present, unlike ``lspci``), e.g.
    ``["0000:01:00.0"]``; ``[]`` when there is none.
    """

    default = list

    def command(self) -> str:
        return (
            'for d in /sys/bus/pci/devices/*; do [ -r "$d/vendor" ] && '
            'echo "${d##*/} $(cat "$d/vendor") $(cat "$d/class")"; done 2>/dev/null; true'
        )

    def process(self, output) -> list[str]:
        return parse_pci_devices(output)


def parse_pci_devices(lines) -> list[str]:
    """``"0000:01:00.0 0x10de 0x030200"`` lines -> NVIDIA GPU addresses (class 0x03xxxx)."""
    found = []
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            continue
        address, vendor, pci_class = parts
        if vendor.lower() == NVIDIA_VENDOR and pci_class.lower().startswith("0x03"):
            found.append(address)
    return found


class ContainerVirt(FactBase):
    """Container technology the host runs in (``systemd-nspawn``, ``docker``, ``lxc``...),
    or ``""`` on bare metal / full VMs. Time sync and live sysctl are the outer host's job there.
    """

    default = str

    def command(self) -> str:
        return "systemd-detect-virt --container 2>/dev/null || true"

    def process(self, output) -> str:
        value = "\n".join(output).strip()
        return "" if value in ("", "none") else value


class FileText(FactBase):
    """Text of a remote file, ``""`` when missing (markers, version files)."""

    default = str

    def command(self, path: str) -> str:
        return f"cat '{path}' 2>/dev/null || true"

    def process(self, output) -> str:
        return "\n".join(output).strip()


_NVRM = re.compile(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)")


def parse_nvrm_version(text: str) -> str | None:
    """Version of the loaded kernel module from ``/proc/driver/nvidia/version``."""
    match = _NVRM.search(text or "")
    return match.group(1) if match else None


class NvidiaLoadedModuleVersion(FactBase):
    """Version of the NVIDIA kernel module currently loaded, or None if none is loaded."""

    def command(self) -> str:
        return "cat /proc/driver/nvidia/version 2>/dev/null || true"

    def process(self, output) -> str | None:
        return parse_nvrm_version("\n".join(output))


_LIB = re.compile(r"libnvidia-ml\.so\.(\d+\.\d+(?:\.\d+)?)$")


class NvidiaLibraryVersion(FactBase):
    """Version of the installed userspace driver library (``libnvidia-ml.so.<version>``)."""

    def command(self) -> str:
        return (
            "ls /usr/lib/*/libnvidia-ml.so.* /usr/lib64/libnvidia-ml.so.* "
            "/usr/lib/libnvidia-ml.so.* 2>/dev/null || true"
        )

    def process(self, output) -> str | None:
        for line in output:
            match = _LIB.search(line.strip())
            if match:
                return match.group(1)
        return None


def normalize_dist_name(name: str) -> str:
    """PEP 503 normalisation: ``Prometheus_Client`` == ``prometheus-client``."""
    return re.sub(r"[-_.]+", "-", name).lower()


class PipFreeze(FactBase):
    """Installed distributions of one environment: ``{normalized name: version}``.

    Unlike pyinfra's PipPackages it normalises names (``prometheus_client`` vs
    ``prometheus-client``) and accepts any version string (``2.5.1+cpu``), so a
    second run never reinstalls what is already there.
    """

    default = dict

    def command(self, pip: str) -> str:
        return f"'{pip}' freeze --all 2>/dev/null || true"

    def process(self, output) -> dict[str, str]:
        return parse_pip_freeze(output)


def parse_pip_freeze(lines) -> dict[str, str]:
    installed = {}
    for line in lines:
        line = line.strip()
        if "==" in line:
            name, version = line.split("==", 1)
        elif " @ " in line:
            name, version = line.split(" @ ", 1)
        else:
            continue
        installed[normalize_dist_name(name.strip())] = version.strip()
    return installed


class AptHolds(FactBase):
    """Packages pinned with ``apt-mark hold``."""

    default = list

    def command(self) -> str:
        return "apt-mark showhold 2>/dev/null || true"

    def process(self, output) -> list[str]:
        return [line.strip() for line in output if line.strip()]


class DockerImageId(FactBase):
    """Local id of a docker image reference, or ``""`` when the daemon does not have it."""

    default = str

    def command(self, image: str) -> str:
        return f"docker image inspect --format '{{{{.Id}}}}' '{image}' 2>/dev/null || true"

    def process(self, output) -> str:
        return "\n".join(output).strip()


class TreeDigest(FactBase):
    """sha256 over a directory's files (relative paths and contents), or ``""`` when the
    directory is absent: one value that says whether two trees hold the same files."""

    default = str

    def command(self, path: str) -> str:
        return (
            f"test -d {path} && cd {path} && "
            "find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum "
            "| cut -d' ' -f1 || true"
        )

    def process(self, output) -> str:
        return "\n".join(output).strip()


class PythonPlatform(FactBase):
    """What an interpreter on the host installs wheels for, or None when it is absent:
    ``{"version": "3.11.2", "implementation": "CPython", "machine": "x86_64",
    "libc": "glibc", "libc_version": "2.36"}`` (the wheelhouse is built for exactly this).
    """

    def command(self, python: str) -> str:
        code = (
            "import platform as p; print(p.python_version()); "
            "print(p.python_implementation()); print(p.machine()); print(*p.libc_ver())"
        )
        return f"'{python}' -c '{code}' 2>/dev/null || true"

    def process(self, output) -> dict | None:
        return parse_python_platform(output)


def parse_python_platform(lines) -> dict | None:
    lines = [line.strip() for line in lines]
    if len(lines) < 4 or not re.match(r"^\d+\.\d+\.\d+", lines[0]):
        return None
    libc = lines[3].split()
    return {
        "version": lines[0],
        "implementation": lines[1],
        "machine": lines[2],
        "libc": libc[0] if libc else "",
        "libc_version": libc[1] if len(libc) > 1 else "",
    }
