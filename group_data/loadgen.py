"""Knobs for load-generator hosts (Locust). Only node_exporter is provisioned by this
issue's deploys. See group_data/all.py for all knobs."""
