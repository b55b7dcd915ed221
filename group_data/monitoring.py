"""Knobs for monitoring hosts (deploys/monitoring.py: Prometheus, Alertmanager, Grafana,
node_exporter). See group_data/all.py for all knobs; e.g. to use Grafana:

grafana_gpg_key_sha256 = "<sha256 of https://apt.grafana.com/gpg.key>"

or to leave it out:

grafana = False
"""
