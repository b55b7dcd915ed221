"""``inferops monitoring``: Prometheus, Alertmanager and Grafana files for the fleet.

    inferops monitoring render --out monitoring/ --inventory inventory.py \\
        --thresholds thresholds.toml --capacity runs/cpu-sweep --webhook http://hooks/alert

See docs/monitoring.md for every file, rule and knob.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from inferops.exitcodes import UsageError

_PAIR = re.compile(r"^([A-Za-z][A-Za-z0-9]*)=(.+)$")
_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(
        dest="monitoring_command", metavar="ACTION", required=True, parser_class=type(parser)
    )
    render = sub.add_parser(
        "render",
        help="write prometheus.yml, rules (+ promtool tests), alertmanager.yml, Grafana files",
        description="Render the monitoring files from the inventory, thresholds.toml and "
        "measured capacity.",
    )
    render.add_argument("--out", type=Path, required=True, help="folder to write (replaced whole)")
    render.add_argument(
        "--inventory", type=Path, help="pyinfra inventory (default: this machine, 127.0.0.1)"
    )
    render.add_argument(
        "--thresholds", type=Path, help="thresholds.toml (default: the built-in seed table)"
    )
    render.add_argument(
        "--capacity",
        nargs="+",
        action="extend",
        default=[],
        metavar="RUN_DIR",
        help="run folder(s) of `inferops bench --sweep`: alert before measured capacity",
    )
    render.add_argument(
        "--headroom",
        type=float,
        default=0.2,
        help="capacity alert fires above (1 - headroom) x max QPS at the SLO (default 0.2)",
    )
    render.add_argument("--scrape-interval", default="15s", help="default 15s")
    render.add_argument("--scrape-timeout", help="default: Prometheus's (10s, or the interval)")
    render.add_argument("--evaluation-interval", default="15s", help="default 15s")
    render.add_argument(
        "--rate-window", default="5m", help="window of every rate() and quantile (default 5m)"
    )
    render.add_argument(
        "--for",
        dest="for_",
        action="append",
        default=[],
        metavar="ALERT=DURATION",
        help="how long a condition must hold before ALERT fires (repeatable)",
    )
    render.add_argument(
        "--severity",
        action="append",
        default=[],
        metavar="ALERT=LEVEL",
        help="critical, warning or info for ALERT (repeatable)",
    )
    render.add_argument(
        "--alertmanager",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="Alertmanager(s) Prometheus sends to (default: each monitoring host :9093)",
    )
    render.add_argument(
        "--webhook", action="append", default=[], metavar="URL", help="Alertmanager webhook"
    )
    render.add_argument("--group-wait", default="30s", help="Alertmanager group_wait (30s)")
    render.add_argument("--group-interval", default="5m", help="Alertmanager group_interval (5m)")
    render.add_argument("--repeat-interval", default="4h", help="Alertmanager repeat_interval (4h)")
    render.add_argument(
        "--prometheus-url", help="Grafana's datasource URL (default: first monitoring host :9090)"
    )
    render.add_argument(
        "--dashboards-path",
        default="/var/lib/grafana/dashboards/inferops",
        help="where Grafana reads the dashboards on the monitoring host",
    )
    render.add_argument(
        "--runbook-base",
        default="docs/monitoring.md",
        help="runbook link base in every alert (e.g. your forge's URL of docs/monitoring.md)",
    )


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        match = _PAIR.match(value)
        if not match:
            raise UsageError(f"{flag} {value!r}: expected ALERT=VALUE")
        pairs[match.group(1)] = match.group(2)
    return pairs


def _url(value: str, flag: str) -> str:
    if not re.match(r"^https?://\S+$", value):
        raise UsageError(f"{flag} {value!r}: expected an http(s):// URL")
    return value


def run(args: argparse.Namespace) -> int:
    from inferops import thresholds
    from inferops.monitoring import configs
    from inferops.monitoring.capacity import read_capacity
    from inferops.monitoring.promfmt import duration_knob, seconds
    from inferops.monitoring.render import render
    from inferops.monitoring.rules import Knobs
    from inferops.monitoring.targets import (
        LOCALHOST,
        default_alertmanagers,
        default_prometheus_url,
        read_inventory,
    )

    scrape = duration_knob(args.scrape_interval, name="--scrape-interval", minimum=0.001)
    evaluation = duration_knob(
        args.evaluation_interval, name="--evaluation-interval", minimum=0.001
    )
    window = duration_knob(args.rate_window, name="--rate-window", minimum=0.001)
    timeout = None
    if args.scrape_timeout:
        timeout = duration_knob(args.scrape_timeout, name="--scrape-timeout", minimum=0.001)
        if seconds(timeout) > seconds(scrape):
            raise UsageError("--scrape-timeout: must not exceed --scrape-interval")
    if seconds(window) < 2 * seconds(scrape):
        raise UsageError(
            f"--rate-window {window}: must cover at least two scrapes "
            f"(2 x --scrape-interval = {2 * seconds(scrape):g}s), or rate() has nothing to use"
        )
    for_ = {
        name: duration_knob(value, name=f"--for {name}")
        for name, value in _pairs(args.for_, "--for").items()
    }
    alertmanagers = []
    for value in args.alertmanager:
        if not _HOSTPORT.match(value):
            raise UsageError(f"--alertmanager {value!r}: expected HOST:PORT")
        alertmanagers.append(value)
    webhooks = tuple(_url(u, "--webhook") for u in args.webhook)

    limits = thresholds.load(args.thresholds)  # the one read of thresholds.toml
    capacities = [read_capacity(run_dir) for run_dir in args.capacity]
    if args.inventory:
        from inferops.deploy.catalog import ALL_DEFAULTS

        hosts = read_inventory(args.inventory, ALL_DEFAULTS)
    else:
        hosts = [LOCALHOST]
    alertmanagers = alertmanagers or default_alertmanagers(hosts)
    knobs = Knobs(
        rate_window=window,
        headroom=args.headroom,
        for_=for_,
        severity=_pairs(args.severity, "--severity"),
        runbook_base=args.runbook_base,
    )
    config_knobs = configs.ConfigKnobs(
        scrape_interval=scrape,
        evaluation_interval=evaluation,
        scrape_timeout=timeout,
        webhooks=webhooks,
        group_wait=duration_knob(args.group_wait, name="--group-wait"),
        group_interval=duration_knob(args.group_interval, name="--group-interval", minimum=0.001),
        repeat_interval=duration_knob(
            args.repeat_interval, name="--repeat-interval", minimum=0.001
        ),
        prometheus_url=_url(args.prometheus_url, "--prometheus-url")
        if args.prometheus_url
        else default_prometheus_url(hosts),
        dashboards_path=args.dashboards_path,
    )
    result = render(
        args.out,
        hosts=hosts,
        limits=limits,
        capacities=capacities,
        knobs=knobs,
        config_knobs=config_knobs,
        alertmanagers=alertmanagers,
    )
    for note in result.notes:
        print(f"inferops monitoring: note: {note}", file=sys.stderr)
    print(f"wrote {len(result.files)} files to {result.out}")
    return 0
