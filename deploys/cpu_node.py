"""CPU inference node: ``pyinfra inventory.py deploys/cpu_node.py``.

base -> Python venv (+ OpenVINO if enabled) -> inferops server (systemd) -> node_exporter.
A second run reports no changes.
"""

from inferops.deploy.validate import validate_inventory

# Before any operation: bad data (also from `--data key=value`) stops here.
validate_inventory()

from inferops.deploy.factbatch import batch_fact_reads  # noqa: E402

# The facts this deploy read last time are read in one SSH command per stage.
batch_fact_reads()

from inferops.deploy.accelerators import accelerators  # noqa: E402
from inferops.deploy.base import base  # noqa: E402
from inferops.deploy.inference_server import inference_server  # noqa: E402
from inferops.deploy.node_exporter import node_exporter  # noqa: E402
from inferops.deploy.python_env import python_env  # noqa: E402

base()
python_env()
accelerators()
inference_server()
node_exporter()
