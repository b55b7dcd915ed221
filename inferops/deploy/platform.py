"""What the target host is, read from facts (never assumed): distro family, version, arch.

Every component asks ``detect(host)`` once and branches on the result, so the
distro/arch mapping (``ubuntu2204``, ``sbsa``, ``amd64``...) lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra.api.exceptions import PyinfraError
from pyinfra.facts.server import Arch, LinuxDistribution

# (distro id, major) -> the name NVIDIA's CUDA repos use for it.
_CUDA_REPO_DISTRO = {
    ("ubuntu", 22): "ubuntu2204",
    ("ubuntu", 24): "ubuntu2404",
    ("debian", 12): "debian12",
    ("rocky", 9): "rhel9",
    ("rhel", 9): "rhel9",
    ("almalinux", 9): "rhel9",
}

SUPPORTED = "Ubuntu 22.04, Ubuntu 24.04, Debian 12, Rocky/RHEL/Alma 9"


@dataclass(frozen=True)
class Platform:
    distro: str  # os-release ID: ubuntu, debian, rocky, rhel, almalinux
    major: int
    minor: int
    codename: str  # jammy, noble, bookworm; "" on RHEL-family
    arch: str  # uname -m: x86_64 or aarch64

    @property
    def family(self) -> str:
        """``debian`` (apt) or ``rhel`` (dnf)."""
        return "debian" if self.distro in ("ubuntu", "debian") else "rhel"

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor:02d}" if self.distro == "ubuntu" else str(self.major)

    @property
    def deb_arch(self) -> str:
        return {"x86_64": "amd64", "aarch64": "arm64"}[self.arch]

    @property
    def go_arch(self) -> str:
        """Arch as Go release tarballs (node_exporter) name it."""
        return self.deb_arch

    @property
    def cuda_repo_distro(self) -> str:
        return _CUDA_REPO_DISTRO[(self.distro, self.major)]

    @property
    def cuda_repo_arch(self) -> str:
        # NVIDIA publishes server-class arm64 (Grace, etc.) as "sbsa".
        return {"x86_64": "x86_64", "aarch64": "sbsa"}[self.arch]


def detect(host) -> Platform:
    """Read LinuxDistribution and Arch facts; stop with a clear error on anything unsupported."""
    dist = host.get_fact(LinuxDistribution)
    meta = dist.get("release_meta") or {}
    distro = (meta.get("ID") or (dist.get("name") or "")).lower()
    major = dist.get("major")
    minor = dist.get("minor") or 0
    arch = host.get_fact(Arch) or ""
    if (distro, major) not in _CUDA_REPO_DISTRO:
        raise PyinfraError(
            f"{host.name}: unsupported distribution {distro or '?'} {major}; supported: {SUPPORTED}"
        )
    if arch not in ("x86_64", "aarch64"):
        raise PyinfraError(f"{host.name}: unsupported architecture {arch!r} (x86_64, aarch64)")
    return Platform(
        distro=distro,
        major=int(major),
        minor=int(minor),
        codename=meta.get("VERSION_CODENAME", ""),
        arch=arch,
    )
