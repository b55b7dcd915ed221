"""python_env: the Python environment the server runs in - a venv (default) or Miniforge conda.

``venv`` uses the distro's ``python3 -m venv`` and works on any Debian/Ubuntu/RHEL
host with no download beyond pip's index. ``conda`` installs a pinned,
checksum-verified Miniforge with ``-b -p <prefix>`` and builds an environment
from a templated ``environment.yml``. Both honour the pip index / extra CA /
proxy knobs (air-gap mirrors), via ``pip.conf`` inside the environment.
"""

from __future__ import annotations

import os

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.operations import files, pip, server

from inferops.deploy import ops
from inferops.deploy.common import download_args, install_packages, knob, require, template
from inferops.deploy.platform import detect

DOWNLOAD_DIR = "/opt/inferops/downloads"
PIP_CA_PATH = "/etc/inferops/pip-ca.pem"
# pip config shared by `conda env create` (via PIP_CONFIG_FILE) and copied into each env.
SHARED_PIP_CONF = "/opt/inferops/pip.conf"

DEFAULTS = {
    # venv (distro python3-venv; CPU nodes) or conda (Miniforge; GPU nodes).
    "python_env": "venv",
    "venv_path": "/opt/inferops/venv",
    "conda_prefix": "/opt/conda",
    "conda_env_name": "inferops",
    "conda_python_version": "3.11",
    # Channel names or mirror URLs.
    "conda_channels": ["conda-forge"],
    "miniforge_version": "24.11.3-0",
    "miniforge_url": (
        "https://github.com/conda-forge/miniforge/releases/download/"
        "{version}/Miniforge3-{version}-Linux-{arch}.sh"
    ),
    # {"x86_64": "<sha256>", "aarch64": "<sha256>"} from the release's .sha256 files.
    # Required for python_env = conda: no unverified installer ever runs.
    "miniforge_sha256": {},
    # PyPI mirror / extra indexes / trusted hosts / CA bundle (local path, uploaded).
    "pip_index_url": None,
    "pip_extra_index_urls": [],
    "pip_trusted_hosts": [],
    "pip_ca_cert": None,
    # onnxruntime, or onnxruntime-gpu on CUDA nodes.
    "onnxruntime_package": "onnxruntime",
    # What `inferops serve` imports (the wheel itself goes in with --no-deps).
    "server_requirements": [
        "numpy",
        "onnx",
        "fastapi",
        "uvicorn",
        "prometheus-client",
        "orjson",
        "psutil",
    ],
    "python_packages": [],
}


def env_prefix() -> str:
    """Prefix of the environment for the current host's data."""
    if knob("python_env") == "conda":
        return f"{knob('conda_prefix')}/envs/{knob('conda_env_name')}"
    return knob("venv_path")


def env_pip() -> str:
    return f"{env_prefix()}/bin/pip"


def requirements() -> list[str]:
    """What pip puts in the environment for the server (TensorRT/OpenVINO: ``accelerators``)."""
    return [knob("onnxruntime_package"), *knob("server_requirements"), *knob("python_packages")]


@deploy("inferops python environment", data_defaults=DEFAULTS)
def python_env():
    """Build the environment and install the server's requirements into it."""
    platform = detect(host)
    _pip_ca()
    if knob("python_env") == "conda":
        _conda(platform)
    else:
        _venv(platform)
    wanted = knob("onnxruntime_package")
    other = "onnxruntime-gpu" if wanted == "onnxruntime" else "onnxruntime"
    ops.pip_replace(
        name=f"Replace {other} with {wanted} (they conflict)",
        pip=env_pip(),
        wanted=wanted,
        other=other,
        **download_args(),
    )
    ops.pip_install(
        name="Install server requirements into the environment",
        pip=env_pip(),
        packages=requirements(),
        **download_args(),
    )


def _pip_config(dest: str) -> None:
    """pip reads ``<prefix>/pip.conf`` for every pip call in that environment."""
    files.template(
        name=f"Write {dest} (index, mirrors, CA)",
        src=template("pip.conf.j2"),
        dest=dest,
        mode="644",
        index_url=knob("pip_index_url"),
        extra_index_urls=knob("pip_extra_index_urls"),
        trusted_hosts=knob("pip_trusted_hosts"),
        cert=PIP_CA_PATH if knob("pip_ca_cert") else None,
    )


def _pip_ca() -> None:
    ca = knob("pip_ca_cert")
    if not ca:
        return
    require(os.path.isfile(ca), "pip_ca_cert", f"no such local file: {ca}")
    files.put(name="Upload the pip CA bundle", src=ca, dest=PIP_CA_PATH, mode="644")


def _venv(platform) -> None:
    if platform.family == "debian":
        install_packages(platform, ["python3-venv"], name="Install python3-venv")
    else:
        install_packages(platform, ["python3", "python3-pip"], name="Install python3")
    prefix = knob("venv_path")
    pip.venv(name=f"Create venv {prefix}", path=prefix, python="python3")
    _pip_config(f"{prefix}/pip.conf")


def _conda(platform) -> None:
    version = knob("miniforge_version")
    arch = platform.arch
    digest = (knob("miniforge_sha256") or {}).get(arch)
    require(bool(digest), "miniforge_sha256", f"no sha256 for arch {arch}")
    prefix = knob("conda_prefix")
    conda = f"{prefix}/bin/conda"
    marker = f"{prefix}/.inferops-miniforge-version"
    installer = f"{DOWNLOAD_DIR}/Miniforge3-{version}-Linux-{arch}.sh"

    files.directory(name=f"Create {DOWNLOAD_DIR}", path=DOWNLOAD_DIR, mode="755")
    files.download(
        name=f"Download Miniforge {version} (sha256-verified)",
        src=knob("miniforge_url").format(version=version, arch=arch),
        dest=installer,
        sha256sum=digest,
        mode="644",
        **download_args(),
    )
    # -b batch, -p prefix; -u updates an existing prefix in place to the pinned version.
    ops.run_once_per_version(
        name=f"Install Miniforge {version} into {prefix}",
        command=f"bash {installer} -b -u -p {prefix}",
        marker=marker,
        version=version,
    )
    files.template(
        name="Write .condarc (channels, proxy, CA)",
        src=template("condarc.j2"),
        dest=f"{prefix}/.condarc",
        mode="644",
        channels=knob("conda_channels"),
        proxy=knob("proxy") or {},
        cert=PIP_CA_PATH if knob("pip_ca_cert") else None,
    )
    env_file = files.template(
        name="Write environment.yml",
        src=template("environment.yml.j2"),
        dest="/opt/inferops/environment.yml",
        mode="644",
        env_name=knob("conda_env_name"),
        python_version=knob("conda_python_version"),
        channels=knob("conda_channels"),
        pip_requirements=requirements(),
    )
    _pip_config(SHARED_PIP_CONF)
    conda_env = {**download_args().get("_env", {}), "PIP_CONFIG_FILE": SHARED_PIP_CONF}
    env_python = f"{env_prefix()}/bin/python"
    if host.get_fact(File, path=env_python):
        server.shell(
            name="Update the conda environment (environment.yml changed)",
            commands=[
                f"{conda} env update -n {knob('conda_env_name')} -f /opt/inferops/environment.yml"
            ],
            _if=env_file.did_change,
            _env=conda_env,
        )
    else:
        server.shell(
            name="Create the conda environment",
            commands=[
                f"{conda} env create -n {knob('conda_env_name')} -f /opt/inferops/environment.yml"
            ],
            _env=conda_env,
        )
    _pip_config(f"{env_prefix()}/pip.conf")
