"""python_env: the Python environment the server runs in - a venv (default) or Miniforge conda.

``venv`` uses the distro's ``python3 -m venv`` and works on any Debian/Ubuntu/RHEL
host with no download beyond pip's index. ``conda`` installs a pinned,
checksum-verified Miniforge with ``-b -p <prefix>`` and builds an environment
from a templated ``environment.yml``. Both honour the pip index / extra CA /
proxy knobs (air-gap mirrors), via ``pip.conf`` inside the environment.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.operations import files, pip, server

from inferops.deploy import locks, ops
from inferops.deploy.common import (
    download_args,
    import_check_command,
    install_packages,
    require,
    template,
)
from inferops.deploy.downloads import download_verified
from inferops.deploy.knobs import (
    PIP_PIN,
    Knob,
    boolean,
    choice,
    declare,
    knob,
    local_file,
    sha256_by_arch,
    str_list,
    string,
    url,
)
from inferops.deploy.layout import (
    CONFIG_DIR,
    DOWNLOAD_DIR,
    OPT_DIR,
    env_pip,
    env_prefix,
    env_python,
)
from inferops.deploy.platform import detect

PIP_CA_PATH = f"{CONFIG_DIR}/pip-ca.pem"
# pip config shared by `conda env create` (via PIP_CONFIG_FILE) and copied into each env.
SHARED_PIP_CONF = f"{OPT_DIR}/pip.conf"

KNOBS = (
    Knob(
        "conda_python_version",
        "3.11",
        string(pattern=r"^3\.\d+$", what="a Python version like 3.11"),
        "Python in the conda env",
    ),
    Knob("conda_channels", ["conda-forge"], str_list(), "conda channels (names or mirror URLs)"),
    Knob(
        "miniforge_version",
        "24.11.3-0",
        string(pattern=r"^\d+\.\d+\.\d+-\d+$", what="a Miniforge version like 24.11.3-0"),
        "pinned Miniforge release",
    ),
    Knob(
        "miniforge_url",
        "https://github.com/conda-forge/miniforge/releases/download/"
        "{version}/Miniforge3-{version}-Linux-{arch}.sh",
        url(),
        "installer URL template ({version}, {arch})",
    ),
    Knob(
        "miniforge_sha256",
        {},
        sha256_by_arch(),
        "installer sha256 per arch ({'x86_64': ..., 'aarch64': ...}) from the release's "
        ".sha256 files; required for python_env = conda: no unverified installer ever runs",
    ),
    Knob("pip_index_url", None, url(none=True), "pip index (PyPI mirror)"),
    Knob("pip_extra_index_urls", [], str_list(), "extra pip indexes"),
    Knob("pip_trusted_hosts", [], str_list(), "hosts pip trusts without TLS verification"),
    Knob("pip_ca_cert", None, local_file(), "local CA bundle, uploaded and given to pip"),
    Knob(
        "onnxruntime_package",
        "onnxruntime",
        choice("onnxruntime", "onnxruntime-gpu"),
        "ONNX Runtime flavour (onnxruntime-gpu on CUDA nodes)",
    ),
    Knob(
        "openvino",
        False,
        boolean(),
        "OpenVINO in the env (server_backend openvino): installed from the lock that includes "
        "it, then imported for real",
    ),
    Knob(
        "python_requirements_lock",
        None,
        local_file(),
        "your own hash-pinned lock (made like templates/deploy/requirements/*.txt) instead of "
        "the shipped one for this onnxruntime_package/openvino",
    ),
    Knob(
        "pip_wheelhouse",
        True,
        boolean(),
        "download the lock's wheels once, on the control machine (hash-checked, cached in "
        ".inferops/wheelhouse), and upload them: hosts install with --no-index instead of "
        "each downloading from the index; false: every host downloads for itself",
    ),
    Knob(
        "python_packages",
        [],
        str_list(PIP_PIN, "requirement"),
        "extra pip packages, installed after the lock WITHOUT hash checking: prefer your own "
        "python_requirements_lock",
    ),
)
DEFAULTS = declare(__name__, KNOBS)

REMOTE_LOCK = f"{OPT_DIR}/requirements.lock.txt"


def lock_file() -> Path:
    """The lock to install: the user's, else the shipped one for the flavour/OpenVINO."""
    given = knob("python_requirements_lock")
    if given:
        path = Path(given).expanduser()
        require(path.is_file(), "python_requirements_lock", f"no such local file: {given}")
        return path
    return locks.lock_path(knob("onnxruntime_package"), knob("openvino"))


@deploy("inferops python environment", data_defaults=DEFAULTS)
def python_env():
    """Build the environment and install the server's requirements into it."""
    platform = detect(host)
    _pip_ca()
    if knob("python_env") == "conda":
        _conda(platform)
    else:
        _venv(platform)
    _requirements()


def _requirements() -> None:
    """The server's requirements from a hash-pinned lock (``pip install --require-hashes``),
    OpenVINO's import check, then any unlocked extras."""
    lock = lock_file()
    text = lock.read_text()
    files.put(name="Upload the requirements lock", src=str(lock), dest=REMOTE_LOCK, mode="644")
    wanted = knob("onnxruntime_package")
    other = "onnxruntime-gpu" if wanted == "onnxruntime" else "onnxruntime"
    ops.pip_replace(
        name=f"Replace {other} with {wanted} (they conflict)",
        pip=env_pip(),
        wanted=wanted,
        other=other,
    )
    install = ops.pip_install_locked(
        name="Install server requirements into the environment (hash-checked lock)",
        pip=env_pip(),
        lock=REMOTE_LOCK,
        digest=hashlib.sha256(text.encode()).hexdigest(),
        marker=f"{env_prefix()}/.inferops-requirements.sha256",
        pins=locks.unconditional_pins(text),
        **_wheelhouse_args(lock),
        **download_args(),
    )
    if knob("openvino"):
        server.shell(
            name="Check that openvino imports",
            commands=[import_check_command(env_python(), "openvino")],
            _if=install.did_change,
        )
    if knob("python_packages"):
        ops.pip_install(
            name="Install extra python_packages (not hash-checked)",
            pip=env_pip(),
            packages=list(knob("python_packages")),
            **download_args(),
        )


def _wheelhouse_args(lock: Path) -> dict:
    """``pip_install_locked``'s wheelhouse arguments: the local lock, the env's python and
    the index options the control machine downloads with (the same index knobs as hosts)."""
    if not knob("pip_wheelhouse"):
        return {}
    options = []
    if knob("pip_index_url"):
        options += ["--index-url", knob("pip_index_url")]
    for extra in knob("pip_extra_index_urls"):
        options += ["--extra-index-url", extra]
    for trusted in knob("pip_trusted_hosts"):
        options += ["--trusted-host", trusted]
    if knob("pip_ca_cert"):
        options += ["--cert", knob("pip_ca_cert")]
    return {"wheelhouse_lock": str(lock), "python": env_python(), "index_options": options}


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

    download_verified(
        f"Miniforge {version}",
        knob("miniforge_url").format(version=version, arch=arch),
        digest,
        dest=f"Miniforge3-{version}-Linux-{arch}.sh",
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
