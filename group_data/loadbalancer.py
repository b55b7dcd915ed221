"""Knobs for load-balancer hosts (``deploys/loadbalancer.py``: nginx in front of the
inference hosts); see group_data/all.py (section ``loadbalancer``) for all knobs."""
