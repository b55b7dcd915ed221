"""Check every host's data against the schema of every knob BEFORE anything runs.

A wrong type, an unknown value or a misspelt knob stops the run with
``<host>: <key>: <problem>`` and a non-zero exit. It runs twice, both before
any change:

- ``inventory.py`` calls ``check_fleet()`` on the hosts and ``group_data/``
  it defines, so the check fires before pyinfra opens a single SSH connection;
- each ``deploys/*.py`` calls ``validate_inventory()`` at the top, which covers
  other inventories (``pyinfra my_inventory.py deploys/cpu_node.py``).

The schema is the single list of knobs; ``tests/deploy`` asserts that every
key of every component's ``DEFAULTS`` appears here and vice versa.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A pip requirement we can check for presence without resolving: name or name==version.
PIP_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?(==[A-Za-z0-9.+!_-]+)?$")
DEB_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+:~-]+)?$")
ARCHES = ("x86_64", "aarch64")


@dataclass(frozen=True)
class Knob:
    """One data key: ``check(value)`` returns a problem string or None."""

    check: Callable[[Any], str | None]
    doc: str = ""
    choices: tuple = field(default=())


def _type(*types, none=False, desc=""):
    def check(value):
        if value is None and none:
            return None
        if isinstance(value, bool) and bool not in types:
            return f"expected {desc}, got bool {value!r}"
        if not isinstance(value, types):
            return f"expected {desc}, got {type(value).__name__} {value!r}"
        return None

    return check


def boolean(doc=""):
    return Knob(_type(bool, desc="true/false"), doc)


def integer(doc="", minimum=None, maximum=None):
    base = _type(int, desc="an integer")

    def check(value):
        problem = base(value)
        if problem:
            return problem
        if minimum is not None and value < minimum:
            return f"must be >= {minimum}, got {value}"
        if maximum is not None and value > maximum:
            return f"must be <= {maximum}, got {value}"
        return None

    return Knob(check, doc)


def number(doc="", minimum=0):
    base = _type(int, float, desc="a number")

    def check(value):
        problem = base(value)
        if problem:
            return problem
        if value < minimum:
            return f"must be >= {minimum}, got {value}"
        return None

    return Knob(check, doc)


def string(doc="", none=False, pattern=None, what="a string"):
    base = _type(str, none=none, desc=what + (" or None" if none else ""))

    def check(value):
        problem = base(value)
        if problem or value is None:
            return problem
        if not value.strip():
            return "must not be empty"
        if pattern is not None and not re.search(pattern, value):
            return f"not {what}: {value!r}"
        return None

    return Knob(check, doc)


def choice(*choices, doc=""):
    def check(value):
        if value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            return f"unknown value {value!r}; allowed: {allowed}"
        return None

    return Knob(check, doc, choices=choices)


def url(doc="", none=False):
    return string(doc, none=none, pattern=r"^(https?|file|ftp)://\S+$", what="a URL")


def str_list(doc="", pattern: re.Pattern | None = None, what="item"):
    def check(value):
        if not isinstance(value, (list, tuple)):
            return f"expected a list of strings, got {type(value).__name__} {value!r}"
        for item in value:
            if not isinstance(item, str) or not item.strip():
                return f"expected a list of strings, found {item!r}"
            if pattern is not None and not pattern.match(item):
                return f"bad {what} {item!r}"
        return None

    return Knob(check, doc)


def sha256_by_arch(doc=""):
    def check(value):
        if not isinstance(value, dict):
            return f"expected a mapping arch -> sha256, got {type(value).__name__} {value!r}"
        for arch, digest in value.items():
            if arch not in ARCHES:
                return f"unknown arch {arch!r}; allowed: {', '.join(ARCHES)}"
            if not isinstance(digest, str) or not SHA256.match(digest):
                return f"{arch}: not a sha256 (64 lowercase hex): {digest!r}"
        return None

    return Knob(check, doc)


def sha256(doc=""):
    def check(value):
        if value is None:
            return None
        if not isinstance(value, str) or not SHA256.match(value):
            return f"not a sha256 (64 lowercase hex): {value!r}"
        return None

    return Knob(check, doc)


def str_map(doc="", values=(str,)):
    def check(value):
        if not isinstance(value, dict):
            return f"expected a mapping, got {type(value).__name__} {value!r}"
        for key, item in value.items():
            if not isinstance(key, str):
                return f"keys must be strings, found {key!r}"
            if isinstance(item, bool) or not isinstance(item, values):
                return f"{key}: expected {'/'.join(t.__name__ for t in values)}, got {item!r}"
        return None

    return Knob(check, doc)


def proxy_knob(doc=""):
    allowed = ("http", "https", "no_proxy")

    def check(value):
        if value is None:
            return None
        if not isinstance(value, dict):
            return f"expected None or a mapping with keys {allowed}, got {value!r}"
        for key, item in value.items():
            if key not in allowed:
                return f"unknown key {key!r}; allowed: {', '.join(allowed)}"
            if not isinstance(item, str):
                return f"{key}: expected a string, got {item!r}"
        return None

    return Knob(check, doc)


def local_file(doc=""):
    """A path on the control machine; existence is checked where it is used."""
    return string(doc, none=True, what="a local path")


SCHEMA: dict[str, Knob] = {
    # --- all hosts (base) ---
    "proxy": proxy_knob("HTTP(S) proxy for downloads: {'http':..., 'https':..., 'no_proxy':...}"),
    "apt_cache_time": integer("seconds an apt index stays fresh before apt-get update", 0),
    "base_packages": str_list("packages every node gets", DEB_NAME, "package name"),
    "base_extra_packages": str_list("site-specific extra packages", DEB_NAME, "package name"),
    "time_sync": choice("timesyncd", "chrony", "none", doc="time sync daemon"),
    "sysctl": str_map("kernel settings for serving", values=(int, str)),
    "nofile_limit": integer("open-files limit for the service user and unit", 1024),
    "service_user": string(
        "system user the server runs as", pattern=r"^[a-z_][a-z0-9_-]*$", what="a user name"
    ),
    "reboot_timeout": integer("seconds to wait for a host to come back after reboot", 30),
    # --- python environment ---
    "python_env": choice("venv", "conda", doc="how the Python environment is built"),
    "venv_path": string("venv location", pattern=r"^/", what="an absolute path"),
    "conda_prefix": string("Miniforge install prefix", pattern=r"^/", what="an absolute path"),
    "conda_env_name": string(
        "conda environment name", pattern=r"^[A-Za-z0-9_.-]+$", what="an environment name"
    ),
    "conda_python_version": string(
        "Python in the conda env", pattern=r"^3\.\d+$", what="a Python version like 3.11"
    ),
    "conda_channels": str_list("conda channels (mirror URLs allowed)"),
    "miniforge_version": string(
        "pinned Miniforge release",
        pattern=r"^\d+\.\d+\.\d+-\d+$",
        what="a Miniforge version like 24.11.3-0",
    ),
    "miniforge_url": url("installer URL template ({version}, {arch})"),
    "miniforge_sha256": sha256_by_arch("installer sha256 per arch"),
    "pip_index_url": url("pip index (PyPI mirror)", none=True),
    "pip_extra_index_urls": str_list("extra pip indexes"),
    "pip_trusted_hosts": str_list("hosts pip trusts without TLS verification"),
    "pip_ca_cert": local_file("local CA bundle uploaded and given to pip"),
    "onnxruntime_package": choice("onnxruntime", "onnxruntime-gpu", doc="ONNX Runtime flavour"),
    "server_requirements": str_list("pip packages the server needs", PIP_PIN, "requirement"),
    "python_packages": str_list("extra pip packages", PIP_PIN, "requirement"),
    # --- accelerators ---
    "openvino": boolean("install OpenVINO into the env"),
    "openvino_version": string(
        "pinned OpenVINO", none=True, pattern=r"^[\w.+-]+$", what="a version"
    ),
    "tensorrt": boolean("install TensorRT into the env"),
    "tensorrt_package": string(
        "TensorRT pip package", pattern=r"^[A-Za-z0-9._-]+$", what="a package name"
    ),
    "tensorrt_version": string(
        "pinned TensorRT", none=True, pattern=r"^[\w.+-]+$", what="a version"
    ),
    # --- inference server ---
    "server_runtime": choice("inferops", "triton", doc="reference server or Triton container"),
    "server_model": choice("mlp", "cnn", "dense", doc="embedded model to build and serve"),
    "server_model_path": local_file("user .onnx on the control machine (overrides server_model)"),
    "server_model_name": string(
        "name served (defaults to the model)",
        none=True,
        pattern=r"^[A-Za-z0-9_.-]+$",
        what="a model name",
    ),
    "server_bind": string("listen address", pattern=r"^[0-9a-fA-F:.]+$", what="an IP address"),
    "server_port": integer("listen port", 1, 65535),
    "server_backend": choice("onnxruntime", "openvino", doc="inference backend"),
    "server_max_batch_size": integer("dynamic batching: max batch", 1),
    "server_max_queue_delay_ms": number("dynamic batching: max wait (ms)"),
    "server_extra_env": str_map("extra environment for the server"),
    "server_token_dir": string("where tokens are kept on the control machine", none=True),
    "server_verify": boolean("check the service is up after a change"),
    "inferops_wheel": local_file("prebuilt inferops wheel (else built from this repo)"),
    "triton_image": string("Triton NGC image", pattern=r"^\S+:\S+$", what="an image:tag"),
    "triton_model_repository": string(
        "Triton model repository on the host", pattern=r"^/", what="an absolute path"
    ),
    # --- exporters ---
    "node_exporter_source": choice("auto", "package", "tarball", doc="distro package or tarball"),
    "node_exporter_version": string(
        "pinned node_exporter release", pattern=r"^\d+\.\d+\.\d+$", what="a version like 1.8.2"
    ),
    "node_exporter_url": url("tarball URL template ({version}, {arch})"),
    "node_exporter_sha256": sha256_by_arch("tarball sha256 per arch"),
    "node_exporter_listen": string(
        "listen address", pattern=r"^\S*:\d+$", what="an address like :9100"
    ),
    "dcgm_exporter": boolean("run dcgm-exporter"),
    "dcgm_exporter_mode": choice("container", "binary", doc="how dcgm-exporter runs"),
    "dcgm_exporter_image": string("dcgm-exporter image", pattern=r"^\S+:\S+$", what="an image:tag"),
    "dcgm_exporter_binary_url": url("dcgm-exporter binary URL", none=True),
    "dcgm_exporter_binary_sha256": sha256("dcgm-exporter binary sha256"),
    "dcgm_exporter_listen": string(
        "listen address", pattern=r"^\S*:\d+$", what="an address like :9400"
    ),
    # --- NVIDIA driver ---
    "nvidia_driver_branch": string("driver branch", pattern=r"^\d{3}$", what="a branch like 570"),
    "nvidia_driver_source": choice(
        "auto", "cuda_repo", "distro", doc="where the driver comes from"
    ),
    "nvidia_driver_open": boolean("open kernel modules"),
    "nvidia_driver_force": boolean("install even when no NVIDIA GPU is detected"),
    "nvidia_persistenced": boolean("enable nvidia-persistenced"),
    "nvidia_reboot": boolean("reboot when the driver package changed"),
    "nvidia_mismatch_action": choice("fail", "reboot", doc="on kernel/library version mismatch"),
    "cuda_repo_url": url("NVIDIA CUDA repo base (mirror for air-gap)"),
    "cuda_keyring_version": string(
        "cuda-keyring package version", pattern=r"^[\w.+~-]+$", what="a version"
    ),
    "cuda_keyring_sha256": sha256("sha256 of the cuda-keyring .deb"),
    "cuda_rpm_key_url": string(
        "CUDA RPM signing key URL template ({repo}, {distro}, {arch})",
        pattern=r"^(\{repo\}|https?://|file://)\S+$",
        what="a URL or a {repo}/... template",
    ),
    "cuda_rpm_key_sha256": sha256("sha256 of the CUDA RPM signing key"),
    "debian_mirror_url": url("Debian mirror for contrib/non-free (distro driver)"),
    "debian_security_url": url("Debian security mirror"),
    # --- CUDA ---
    "cuda_version": string("CUDA toolkit version", pattern=r"^\d+\.\d+$", what="like 12.6"),
    "cuda_source": choice("auto", "cuda_repo", "distro", doc="where the toolkit comes from"),
    # --- container toolkit ---
    "container_toolkit": boolean("install docker + NVIDIA container toolkit"),
    "container_runtime": choice("docker", "containerd", doc="runtime nvidia-ctk configures"),
    "container_toolkit_repo_url": url("libnvidia-container repo base"),
    "container_toolkit_key_url": url("libnvidia-container signing key"),
    "container_toolkit_key_sha256": sha256("sha256 of that key"),
}

# Knob namespaces: a host/group key starting with one of these that is not in
# SCHEMA is a typo, reported with the closest known key.
_PREFIXES = tuple(sorted({key.split("_", 1)[0] + "_" for key in SCHEMA if "_" in key} | {"proxy"}))


def validate_data(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``[(key, problem)]`` for the given merged data; empty when all is well."""
    problems = []
    for key, value in data.items():
        knob = SCHEMA.get(key)
        if knob is None:
            if key.startswith(_PREFIXES):
                close = difflib.get_close_matches(key, SCHEMA, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append((key, f"unknown knob{hint}"))
            continue
        problem = knob.check(value)
        if problem:
            problems.append((key, problem))
    problems.extend(_cross_checks(data))
    return problems


def _cross_checks(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Combinations that are each valid alone but cannot work together."""
    problems = []
    if data.get("server_runtime") == "triton" and data.get("server_backend") == "openvino":
        problems.append(("server_backend", "openvino is not available with server_runtime=triton"))
    if data.get("python_env") == "conda" and not data.get("miniforge_sha256"):
        problems.append(
            (
                "miniforge_sha256",
                "required with python_env=conda (sha256 of the installer per arch)",
            )
        )
    if (
        data.get("server_runtime", "inferops") == "inferops"
        and data.get("server_backend") == "openvino"
        and not data.get("openvino")
    ):
        problems.append(("openvino", "must be true for server_backend=openvino"))
    if data.get("server_runtime") == "triton" and not data.get("container_toolkit"):
        problems.append(("container_toolkit", "must be true for server_runtime=triton (docker)"))
    if (
        data.get("dcgm_exporter")
        and data.get("dcgm_exporter_mode") == "container"
        and not data.get("container_toolkit")
    ):
        problems.append(("container_toolkit", "must be true for dcgm_exporter_mode=container"))
    if data.get("dcgm_exporter") and data.get("dcgm_exporter_mode") == "binary":
        if not data.get("dcgm_exporter_binary_url") or not data.get("dcgm_exporter_binary_sha256"):
            problems.append(
                (
                    "dcgm_exporter_binary_url",
                    "binary mode needs a URL and dcgm_exporter_binary_sha256",
                )
            )
    return problems


def merged_defaults() -> dict[str, Any]:
    from inferops.deploy.defaults import ALL_DEFAULTS

    return dict(ALL_DEFAULTS)


def problems_text(lines: list[str]) -> str:
    return "invalid inventory data (nothing was changed):\n  " + "\n  ".join(lines)


def fail(lines: list[str]) -> None:
    """Print ``host: key: problem`` lines and exit 2 (config error) - before any change."""
    print("inferops: " + problems_text(lines), file=sys.stderr)
    raise SystemExit(2)


def check_hosts(hosts) -> list[str]:
    """``host: key: problem`` lines for pyinfra Host objects (data fully merged by pyinfra)."""
    lines = []
    for host in hosts:
        data = merged_defaults()
        data.update(host.data.dict())
        lines += [f"{host.name}: {key}: {problem}" for key, problem in validate_data(data)]
    return lines


def check_fleet(groups: dict[str, list], group_data: dict[str, dict]) -> list[str]:
    """Same check from raw inventory pieces, for ``inventory.py`` before pyinfra connects.

    ``groups`` maps group -> ``[(host, host_data), ...]``; ``group_data`` maps
    group -> the dict pyinfra will load from ``group_data/<group>.py``. Every
    group a host belongs to is checked, so a bad value is reported even where
    another group would mask it.
    """
    membership: dict[str, list[str]] = {}
    host_values: dict[str, dict] = {}
    for group, members in groups.items():
        for name, data in members:
            membership.setdefault(name, []).append(group)
            host_values.setdefault(name, {}).update(data or {})
    lines = []
    for name, member_of in membership.items():
        data = merged_defaults()
        data.update(group_data.get("all", {}))
        for group in member_of:
            data.update(group_data.get(group, {}))
        data.update(host_values[name])
        lines += [f"{name}: {key}: {problem}" for key, problem in validate_data(data)]
    return lines


def validate_inventory(inventory=None) -> None:
    """Validate every host of the (current) inventory once per process; exit 2 on problems."""
    if inventory is None:
        from pyinfra import context

        inventory = context.inventory
    if getattr(inventory, "_inferops_validated", False):
        return
    lines = check_hosts(list(inventory))
    if lines:
        fail(lines)
    inventory._inferops_validated = True
