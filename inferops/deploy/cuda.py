"""cuda: a pinned CUDA toolkit (``cuda-toolkit-12-6`` from NVIDIA's repo, or the distro's
``nvidia-cuda-toolkit``) and ``/etc/profile.d/cuda.sh`` so ``nvcc`` is on PATH.

On aarch64 NVIDIA's repo path uses ``sbsa`` (see ``platform.cuda_repo_arch``).
After an install ``nvcc --version`` must succeed.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server

from inferops.deploy.common import install_packages, template
from inferops.deploy.gpu import gpu_or_skip
from inferops.deploy.knobs import Knob, choice, declare, knob, string
from inferops.deploy.nvidia_repos import prepare_source
from inferops.deploy.platform import detect

PROFILE = "/etc/profile.d/cuda.sh"

KNOBS = (
    Knob(
        "cuda_version",
        "12.6",
        string(pattern=r"^\d+\.\d+$", what="like 12.6"),
        "CUDA toolkit major.minor; the repo package is cuda-toolkit-<major>-<minor>",
    ),
    Knob(
        "cuda_source",
        "auto",
        choice("auto", "cuda_repo", "distro"),
        "where the toolkit comes from; auto: NVIDIA's repo when its checksum is configured "
        "(always on RHEL), else the distro",
    ),
)
DEFAULTS = declare(__name__, KNOBS)


def toolkit_package(source: str) -> str:
    if source == "cuda_repo":
        return "cuda-toolkit-" + knob("cuda_version").replace(".", "-")
    return "nvidia-cuda-toolkit"


def cuda_home(source: str) -> str:
    return f"/usr/local/cuda-{knob('cuda_version')}" if source == "cuda_repo" else "/usr"


@deploy("CUDA toolkit", data_defaults=DEFAULTS)
def cuda():
    """Install the pinned toolkit and its profile script; check ``nvcc`` after a change."""
    if not gpu_or_skip("the CUDA toolkit"):
        return
    platform = detect(host)
    source = prepare_source(platform, "cuda_source")
    package = toolkit_package(source)
    install = install_packages(platform, [package], name=f"Install {package} ({source})")
    home = cuda_home(source)
    files.template(
        name=f"Write {PROFILE}",
        src=template("cuda.sh.j2"),
        dest=PROFILE,
        mode="644",
        cuda_home=home,
        repo_layout=source == "cuda_repo",
    )
    server.shell(
        name="Check nvcc runs",
        commands=[f"{home}/bin/nvcc --version"],
        _if=install.did_change,
    )
