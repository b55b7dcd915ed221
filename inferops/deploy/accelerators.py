"""accelerators: TensorRT and/or OpenVINO inside the Python environment, each followed by a
real import check that fails the run if the library cannot load.

The check runs when the install changed something (so a converged host stays
at 0 changes) and prints the imported version into the pyinfra output.
"""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import server

from inferops.deploy import ops
from inferops.deploy.common import download_args
from inferops.deploy.gpu import gpu_or_skip
from inferops.deploy.knobs import Knob, boolean, declare, knob, string
from inferops.deploy.layout import env_pip, env_python

_VERSION = string(none=True, pattern=r"^[\w.+-]+$", what="a version")
KNOBS = (
    Knob("openvino", False, boolean(), "install OpenVINO into the env (server_backend openvino)"),
    Knob("openvino_version", None, _VERSION, "pinned OpenVINO (None: latest)"),
    Knob("tensorrt", False, boolean(), "install TensorRT into the env (GPU nodes)"),
    Knob(
        "tensorrt_package",
        "tensorrt-cu12",
        string(pattern=r"^[A-Za-z0-9._-]+$", what="a package name"),
        "TensorRT pip package (NVIDIA's wheels)",
    ),
    Knob("tensorrt_version", None, _VERSION, "pinned TensorRT (None: latest)"),
)
DEFAULTS = declare(__name__, KNOBS)

# enable knob, module to import, pip package (None: from tensorrt_package), version knob
_LIBRARIES = (
    ("openvino", "openvino", "openvino", "openvino_version"),
    ("tensorrt", "tensorrt", None, "tensorrt_version"),
)


def import_check_command(python: str, module: str) -> str:
    """A command that exits non-zero, with Python's error, if ``module`` cannot be imported."""
    return f"{python} -c 'import {module}; print(\"{module}\", {module}.__version__)'"


@deploy("inferops accelerators", data_defaults=DEFAULTS)
def accelerators():
    """Install the enabled libraries, then import each one for real."""
    python = env_python()
    for enabled_knob, module, package, version_knob in _LIBRARIES:
        if not knob(enabled_knob):
            continue
        if module == "tensorrt" and not gpu_or_skip("TensorRT"):
            continue
        package = package or knob("tensorrt_package")
        version = knob(version_knob)
        install = ops.pip_install(
            name=f"Install {package}",
            pip=env_pip(),
            packages=[f"{package}=={version}" if version else package],
            **download_args(),
        )
        server.shell(
            name=f"Check that {module} imports",
            commands=[import_check_command(python, module)],
            _if=install.did_change,
        )
