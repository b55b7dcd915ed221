"""Check every host's data against the schema of every knob BEFORE anything runs.

A wrong type, an unknown value or a misspelt knob stops the run with
``<host>: <key>: <problem>`` and a non-zero exit. It runs twice, both before
any change:

- ``inventory.py`` calls ``check_fleet()`` on the hosts and ``group_data/``
  it defines, so the check fires before pyinfra opens a single SSH connection;
- each ``deploys/*.py`` calls ``validate_inventory()`` at the top, which covers
  other inventories (``pyinfra my_inventory.py deploys/cpu_node.py``).

The schema is derived from the knobs each component declares (``KNOBS``, collected
by ``inferops.deploy.catalog``): one declaration gives the default, the check and
the doc.
"""

from __future__ import annotations

import difflib
import sys
from typing import Any

from inferops.deploy.catalog import ALL_DEFAULTS, KNOBS
from inferops.deploy.server_rules import is_loopback

# The schema is the knob declarations themselves: name -> Knob (default, check, doc).
SCHEMA = KNOBS


def _pyinfra_keys() -> frozenset[str]:
    """Data keys that belong to pyinfra, not to us: connector settings (``ssh_user``,
    ``fake_responses``...) and global operation arguments (``_sudo``...)."""
    import typing

    from pyinfra.api.arguments import all_global_arguments
    from pyinfra.api.connectors import get_all_connectors

    keys = {name for name, _ in all_global_arguments() if name.startswith("_")}
    for connector in get_all_connectors().values():
        data_cls = getattr(connector, "data_cls", None)
        if data_cls is not None:
            keys |= set(typing.get_type_hints(data_cls))
    return frozenset(keys)


_PYINFRA_KEYS: frozenset[str] | None = None


def is_pyinfra_key(key: str) -> bool:
    global _PYINFRA_KEYS
    if _PYINFRA_KEYS is None:
        _PYINFRA_KEYS = _pyinfra_keys()
    return key in _PYINFRA_KEYS


def validate_data(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``[(key, problem)]`` for the given merged data; empty when all is well.

    Any key that is neither a knob nor pyinfra's own is a problem: a misspelt knob
    would otherwise be silently ignored and its default used.
    """
    problems = []
    for key, value in data.items():
        knob = SCHEMA.get(key)
        if knob is None:
            if not is_pyinfra_key(key):
                close = difflib.get_close_matches(key, SCHEMA, n=1, cutoff=0.75)
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
    if data.get("server_runtime") == "triton":
        if not data.get("triton_image"):
            problems.append(
                (
                    "triton_image",
                    "required with server_runtime=triton: pin the image by digest "
                    "(nvcr.io/nvidia/tritonserver:<tag>@sha256:<digest>)",
                )
            )
        bind = data.get("server_bind", "")
        if isinstance(bind, str) and not is_loopback(bind) and not data.get("triton_insecure"):
            problems.append(
                (
                    "server_bind",
                    f"Triton has no authentication: bind 127.0.0.1 (behind your authenticating "
                    f"proxy), or set triton_insecure = true to publish it on {bind}",
                )
            )
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
