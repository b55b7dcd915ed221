"""Nightly regression runs on a loadgen or controller host:
``pyinfra inventory.py deploys/nightly.py --data nightly_config=nightly.toml``.

base -> Python venv -> the inferops suite + load-generation stack, nightly.toml, and the
inferops-nightly service + timer (systemd). A second run reports no changes.
"""

from inferops.deploy.validate import validate_inventory

# Before any operation: bad data (also from `--data key=value`) stops here.
validate_inventory()

from inferops.deploy.factbatch import batch_fact_reads  # noqa: E402

# The facts this deploy read last time are read in one SSH command per stage.
batch_fact_reads()

from inferops.deploy.base import base  # noqa: E402
from inferops.deploy.nightly import nightly  # noqa: E402
from inferops.deploy.python_env import python_env  # noqa: E402

base()
python_env()
nightly()
