"""A FAKE ``pynvml`` (nvidia-ml-py) for tests: there is no NVIDIA GPU on the test machine.

It mimics the parts of the real module that ``inferops.measure.hostmetrics`` uses:
the ``NVMLError`` hierarchy (an error built from a code becomes its subclass,
as in pynvml), the constants, and the device queries. Each fake GPU is a dict
of values; a value that is an exception instance is raised by its query, the way
a real GPU answers ``NVMLError_NotSupported`` for, say, power on some boards.
"""

from __future__ import annotations

import types

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_LIBRARY_NOT_FOUND = 12


class NVMLError(Exception):
    _codes: dict[int, type] = {}

    def __new__(cls, value):
        cls = NVMLError._codes.get(value, cls) if cls is NVMLError else cls
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value):
        super().__init__(value)
        self.value = value

    def __str__(self):
        return {3: "Not Supported", 12: "NVML Shared Library Not Found"}.get(self.value, "Unknown")


# pynvml's own class names
class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


NVMLError._codes = {
    NVML_ERROR_NOT_SUPPORTED: NVMLError_NotSupported,
    NVML_ERROR_LIBRARY_NOT_FOUND: NVMLError_LibraryNotFound,
}


def make(
    gpus: list[dict] | None = None,
    *,
    init_error: int | None = None,
    driver: bytes | str = "550.54.15",
) -> types.ModuleType:
    """Build a fake pynvml module.

    ``gpus``: one dict per GPU with keys name, uuid, mem_total, mem_used, util,
    power_mw, power_limit_mw, temp, sm_clock, mem_clock (an exception instance
    as a value is raised instead). ``init_error``: an NVML error code that
    ``nvmlInit`` raises (e.g. NVML_ERROR_LIBRARY_NOT_FOUND).
    The module records ``calls`` (init/shutdown counts) for assertions.
    """
    gpus = gpus or []
    mod = types.ModuleType("pynvml")
    mod.__fake__ = True
    mod.calls = {"init": 0, "shutdown": 0}
    for name in (
        "NVML_TEMPERATURE_GPU",
        "NVML_CLOCK_SM",
        "NVML_CLOCK_MEM",
        "NVML_ERROR_NOT_SUPPORTED",
        "NVML_ERROR_LIBRARY_NOT_FOUND",
        "NVMLError",
        "NVMLError_NotSupported",
        "NVMLError_LibraryNotFound",
    ):
        setattr(mod, name, globals()[name])

    def value(handle, key):
        v = gpus[handle][key]
        if isinstance(v, BaseException):
            raise v
        return v

    def nvmlInit():
        if init_error is not None:
            raise NVMLError(init_error)
        mod.calls["init"] += 1

    def nvmlShutdown():
        mod.calls["shutdown"] += 1

    mod.nvmlInit = nvmlInit
    mod.nvmlShutdown = nvmlShutdown
    mod.nvmlSystemGetDriverVersion = lambda: driver
    mod.nvmlDeviceGetCount = lambda: len(gpus)
    mod.nvmlDeviceGetHandleByIndex = lambda i: i
    mod.nvmlDeviceGetName = lambda h: value(h, "name")
    mod.nvmlDeviceGetUUID = lambda h: value(h, "uuid")
    mod.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(
        total=value(h, "mem_total"),
        used=value(h, "mem_used"),
        free=value(h, "mem_total") - value(h, "mem_used"),
    )
    mod.nvmlDeviceGetEnforcedPowerLimit = lambda h: value(h, "power_limit_mw")
    mod.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(
        gpu=value(h, "util"), memory=0
    )
    mod.nvmlDeviceGetPowerUsage = lambda h: value(h, "power_mw")
    mod.nvmlDeviceGetTemperature = lambda h, sensor: value(h, "temp")
    mod.nvmlDeviceGetClockInfo = lambda h, clock: value(
        h, "sm_clock" if clock == NVML_CLOCK_SM else "mem_clock"
    )
    return mod
