"""``inferops compare BASELINE CANDIDATE``: did the candidate run regress?

Runs are run folders (``inferops bench --out DIR``) or stored runs (``#ID``).
Exit 0 no regression, 1 regression, 2 bad input, 3 a run is invalid or the
two are not comparable (different SLO, protocol, model, mode or fixed rate).
"""

from __future__ import annotations

import argparse
import json


def add_common_knobs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--min-effect",
        default="5%",
        metavar="PCT",
        help="smallest change worth flagging (default 5%%)",
    )
    parser.add_argument(
        "--p-value",
        default="0.01",
        metavar="P",
        help="significance level of each test (default 0.01)",
    )
    parser.add_argument(
        "--store",
        metavar="PATH|URL",
        help="results store for #ID references (default $INFEROPS_HISTORY or "
        ".inferops/history.sqlite)",
    )


def knobs_from(args):
    from inferops.exitcodes import UsageError
    from inferops.history.compare import Knobs
    from inferops.history.refs import parse_fraction

    try:
        p = float(args.p_value)
    except ValueError:
        raise UsageError(f"--p-value: expected a number like 0.01, got {args.p_value!r}") from None
    if not 0 < p < 1:
        raise UsageError(f"--p-value: must be between 0 and 1, got {args.p_value!r}")
    return Knobs(min_effect=parse_fraction(args.min_effect, name="--min-effect"), p_value=p)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", metavar="BASELINE", help="run folder or #ID of a stored run")
    parser.add_argument("candidate", metavar="CANDIDATE", help="run folder or #ID of a stored run")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_common_knobs(parser)


def run(args: argparse.Namespace) -> int:
    from inferops.history import refs
    from inferops.history.compare import compare, render_text

    knobs = knobs_from(args)
    baseline, _ = refs.load(args.baseline, args.store)
    candidate, _ = refs.load(args.candidate, args.store)
    result = compare(baseline, candidate, knobs)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, default=str))
    else:
        print(render_text(result))
        if not result.comparable:
            print("verdict: NOT COMPARABLE (exit 3)")
        elif result.regressions:
            moved = ", ".join(
                f"{c.label} {100 * c.effect:+.1f} %" if c.metric != "error_rate" else c.label
                for c in result.regressions
            )
            print(f"verdict: REGRESSION in {moved}")
        else:
            print("verdict: no regression")
    return result.exit_code
