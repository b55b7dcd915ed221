"""container_toolkit (optional): docker plus the NVIDIA container toolkit from its signed
repo, with ``nvidia-ctk runtime configure`` for docker or containerd.

The repo key is downloaded sha256-verified to ``/etc/apt/keyrings`` (apt,
``signed-by``) or ``/etc/pki/rpm-gpg`` (dnf, ``gpgcheck`` + ``repo_gpgcheck``).
Needed by ``server_runtime = "triton"`` and container-mode dcgm-exporter.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Which
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from inferops.deploy.common import download_args, install_packages, require, template
from inferops.deploy.downloads import download_verified
from inferops.deploy.facts import FileText
from inferops.deploy.gpu import enabled_on_gpu
from inferops.deploy.knobs import Knob, boolean, choice, declare, knob, sha256, url
from inferops.deploy.platform import detect

APT_KEY = "/etc/apt/keyrings/nvidia-container-toolkit.asc"
APT_LIST = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
RPM_KEY = "/etc/pki/rpm-gpg/nvidia-container-toolkit.asc"
RPM_REPO = "/etc/yum.repos.d/nvidia-container-toolkit.repo"
RUNTIME_CONFIG = {"docker": "/etc/docker/daemon.json", "containerd": "/etc/containerd/config.toml"}

KNOBS = (
    Knob(
        "container_toolkit",
        False,
        boolean(),
        "install docker + the NVIDIA container toolkit (Triton, container-mode dcgm-exporter)",
    ),
    Knob(
        "container_runtime",
        "docker",
        choice("docker", "containerd"),
        "the runtime `nvidia-ctk runtime configure` wires the NVIDIA runtime into",
    ),
    Knob(
        "container_toolkit_repo_url",
        "https://nvidia.github.io/libnvidia-container",
        url(),
        "libnvidia-container repo base",
    ),
    Knob(
        "container_toolkit_key_url",
        "https://nvidia.github.io/libnvidia-container/gpgkey",
        url(),
        "libnvidia-container signing key",
    ),
    Knob(
        "container_toolkit_key_sha256",
        None,
        sha256(),
        "sha256 of that key file (required: no unverified key is trusted)",
    ),
)
DEFAULTS = declare(__name__, KNOBS)


@deploy("NVIDIA container toolkit", data_defaults=DEFAULTS)
def container_toolkit():
    """Install docker/containerd + nvidia-container-toolkit; register the NVIDIA runtime."""
    if not enabled_on_gpu("container_toolkit", "container toolkit", "the NVIDIA container toolkit"):
        return
    platform = detect(host)
    digest = knob("container_toolkit_key_sha256")
    require(bool(digest), "container_toolkit_key_sha256", "required to trust the toolkit repo")
    runtime = knob("container_runtime")

    if platform.family == "debian":
        files.directory(name="Create /etc/apt/keyrings", path="/etc/apt/keyrings", mode="755")
        key = download_verified(
            "the container toolkit repo key", knob("container_toolkit_key_url"), digest, APT_KEY
        )
        listing = files.template(
            name="Add the container toolkit apt source (signed-by)",
            src=template("nvidia-container-toolkit.list.j2"),
            dest=APT_LIST,
            mode="644",
            url=knob("container_toolkit_repo_url"),
            keyring=APT_KEY,
        )
        apt.update(
            name="apt-get update (toolkit source changed)",
            _if=any_changed(key, listing),
            **download_args(),
        )
        engine = "docker.io" if runtime == "docker" else "containerd"
        install_packages(platform, [engine], name=f"Install {engine}")
    else:
        download_verified(
            "the container toolkit repo key", knob("container_toolkit_key_url"), digest, RPM_KEY
        )
        files.template(
            name="Add the container toolkit dnf repo (gpgcheck)",
            src=template("nvidia-container-toolkit.repo.j2"),
            dest=RPM_REPO,
            mode="644",
            url=knob("container_toolkit_repo_url"),
            key_path=RPM_KEY,
        )
        require(
            bool(host.get_fact(Which, command=runtime)),
            "container_runtime",
            f"{runtime} is not installed; RHEL-family hosts need it from your own repo first",
        )
    install_packages(
        platform, ["nvidia-container-toolkit"], name="Install nvidia-container-toolkit"
    )

    config = RUNTIME_CONFIG[runtime]
    # docker: a "nvidia" key under "runtimes"; containerd: a runtimes.nvidia table.
    marker = '"nvidia"' if runtime == "docker" else "runtimes.nvidia"
    if marker in host.get_fact(FileText, path=config):
        host.noop(f"NVIDIA runtime already registered in {config}")
        return
    configure = server.shell(
        name=f"Register the NVIDIA runtime with {runtime} (nvidia-ctk)",
        commands=[f"nvidia-ctk runtime configure --runtime={runtime}"],
    )
    systemd.service(
        name=f"Restart {runtime} (runtime registered)",
        service=runtime,
        running=True,
        restarted=True,
        enabled=True,
        _if=configure.did_change,
    )
