"""The inferops suite itself on a host: a wheel built on the control machine
(``python -m pip wheel --no-deps``, cached per source digest), uploaded with ``files.put``
and pip-installed into the environment with ``--no-deps`` (the locks carry the
dependencies). Shared by every component that runs the ``inferops`` CLI on a host:
``inference_server`` (``inferops serve``) and ``nightly`` (``inferops nightly``).
"""

from __future__ import annotations

from pathlib import Path

from pyinfra.operations import files

from inferops.deploy import artifacts, ops
from inferops.deploy.common import require
from inferops.deploy.knobs import Knob, declare, knob, local_file
from inferops.deploy.layout import OPT_DIR, env_pip, env_prefix

WHEEL_DIR = f"{OPT_DIR}/wheels"

KNOBS = (
    Knob(
        "inferops_wheel",
        None,
        local_file(),
        "a prebuilt inferops wheel (else one is built from this checkout and cached)",
    ),
)
DEFAULTS = declare(__name__, KNOBS)


def wheel_path() -> Path:
    given = knob("inferops_wheel")
    if given:
        path = Path(given).expanduser()
        require(
            path.is_file() and path.suffix == ".whl", "inferops_wheel", f"not a wheel file: {given}"
        )
        return path
    return artifacts.build_wheel()


def install_suite():
    """Upload the wheel and install it into the environment; returns the install operation
    (a no-op when the environment's marker already records this wheel's sha256)."""
    wheel = wheel_path()
    files.directory(name=f"Create {WHEEL_DIR}", path=WHEEL_DIR, mode="755")
    remote_wheel = f"{WHEEL_DIR}/{wheel.name}"
    files.put(name=f"Upload {wheel.name}", src=str(wheel), dest=remote_wheel, mode="644")
    return ops.install_wheel(
        name="Install the inferops wheel into the environment",
        pip=env_pip(),
        wheel=remote_wheel,
        digest=artifacts.sha256_file(wheel),
        marker=f"{env_prefix()}/.inferops-wheel.sha256",
    )
