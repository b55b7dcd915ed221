"""``inferops nightly --config nightly.toml``: the nightly regression gate.

Provisions (optional), runs the configured scenarios with ``inferops bench``,
stores them, compares each with its baseline and history, reruns a suspect
to confirm it, renders the trend report. Exit 0 no confirmed regression,
1 confirmed regression, 2 bad config, 3 a run invalid or not comparable.
See docs/nightly.md.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="nightly.toml")
    parser.add_argument(
        "--store", metavar="PATH|URL", help="results store (overrides nightly.store)"
    )
    parser.add_argument("--check", action="store_true", help="validate the config and exit")


def run(args: argparse.Namespace) -> int:
    from inferops.history.config import load
    from inferops.history.nightly import run_nightly

    config = load(args.config)
    if args.store:
        config.store = args.store
    if args.check:
        print(f"{args.config}: ok ({len(config.scenarios)} scenarios)")
        return 0
    code, document = run_nightly(config)
    verdict = {
        0: "no confirmed regression",
        1: "CONFIRMED REGRESSION",
        3: "INVALID or NOT COMPARABLE",
    }
    print(f"nightly: {verdict.get(code, code)} (exit {code})")
    print(f"wrote {document['report']} and {document['result_file']}")
    return code
