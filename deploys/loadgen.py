"""Load-generator workers on the ``loadgen`` hosts:
``pyinfra inventory.py deploys/loadgen.py --data loadgen_master_host=10.0.0.5``.

base -> Python venv -> the inferops suite + load-generation stack, and one
``inferops-loadgen-worker@N`` systemd instance per worker (pinned one per CPU by
default), each running ``inferops bench --worker`` against the master. Then, on the
master: ``inferops bench --master --expect-workers K --target URL --rate QPS``.
A second run reports no changes.
"""

from inferops.deploy.validate import validate_inventory

# Before any operation: bad data (also from `--data key=value`) stops here.
validate_inventory()

from inferops.deploy.factbatch import batch_fact_reads  # noqa: E402

# The facts this deploy read last time are read in one SSH command per stage.
batch_fact_reads()

from inferops.deploy.base import base  # noqa: E402
from inferops.deploy.loadgen import loadgen  # noqa: E402
from inferops.deploy.python_env import python_env  # noqa: E402

base()
python_env()
loadgen()
