"""Knobs for monitoring hosts. This issue only puts node_exporter on them; the
Prometheus/Grafana side is provisioned elsewhere. See group_data/all.py for all knobs."""
