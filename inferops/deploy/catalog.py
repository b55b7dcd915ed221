"""Every knob, in deploy order: the one list that validation, the merged defaults and the
documented ``group_data/all.py`` are derived from.

Nothing imports this module from below: components declare their own knobs
(``KNOBS``), and only ``validate`` (and tooling) looks at all of them at once.

``python -m inferops.deploy.catalog`` rewrites ``group_data/all.py``;
``--check`` exits 1 when the file is stale (``tests/deploy`` does the same).
"""

from __future__ import annotations

import argparse
import pprint
import sys
import textwrap
from pathlib import Path
from typing import Any

from inferops.deploy import (
    accelerators,
    base,
    common,
    container_toolkit,
    cuda,
    dcgm_exporter,
    gpu,
    grafana,
    inference_server,
    layout,
    loadbalancer,
    loadgen,
    monitoring_files,
    nightly,
    node_exporter,
    nvidia_driver,
    nvidia_repos,
    prometheus,
    python_env,
    suite,
    vllm_server,
)
from inferops.deploy.knobs import Knob

# Shared modules first, then components in deploy order (deploys/gpu_node.py, then
# deploys/nightly.py's, deploys/loadgen.py's, deploys/monitoring.py's and
# deploys/loadbalancer.py's own components); group_data/all.py documents them in this order.
COMPONENTS = (
    common,
    layout,
    gpu,
    suite,
    base,
    nvidia_repos,
    nvidia_driver,
    cuda,
    container_toolkit,
    python_env,
    accelerators,
    inference_server,
    vllm_server,
    node_exporter,
    dcgm_exporter,
    nightly,
    loadgen,
    monitoring_files,
    prometheus,
    grafana,
    loadbalancer,
)

KNOBS: dict[str, Knob] = {item.name: item for module in COMPONENTS for item in module.KNOBS}
ALL_DEFAULTS: dict[str, Any] = {name: item.default for name, item in KNOBS.items()}

ALL_PY = Path(__file__).resolve().parents[2] / "group_data" / "all.py"

_HEADER = '''\
"""Knobs for every host. Each line below is a knob at its default (commented out):
uncomment and change it here, in group_data/<group>.py, or per host in the fleet file.

Precedence (pyinfra): fleet host data > group_data/<group>.py > this file > component DEFAULTS.
Every value is validated (type, allowed values) before pyinfra connects: see
inferops/deploy/validate.py and docs/provisioning.md.

GENERATED from the knob declarations (KNOBS in inferops/deploy/*.py) by
`python -m inferops.deploy.catalog`: edit those, not these comments.
"""
'''


def _section_name(module) -> str:
    return module.__name__.rsplit(".", 1)[1]


def _value_lines(item: Knob) -> list[str]:
    head = f"# {item.name} = "
    text = pprint.pformat(item.default, width=99 - len(head), sort_dicts=False)
    first, *rest = text.splitlines()
    return [head + first] + ["#     " + line.lstrip() for line in rest]


def render_all_py() -> str:
    """The text of ``group_data/all.py``: every knob's doc, allowed values and default."""
    out = [_HEADER]
    for module in COMPONENTS:
        out.append(f"\n# ---- {_section_name(module)} ----")
        for item in module.KNOBS:
            doc = item.doc
            if item.choices:
                doc += " (" + " | ".join(repr(c) for c in item.choices) + ")"
            out += ["# " + line for line in textwrap.wrap(doc, 97)]
            out += _value_lines(item)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inferops.deploy.catalog")
    parser.add_argument("--check", action="store_true", help="exit 1 if all.py is stale")
    args = parser.parse_args(argv)
    text = render_all_py()
    if args.check:
        if ALL_PY.read_text() != text:
            print(f"{ALL_PY} is stale: run python -m inferops.deploy.catalog", file=sys.stderr)
            return 1
        print(f"{ALL_PY} is current")
        return 0
    tmp = ALL_PY.with_suffix(".py.tmp")
    tmp.write_text(text)
    tmp.replace(ALL_PY)
    print(f"wrote {ALL_PY}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
