"""Monitoring: Prometheus, Alertmanager and Grafana files rendered from the inventory,
``thresholds.toml`` and measured capacity (``inferops monitoring render``).

- ``metricnames``: every metric and job name the rules and dashboards use, in one place;
- ``promfmt``: Prometheus durations and Go template ``humanize*`` twins (for rule tests);
- ``targets``: scrape targets read from the pyinfra inventory;
- ``capacity``: the measured max QPS at the SLO, read from a sweep's run folder;
- ``rules`` / ``ruletests``: recording and alert rules, and their ``promtool`` unit tests;
- ``dashboards``: Grafana dashboards built in code;
- ``configs``: ``prometheus.yml``, ``alertmanager.yml`` and Grafana provisioning;
- ``render``: writes them all into one folder, atomically.
"""
