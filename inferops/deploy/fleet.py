"""Read the fleet (hosts, groups, SSH settings, per-host knobs) from data, not code.

Sources, first found wins:

1. ``INFEROPS_FLEET=/path/fleet.toml`` (see ``fleet.example.toml``);
2. env vars ``INFEROPS_GPU_NODES="h1,h2"``, ``INFEROPS_CPU_NODES``,
   ``INFEROPS_MONITORING``, ``INFEROPS_LOADGEN``, ``INFEROPS_LOADBALANCER`` with shared SSH settings in
   ``INFEROPS_SSH_USER``, ``INFEROPS_SSH_PORT``, ``INFEROPS_SSH_KEY``,
   ``INFEROPS_SSH_KNOWN_HOSTS``, ``INFEROPS_SUDO=1``;
3. ``fleet.toml`` next to ``inventory.py``.

The result is pyinfra's inventory shape: ``{group: [(name, data), ...]}``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GROUPS = ("gpu_nodes", "cpu_nodes", "monitoring", "loadgen", "loadbalancer")
_ENV_GROUPS = {
    "INFEROPS_GPU_NODES": "gpu_nodes",
    "INFEROPS_CPU_NODES": "cpu_nodes",
    "INFEROPS_MONITORING": "monitoring",
    "INFEROPS_LOADGEN": "loadgen",
    "INFEROPS_LOADBALANCER": "loadbalancer",
}

# Fleet fields -> pyinfra host data keys.
_SSH_FIELDS = {
    "address": "ssh_hostname",
    "ssh_user": "ssh_user",
    "ssh_port": "ssh_port",
    "ssh_key": "ssh_key",
    "ssh_key_password": "ssh_key_password",
    "ssh_known_hosts_file": "ssh_known_hosts_file",
    "ssh_strict_host_key_checking": "ssh_strict_host_key_checking",
    "ssh_config_file": "ssh_config_file",
    "ssh_connect_retries": "ssh_connect_retries",
    "sudo": "_sudo",
}
_HOST_FIELDS = {"name", "groups", "data", *_SSH_FIELDS}
_STRICT = ("yes", "no", "accept-new", "off", "ask")


class FleetError(ValueError):
    """A problem in the fleet file/env: the message names the place and the field."""


def _ssh_data(fields: dict[str, Any], where: str) -> dict[str, Any]:
    data = {}
    for field, value in fields.items():
        if field not in _SSH_FIELDS:
            continue
        if field == "ssh_port" and (isinstance(value, bool) or not isinstance(value, int)):
            raise FleetError(f"{where}: ssh_port: expected an integer, got {value!r}")
        if field == "sudo" and not isinstance(value, bool):
            raise FleetError(f"{where}: sudo: expected true/false, got {value!r}")
        if field == "ssh_strict_host_key_checking" and value not in _STRICT:
            raise FleetError(
                f"{where}: ssh_strict_host_key_checking: unknown value {value!r}; "
                f"allowed: {', '.join(_STRICT)}"
            )
        if field in ("ssh_key", "ssh_known_hosts_file", "ssh_config_file"):
            value = os.path.expanduser(str(value))
        data[_SSH_FIELDS[field]] = value
    return data


def _knobs(fields: dict[str, Any], where: str) -> dict[str, Any]:
    data = fields.get("data", {})
    if not isinstance(data, dict):
        raise FleetError(
            f"{where}: data: expected a table of knobs, got {type(data).__name__} {data!r}"
        )
    return data


def parse_fleet(doc: dict[str, Any], source: str = "fleet") -> dict[str, list]:
    """``{"defaults": {...}, "hosts": [{name, groups, address, ssh_*, sudo, data}]}`` ->
    ``{group: [(name, data)]}``."""
    unknown_top = set(doc) - {"defaults", "hosts"}
    if unknown_top:
        raise FleetError(f"{source}: unknown section(s) {sorted(unknown_top)}; use defaults/hosts")
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise FleetError(f"{source}: defaults: expected a table")
    bad = set(defaults) - (_HOST_FIELDS - {"name", "groups", "address"})
    if bad:
        raise FleetError(f"{source}: defaults: unknown field(s) {sorted(bad)}")
    shared_knobs = _knobs(defaults, f"{source}: defaults")
    hosts = doc.get("hosts", [])
    if not isinstance(hosts, list):
        raise FleetError(f"{source}: hosts: expected an array of tables ([[hosts]])")
    groups: dict[str, list] = {group: [] for group in GROUPS}
    seen = set()
    for index, entry in enumerate(hosts):
        where = f"{source}: hosts[{index}]"
        if not isinstance(entry, dict):
            raise FleetError(f"{where}: expected a table")
        unknown = set(entry) - _HOST_FIELDS
        if unknown:
            raise FleetError(f"{where}: unknown field(s) {sorted(unknown)}")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise FleetError(f"{where}: name: required string")
        where = f"{source}: host {name}"
        if name in seen:
            raise FleetError(f"{where}: listed twice")
        seen.add(name)
        member_of = entry.get("groups")
        if not isinstance(member_of, list) or not member_of:
            raise FleetError(f"{where}: groups: required list, some of {', '.join(GROUPS)}")
        for group in member_of:
            if group not in GROUPS:
                raise FleetError(
                    f"{where}: groups: unknown group {group!r}; allowed: {', '.join(GROUPS)}"
                )
        knobs = {**shared_knobs, **_knobs(entry, where)}
        data = {
            **_ssh_data(defaults, f"{source}: defaults"),
            **_ssh_data(entry, where),
            **knobs,
        }
        for group in member_of:
            groups[group].append((name, data))
    return groups


def from_env(env: dict[str, str]) -> dict[str, list] | None:
    """Groups from ``INFEROPS_*_NODES`` style variables, or None when none is set."""
    if not any(env.get(var) for var in _ENV_GROUPS):
        return None
    shared: dict[str, Any] = {}
    if env.get("INFEROPS_SSH_USER"):
        shared["ssh_user"] = env["INFEROPS_SSH_USER"]
    if env.get("INFEROPS_SSH_PORT"):
        try:
            shared["ssh_port"] = int(env["INFEROPS_SSH_PORT"])
        except ValueError:
            raise FleetError(
                f"INFEROPS_SSH_PORT: expected an integer, got {env['INFEROPS_SSH_PORT']!r}"
            ) from None
    if env.get("INFEROPS_SSH_KEY"):
        shared["ssh_key"] = env["INFEROPS_SSH_KEY"]
    if env.get("INFEROPS_SSH_KNOWN_HOSTS"):
        shared["ssh_known_hosts_file"] = env["INFEROPS_SSH_KNOWN_HOSTS"]
    if env.get("INFEROPS_SUDO"):
        shared["sudo"] = env["INFEROPS_SUDO"] not in ("0", "false", "no")
    hosts: dict[str, dict] = {}
    for var, group in _ENV_GROUPS.items():
        for name in filter(None, (n.strip() for n in env.get(var, "").split(","))):
            hosts.setdefault(name, {"name": name, "groups": []})["groups"].append(group)
    return parse_fleet({"defaults": shared, "hosts": list(hosts.values())}, "environment")


def load(env: dict[str, str] | None = None, default_file: Path | None = None) -> dict[str, list]:
    """The fleet from the first source found (see module doc)."""
    env = dict(os.environ if env is None else env)
    path = env.get("INFEROPS_FLEET")
    if path:
        return load_file(Path(path))
    groups = from_env(env)
    if groups is not None:
        return groups
    if default_file is not None and default_file.is_file():
        return load_file(default_file)
    return {group: [] for group in GROUPS}


def load_file(path: Path) -> dict[str, list]:
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FleetError(f"{path}: no such fleet file (INFEROPS_FLEET)") from None
    except tomllib.TOMLDecodeError as exc:
        raise FleetError(f"{path}: not valid TOML: {exc}") from None
    return parse_fleet(doc, str(path))
