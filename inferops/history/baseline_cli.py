"""``inferops baseline``: the run each nightly comparison is made against.

    inferops baseline set RUN|latest [--scenario S] [--profile P]
    inferops baseline show [--json]

RUN is ``#ID`` of a stored run, or a run folder (stored first if it is not).
``latest`` takes the latest valid run of the given scenario/profile, or of
every stored series when neither is given. A baseline is per scenario × profile.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    sub.required = True
    set_p = sub.add_parser("set", help="set the baseline", description="set the baseline")
    set_p.add_argument("run", metavar="RUN|latest", help="#ID, a run folder, or latest")
    set_p.add_argument("--scenario", help="with latest: only this scenario")
    set_p.add_argument("--profile", help="with latest: only this profile")
    show = sub.add_parser("show", help="list baselines", description="list baselines")
    show.add_argument("--json", action="store_true")
    for p in (set_p, show):
        p.add_argument(
            "--store",
            metavar="PATH|URL",
            help="results store (default $INFEROPS_HISTORY or .inferops/history.sqlite)",
        )


def run(args: argparse.Namespace) -> int:
    from inferops.exitcodes import UsageError
    from inferops.history.refs import stored_id
    from inferops.history.runsource import load_run
    from inferops.history.store import open_store

    if args.action == "show":
        with open_store(args.store) as store:
            rows = [
                {
                    "scenario": s,
                    "profile": p,
                    "run_id": rid,
                    "started_at": store.run(rid).started_at,
                }
                for (s, p), rid in sorted(store.baselines().items())
            ]
            where = store.location
        if args.json:
            print(json.dumps({"store": where, "baselines": rows}, indent=2))
        else:
            for row in rows:
                print(
                    f"{row['scenario']} / {row['profile']}: #{row['run_id']} ({row['started_at']})"
                )
            print(f"{len(rows)} baseline{'s' if len(rows) != 1 else ''} in {where}")
        return 0
    with open_store(args.store, write=True) as store:
        if args.run == "latest":
            chosen = []
            for scenario, profile in store.series():
                if args.scenario not in (None, scenario) or args.profile not in (None, profile):
                    continue
                valid = [r for r in store.runs(scenario, profile) if r.valid]
                if valid:
                    chosen.append(valid[-1].id)
            if not chosen:
                raise UsageError("no valid stored run matches; nothing to set")
        else:
            if args.scenario or args.profile:
                raise UsageError("--scenario/--profile only go with `latest`")
            run_id = stored_id(args.run)
            if run_id is None:
                run_id, _ = store.add_run(load_run(args.run))
            chosen = [run_id]
        for run_id in chosen:
            run = store.set_baseline(run_id)
            if not run.valid:
                print(f"warning: run #{run.id} is invalid; comparisons against it will exit 3")
            print(f"baseline for {run.scenario} / {run.profile}: #{run.id} ({run.started_at})")
        print(f"set {len(chosen)} baseline{'s' if len(chosen) != 1 else ''} in {store.location}")
    return 0
