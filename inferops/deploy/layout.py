"""Where things live on a node, shared by every component: directories, the service
account, and the Python environment's location.

Components import these instead of each other (``inference_server`` needs
``base``'s directories and ``python_env``'s pip; ``accelerators`` the same pip).
"""

from __future__ import annotations

from inferops.deploy.knobs import Knob, absolute_path, choice, declare, integer, knob, string

STATE_DIR = "/var/lib/inferops"
CONFIG_DIR = "/etc/inferops"
OPT_DIR = "/opt/inferops"
DOWNLOAD_DIR = f"{OPT_DIR}/downloads"
# model versions side by side, one directory per served name (see deploy.model_store)
MODEL_STORE = f"{OPT_DIR}/models"

KNOBS = (
    Knob(
        "service_user",
        "inferops",
        string(pattern=r"^[a-z_][a-z0-9_-]*$", what="a user name"),
        "system user the server runs as (owns /var/lib/inferops)",
    ),
    Knob(
        "nofile_limit",
        1048576,
        integer(1024),
        "open-files limit for the service user (limits.d) and systemd units (DefaultLimitNOFILE)",
    ),
    Knob(
        "python_env",
        "venv",
        choice("venv", "conda"),
        "how the Python environment is built: distro python3-venv, or Miniforge conda",
    ),
    Knob("venv_path", f"{OPT_DIR}/venv", absolute_path(), "venv location"),
    Knob("conda_prefix", "/opt/conda", absolute_path(), "Miniforge install prefix"),
    Knob(
        "conda_env_name",
        "inferops",
        string(pattern=r"^[A-Za-z0-9_.-]+$", what="an environment name"),
        "conda environment name",
    ),
)
DEFAULTS = declare(__name__, KNOBS)


def env_prefix() -> str:
    """Prefix of the Python environment for the current host's data."""
    if knob("python_env") == "conda":
        return f"{knob('conda_prefix')}/envs/{knob('conda_env_name')}"
    return knob("venv_path")


def env_pip() -> str:
    return f"{env_prefix()}/bin/pip"


def env_python() -> str:
    return f"{env_prefix()}/bin/python"
