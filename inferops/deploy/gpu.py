"""The shared GPU check: is there an NVIDIA GPU to install for, and the skip message if not.

Every GPU component (driver, CUDA, container toolkit, TensorRT, dcgm-exporter)
asks here, so "no GPU" reads the same PCI fact and prints the same line everywhere.
"""

from __future__ import annotations

from pyinfra import host

from inferops.deploy.common import notice
from inferops.deploy.facts import NvidiaGpus
from inferops.deploy.knobs import Knob, boolean, declare, knob

KNOBS = (
    Knob(
        "nvidia_driver_force",
        False,
        boolean(),
        "install the GPU parts even when no NVIDIA GPU is detected "
        "(image builds, GPUs attached later)",
    ),
)
DEFAULTS = declare(__name__, KNOBS)

NO_GPU = (
    "no NVIDIA GPU detected (no PCI device with vendor 10de, class 03xx): skipping {what}; "
    "set nvidia_driver_force = true to install anyway"
)


def gpu_present() -> bool:
    """True when an NVIDIA GPU is on the PCI bus or ``nvidia_driver_force`` says go ahead."""
    if host.get_fact(NvidiaGpus):
        return True
    if knob("nvidia_driver_force"):
        notice("no NVIDIA GPU detected; continuing because nvidia_driver_force = true")
        return True
    return False


def gpu_or_skip(what: str) -> bool:
    """``gpu_present()``, telling the operator that ``what`` is skipped when it is not."""
    if gpu_present():
        return True
    notice(NO_GPU.format(what=what))
    return False


def enabled_on_gpu(flag: str, label: str, what: str) -> bool:
    """An optional GPU part runs when its ``flag`` knob is true and there is a GPU."""
    if not knob(flag):
        host.noop(f"{label}: disabled ({flag} = false)")
        return False
    return gpu_or_skip(what)
