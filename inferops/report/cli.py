"""``inferops report RUN_DIR... --out FILE.html``: the hardware-sizing report.

Reads one or more run folders (one per hardware profile or configuration),
sizes a fleet for ``--target-qps`` at the P99 SLO, prices it from
``hardware.toml`` and writes one self-contained HTML file. Exit 0 when the
report was written (even if it shows a breach: the report is the message);
exit 2 for a bad run folder, bad catalogue, or runs with different SLOs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from inferops import validators
from inferops.exitcodes import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs",
        nargs="*",
        metavar="RUN_DIR",
        help="run folders written by `inferops bench` (one per profile)",
    )
    parser.add_argument(
        "--history",
        action="store_true",
        help="render the nightly trend report from the results store instead "
        "(same as `inferops history report`)",
    )
    parser.add_argument(
        "--store",
        metavar="PATH|URL",
        help="with --history: the results store (default: $INFEROPS_HISTORY, "
        "else .inferops/history.sqlite)",
    )
    parser.add_argument(
        "--min-effect",
        default="5%",
        metavar="PCT",
        help="with --history: the baseline band (default 5%%)",
    )
    parser.add_argument("--out", required=True, metavar="FILE.html", help="report file to write")
    parser.add_argument(
        "--catalog",
        metavar="TOML",
        default=None,
        help="hardware price/power catalogue (default: hardware.toml in the repo)",
    )
    parser.add_argument(
        "--target-qps",
        type=validators.positive,
        metavar="X",
        help="throughput the fleet must carry, req/s (default: thresholds min_qps)",
    )
    parser.add_argument(
        "--slo-p99-ms",
        type=validators.positive,
        metavar="Y",
        help="P99 SLO in ms (default: the sweep's SLO, else thresholds p99)",
    )
    parser.add_argument(
        "--headroom",
        type=validators.fraction,
        metavar="H",
        help="fraction of each node kept free, 0..1 "
        "(default: 1 - max_cpu_percent/100 from the thresholds)",
    )
    parser.add_argument(
        "--thresholds",
        metavar="FILE",
        help="thresholds.toml for headroom and target defaults "
        "(default: the thresholds recorded in the run's manifest)",
    )


def write_report(runs: list, options, out: str | Path) -> Path:
    """The pipeline after reading: analyse the runs, then render the facts into ``out``."""
    from inferops.report.analysis import analyse
    from inferops.report.render import write_html

    return write_html(analyse(runs, options), runs, out)


def run(args: argparse.Namespace) -> int:
    from inferops.report import catalog as catalog_mod
    from inferops.report.analysis import Options
    from inferops.report.runs import load_runs

    out = Path(args.out)
    if args.history:
        if args.runs:
            raise UsageError("--history reads the results store; give no RUN_DIR with it")
        from inferops.history import history_cli

        args.action = "report"
        return history_cli.run(args)
    if not args.runs:
        raise UsageError("give one or more RUN_DIR, or --history for the trend report")
    if out.exists() and out.is_dir():
        raise UsageError(f"--out {out} is a directory; give a file name like {out}/index.html")
    catalog_path = Path(args.catalog) if args.catalog else catalog_mod.DEFAULT_PATH
    entries = catalog_mod.load(catalog_path)
    runs = load_runs(args.runs)
    options = Options(
        target_qps=args.target_qps,
        slo_p99_ms=args.slo_p99_ms,
        headroom=args.headroom,
        thresholds_path=args.thresholds,
        catalog=entries,
        catalog_source=str(catalog_path),
    )
    written = write_report(runs, options, out)
    print(f"report written to {written.resolve()}")
    return 0
