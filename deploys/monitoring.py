"""Monitoring host: ``pyinfra inventory.py deploys/monitoring.py`` (the ``monitoring`` group).

base -> Prometheus + Alertmanager (configuration rendered from this inventory and
thresholds.toml, checked by promtool on the host before it is swapped in) -> Grafana
(apt.grafana.com, provisioned from files; ``grafana = false`` leaves it out) ->
node_exporter. A second run reports no changes.
"""

from inferops.deploy.validate import validate_inventory

# Before any operation: bad data (also from `--data key=value`) stops here.
validate_inventory()

from inferops.deploy.factbatch import batch_fact_reads  # noqa: E402

# The facts this deploy read last time are read in one SSH command per stage.
batch_fact_reads()

from inferops.deploy.base import base  # noqa: E402
from inferops.deploy.grafana import grafana  # noqa: E402
from inferops.deploy.knobs import knob  # noqa: E402
from inferops.deploy.node_exporter import node_exporter  # noqa: E402
from inferops.deploy.prometheus import prometheus  # noqa: E402

base()
prometheus()
if knob("grafana"):
    grafana()
node_exporter()
