"""``inferops history``: the results store.

    inferops history [--json]                 list stored runs
    inferops history import RUN_DIR...        store existing run folders
    inferops history report --out FILE        render the trend report (HTML)

The store is ``--store`` (a path or postgresql:// URL), else $INFEROPS_HISTORY,
else ``.inferops/history.sqlite``.
"""

from __future__ import annotations

import argparse
import json


def _store_arg(parser: argparse.ArgumentParser, *, sub: bool = False) -> None:
    # on a sub-action, only set when given, so it never hides `history --store X ACTION`
    extra = {"default": argparse.SUPPRESS} if sub else {}
    parser.add_argument(
        "--store",
        metavar="PATH|URL",
        **extra,
        help="results store (default $INFEROPS_HISTORY or .inferops/history.sqlite)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _store_arg(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable list")
    parser.add_argument("--scenario", help="only this scenario")
    parser.add_argument("--profile", help="only this profile")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    imp = sub.add_parser("import", help="store run folders", description="store run folders")
    imp.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders to store")
    imp.add_argument("--scenario", dest="import_scenario", help="scenario key (default: derived)")
    imp.add_argument("--profile", dest="import_profile", help="profile (default: the manifest's)")
    _store_arg(imp, sub=True)
    rep = sub.add_parser(
        "report", help="render the trend report", description="render the trend report"
    )
    rep.add_argument("--out", required=True, metavar="FILE", help="HTML file to write")
    rep.add_argument(
        "--min-effect", default="5%", metavar="PCT", help="baseline band (default 5%%)"
    )
    _store_arg(rep, sub=True)


def _location(args) -> str | None:
    return getattr(args, "store", None)


def run(args: argparse.Namespace) -> int:
    from inferops.history.store import default_location, open_store

    location = _location(args) or default_location()
    if args.action == "import":
        from inferops.history.runsource import load_run

        loaded = [load_run(path) for path in args.runs]  # all checked before anything is stored
        added = 0
        with open_store(location, write=True) as store:
            for run_data in loaded:
                run_id, new = store.add_run(
                    run_data, scenario=args.import_scenario, profile=args.import_profile
                )
                added += new
                state = "stored" if new else "already stored"
                print(f"#{run_id} {state}: {run_data.source}")
            where = store.location
        print(f"stored {added} new run{'s' if added != 1 else ''} in {where}")
        return 0
    if args.action == "report":
        from inferops.history.refs import parse_fraction
        from inferops.history.trend import write_report

        min_effect = parse_fraction(args.min_effect, name="--min-effect")
        with open_store(location) as store:
            out = write_report(store, args.out, min_effect=min_effect)
        print(f"wrote {out}")
        return 0
    with open_store(location) as store:
        runs = store.runs(args.scenario, args.profile)
        baselines = set(store.baselines().values())
        where = store.location
    if args.json:
        print(
            json.dumps(
                {
                    "store": where,
                    "runs": [{**run.__dict__, "baseline": run.id in baselines} for run in runs],
                },
                indent=2,
            )
        )
        return 0
    header = f"{'run':>6}  {'started':<20} {'scenario':<34} {'profile':<14} {'P99 ms':>9} {'max QPS':>9}  {'git':<8} valid"
    print(header)
    print("-" * len(header))
    for run in runs:
        p99, qps = run.metrics.get("latency_p99_ms"), run.metrics.get("max_qps")
        mark = "*" if run.id in baselines else " "
        print(
            f"{mark}#{run.id:<4}  {run.started_at:<20} {run.scenario[:34]:<34} {run.profile[:14]:<14}"
            f" {'-' if p99 is None else f'{p99:.4g}':>9} {'-' if qps is None else f'{qps:.4g}':>9}"
            f"  {(run.git_sha or '-')[:8]:<8} {'yes' if run.valid else 'no'}"
        )
    print(f"{len(runs)} run{'s' if len(runs) != 1 else ''} in {where} (* = baseline)")
    return 0
