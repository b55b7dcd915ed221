"""Canned facts for the distros/arches the components support (fake hosts, op-level only).

A profile is what a *bare* host of that kind answers; cases layer their own
facts (GPU present, packages installed, markers) on top.
"""

from __future__ import annotations

import copy

_WHICH = {
    "command=curl": "/usr/bin/curl",
    "command=useradd": "/usr/sbin/useradd",
    "command=groupadd": "/usr/sbin/groupadd",
}

_DISTROS = {
    "ubuntu22.04": ("Ubuntu", "ubuntu", 22, 4, "jammy"),
    "ubuntu24.04": ("Ubuntu", "ubuntu", 24, 4, "noble"),
    "debian12": ("Debian", "debian", 12, None, "bookworm"),
    "rocky9": ("Rocky Linux", "rocky", 9, 4, ""),
}

DISTROS = tuple(_DISTROS)
GPU_PCI = ["0000:01:00.0"]


def profile(distro: str, arch: str = "x86_64", gpu: bool = False) -> dict:
    name, distro_id, major, minor, codename = _DISTROS[distro]
    meta = {"ID": distro_id, "VERSION_ID": f"{major}" + (f".{minor:02d}" if minor else "")}
    if codename:
        meta["VERSION_CODENAME"] = codename
    facts = {
        "LinuxDistribution": {"name": name, "major": major, "minor": minor, "release_meta": meta},
        "Arch": arch,
        "Os": "Linux",
        "Which": copy.deepcopy(_WHICH),
        "NvidiaGpus": list(GPU_PCI) if gpu else [],
    }
    return facts


def merge(base: dict, extra: dict) -> dict:
    """Facts ``extra`` over ``base``; argument-keyed facts (dicts of ``k=v``) merge per key."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if (
            isinstance(value, dict)
            and isinstance(out.get(key), dict)
            and all("=" in k for k in list(value) + list(out[key]))
        ):
            out[key].update(value)
        else:
            out[key] = value
    return out
