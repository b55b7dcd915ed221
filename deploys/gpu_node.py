"""GPU inference node: ``pyinfra inventory.py deploys/gpu_node.py``.

base -> NVIDIA driver (reboot only on change) -> CUDA -> container toolkit (optional)
-> Python env (conda by default) + TensorRT/OpenVINO -> inferops server, Triton or vLLM
-> node_exporter + dcgm-exporter. Hosts without an NVIDIA GPU skip the GPU parts
with a message (unless nvidia_driver_force). A second run reports no changes.
"""

from inferops.deploy.validate import validate_inventory

# Before any operation: bad data (also from `--data key=value`) stops here.
validate_inventory()

from inferops.deploy.factbatch import batch_fact_reads  # noqa: E402

# The facts this deploy read last time are read in one SSH command per stage.
batch_fact_reads()

from inferops.deploy.accelerators import accelerators  # noqa: E402
from inferops.deploy.base import base  # noqa: E402
from inferops.deploy.container_toolkit import container_toolkit  # noqa: E402
from inferops.deploy.cuda import cuda  # noqa: E402
from inferops.deploy.dcgm_exporter import dcgm_exporter  # noqa: E402
from inferops.deploy.inference_server import inference_server  # noqa: E402
from inferops.deploy.node_exporter import node_exporter  # noqa: E402
from inferops.deploy.nvidia_driver import nvidia_driver  # noqa: E402
from inferops.deploy.python_env import python_env  # noqa: E402

base()
nvidia_driver()
cuda()
container_toolkit()
python_env()
accelerators()
inference_server()
node_exporter()
dcgm_exporter()
