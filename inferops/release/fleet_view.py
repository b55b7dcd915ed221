"""What a rollout needs to know about the fleet, read from the user's pyinfra inventory.

The inventory is loaded exactly as ``pyinfra`` loads it (``pyinfra_cli``'s own
loader, with ``group_data/`` beside it), so the hosts, their addresses, ports,
tokens and served model name are the ones the deploys use. The version each node
serves is a fact read on the node (``model_store.ModelVersions``) with the real
``pyinfra ... fact`` command, not a guess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from inferops.exitcodes import InferopsError, UsageError

INFERENCE_GROUPS = ("gpu_nodes", "cpu_nodes")
LB_GROUP = "loadbalancer"


@dataclass(frozen=True)
class Node:
    name: str
    url: str
    token_file: str | None  # on the control machine; None for a loopback-only server


@dataclass(frozen=True)
class FleetView:
    inventory: str
    nodes: list[Node]
    lb_name: str
    lb_url: str
    lb_token_file: str | None
    model_name: str

    @property
    def store(self) -> str:
        from inferops.deploy.layout import MODEL_STORE

        return f"{MODEL_STORE}/{self.model_name}"


def _address(host) -> str:
    return str(host.data.get("ssh_hostname") or host.name)


def _url(address: str, port: int) -> str:
    return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"


def _token_file(host) -> str | None:
    from inferops.deploy.server_rules import is_loopback

    if is_loopback(str(host.data.get("server_bind") or "0.0.0.0")):
        return None
    name = str(host.data.get("server_token_name") or host.name).replace("/", "_")
    given = host.data.get("server_token_dir")
    if given:
        return str(Path(os.path.expanduser(given)).resolve() / name)
    root = Path(os.environ.get("INFEROPS_STATE_DIR", ".inferops")).resolve()
    return str(root / "tokens" / name)


def _served_name(host) -> str:
    data = host.data
    path = data.get("server_model_path")
    return str(data.get("server_model_name") or (Path(path).stem if path else None) or
               data.get("server_model") or "mlp")  # fmt: skip


def load(inventory: str) -> FleetView:
    """The inference nodes behind the load balancer, and the balancer, from ``inventory``."""
    path = Path(inventory)
    if not path.is_file():
        raise UsageError(f"--inventory: no such file: {inventory}")
    # pyinfra_cli gevent-patches the process it is imported into: only here, in the CLI
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    try:
        with ctx_state.use(State()):
            inv = make_inventory(str(path), cwd=str(path.resolve().parent))
    except SystemExit:
        raise  # the repo's inventory.py already printed its "host: key: problem" lines
    except Exception as exc:  # pyinfra raises CliError/TypeError/... for a bad inventory
        raise UsageError(f"--inventory {inventory}: cannot load it: {exc}") from None
    balancers = list(inv.get_group(LB_GROUP, [])) if LB_GROUP in inv.groups else []
    if len(balancers) != 1:
        raise UsageError(
            f"--inventory {inventory}: a rollout needs exactly one host in the "
            f"{LB_GROUP!r} group (deploys/loadbalancer.py), found {len(balancers)}"
        )
    lb = balancers[0]
    groups = lb.data.get("lb_upstream_groups") or list(INFERENCE_GROUPS)
    hosts = []
    for group in groups:
        for host in inv.get_group(group, []) if group in inv.groups else []:
            if host not in hosts:
                hosts.append(host)
    if len(hosts) < 2:
        raise UsageError(
            f"--inventory {inventory}: a canary rollout needs at least 2 inference hosts "
            f"behind the load balancer (groups {', '.join(groups)}), found {len(hosts)}"
        )
    names = {_served_name(h) for h in hosts}
    if len(names) != 1:
        raise UsageError(
            f"--inventory {inventory}: the nodes serve different model names "
            f"({', '.join(sorted(names))}); a rollout replaces one model everywhere"
        )
    tokens = {_token_file(h) for h in hosts}
    nodes = [Node(h.name, _url(_address(h), int(h.data.get("server_port") or 8000)),
                  _token_file(h)) for h in hosts]  # fmt: skip
    listen = str(lb.data.get("lb_listen") or "0.0.0.0:80")
    port = int(listen.rsplit(":", 1)[1])
    # the balancer passes the bearer token through: behind it every node shares one
    lb_token = next(iter(tokens)) if len(tokens) == 1 else None
    return FleetView(str(path), nodes, lb.name, _url(_address(lb), port), lb_token, names.pop())


def _fact_json(output: str) -> dict:
    """The JSON object ``pyinfra ... fact`` prints (on stderr) after its progress lines."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "{"), None)
    if start is None:
        raise ValueError("no JSON in pyinfra's output")
    end = max(i for i, line in enumerate(lines) if line.strip() == "}")
    return json.loads("\n".join(lines[start : end + 1]))


def served_versions(view: FleetView, timeout: float = 300) -> dict[str, str | None]:
    """``{node: the version directory its current link points at}`` read on every node."""
    limits = [arg for n in view.nodes for arg in ("--limit", n.name)]
    cmd = [
        sys.executable, "-m", "pyinfra", "-y", view.inventory, *limits,
        "fact", "inferops.deploy.model_store.ModelVersions", f"path={view.store}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise InferopsError(f"cannot read the served model versions: {tail[0]}")
    try:
        facts = _fact_json(proc.stdout + proc.stderr)
    except ValueError as exc:
        raise InferopsError(f"cannot read the served model versions: {exc}") from None
    return {n.name: (facts.get(n.name) or {}).get("current") for n in view.nodes}
