"""Example inference fleet for pyinfra: ``pyinfra inventory.py deploys/cpu_node.py``.

Hosts are data, not code: they come from ``INFEROPS_FLEET=fleet.toml`` (copy
``fleet.example.toml``), or ``INFEROPS_GPU_NODES="h1,h2"`` / ``INFEROPS_CPU_NODES``
/ ``INFEROPS_MONITORING`` / ``INFEROPS_LOADGEN`` / ``INFEROPS_LOADBALANCER`` (+ ``INFEROPS_SSH_USER``...), or a
``fleet.toml`` beside this file. Knobs live in ``group_data/*.py``.

Every host's data is validated here, before pyinfra connects to anything: a bad
value stops the run with ``host: key: problem`` and exit code 2.
"""

from pathlib import Path as _Path

from inferops.deploy import fleet as _fleet
from inferops.deploy import validate as _validate

_HERE = _Path(__file__).resolve().parent


def _load():
    try:
        groups = _fleet.load(default_file=_HERE / "fleet.toml")
    except _fleet.FleetError as exc:
        _validate.fail([str(exc)])
    if not any(groups.values()):
        _validate.fail(
            [
                "no hosts: set INFEROPS_FLEET=fleet.toml (see fleet.example.toml), "
                "INFEROPS_CPU_NODES/INFEROPS_GPU_NODES=h1,h2, or create fleet.toml here"
            ]
        )
    from pyinfra_cli.inventory import _get_group_data

    problems = _validate.check_fleet(groups, _get_group_data(str(_HERE / "group_data")))
    if problems:
        _validate.fail(problems)
    return groups


_groups = _load()

gpu_nodes = _groups["gpu_nodes"]
cpu_nodes = _groups["cpu_nodes"]
monitoring = _groups["monitoring"]
loadgen = _groups["loadgen"]
loadbalancer = _groups["loadbalancer"]
