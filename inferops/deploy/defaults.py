"""Every component's DEFAULTS merged: the value a knob has when no data sets it."""

from __future__ import annotations

from inferops.deploy import (
    accelerators,
    base,
    inference_server,
    node_exporter,
    python_env,
)

COMPONENTS = (base, python_env, accelerators, inference_server, node_exporter)

ALL_DEFAULTS: dict = {}
for _component in COMPONENTS:
    ALL_DEFAULTS.update(_component.DEFAULTS)
