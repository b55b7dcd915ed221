"""accelerators: TensorRT inside the Python environment on GPU nodes, followed by a real
import check that fails the run if the library cannot load.

The check runs when the install changed something (so a converged host stays
at 0 changes) and prints the imported version into the pyinfra output.
OpenVINO is not here: it comes from PyPI, so it is part of the hash-pinned lock
``python_env`` installs (knob ``openvino``). TensorRT wheels come from NVIDIA's
index and are installed by name/version, without a hash lock.
"""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import server

from inferops.deploy import ops
from inferops.deploy.common import download_args, import_check_command
from inferops.deploy.gpu import gpu_or_skip
from inferops.deploy.knobs import Knob, boolean, declare, knob, string
from inferops.deploy.layout import env_pip, env_python

KNOBS = (
    Knob("tensorrt", False, boolean(), "install TensorRT into the env (GPU nodes)"),
    Knob(
        "tensorrt_package",
        "tensorrt-cu12",
        string(pattern=r"^[A-Za-z0-9._-]+$", what="a package name"),
        "TensorRT pip package (NVIDIA's wheels)",
    ),
    Knob(
        "tensorrt_version",
        None,
        string(none=True, pattern=r"^[\w.+-]+$", what="a version"),
        "pinned TensorRT (None: latest)",
    ),
)
DEFAULTS = declare(__name__, KNOBS)


@deploy("inferops accelerators", data_defaults=DEFAULTS)
def accelerators():
    """Install TensorRT when enabled and there is a GPU, then import it for real."""
    if not knob("tensorrt") or not gpu_or_skip("TensorRT"):
        return
    package = knob("tensorrt_package")
    version = knob("tensorrt_version")
    install = ops.pip_install(
        name=f"Install {package}",
        pip=env_pip(),
        packages=[f"{package}=={version}" if version else package],
        **download_args(),
    )
    server.shell(
        name="Check that tensorrt imports",
        commands=[import_check_command(env_python(), "tensorrt")],
        _if=install.did_change,
    )
