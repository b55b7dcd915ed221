"""Every component's DEFAULTS merged: the value a knob has when no data sets it."""

from __future__ import annotations

from inferops.deploy import (
    accelerators,
    base,
    container_toolkit,
    cuda,
    dcgm_exporter,
    inference_server,
    node_exporter,
    nvidia_driver,
    nvidia_repos,
    python_env,
)

# In deploy order (gpu_node.py); group_data/all.py documents them in this order too.
COMPONENTS = (
    base,
    nvidia_repos,
    nvidia_driver,
    cuda,
    container_toolkit,
    python_env,
    accelerators,
    inference_server,
    node_exporter,
    dcgm_exporter,
)

ALL_DEFAULTS: dict = {}
for _component in COMPONENTS:
    ALL_DEFAULTS.update(_component.DEFAULTS)
