"""Load balancer: ``pyinfra inventory.py deploys/loadbalancer.py`` (the ``loadbalancer`` group).

base -> nginx in front of the inventory's ``gpu_nodes``/``cpu_nodes`` (least_conn,
keepalive, passive health checks, per-host ``lb_weights``; checked by ``nginx -t``
before a reload) -> node_exporter. A second run reports no changes.

The release engine drains and shifts traffic with
``pyinfra -y inventory.py deploys/loadbalancer.py --limit loadbalancer
--data 'lb_weights={"cpu-1": 0, "cpu-2": 1}'`` (weight 0: the host is ``down``).
"""

from inferops.deploy.validate import validate_inventory

# Before any operation: bad data (also from `--data key=value`) stops here.
validate_inventory()

from inferops.deploy.factbatch import batch_fact_reads  # noqa: E402

# The facts this deploy read last time are read in one SSH command per stage.
batch_fact_reads()

from inferops.deploy.base import base  # noqa: E402
from inferops.deploy.loadbalancer import loadbalancer  # noqa: E402
from inferops.deploy.node_exporter import node_exporter  # noqa: E402

base()
loadbalancer()
node_exporter()
