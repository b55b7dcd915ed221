"""``inferops model``: build the embedded ONNX models.

inferops model build NAME --out PATH    write NAME (mlp, cnn, dense, tinylm) to PATH
inferops model list                     show the embedded models and the cache
"""

from __future__ import annotations

import argparse
from pathlib import Path

from inferops.models import EMBEDDED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=type(parser)
    )
    build = actions.add_parser("build", help="write an embedded model to an .onnx file")
    build.add_argument("name", choices=EMBEDDED, help="embedded model name")
    build.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output file (default: NAME.onnx in the current directory)",
    )
    actions.add_parser("list", help="list the embedded models and where they are cached")


def run(args: argparse.Namespace) -> int:
    from inferops.models import build, cache_dir

    if args.action == "list":
        for name in EMBEDDED:
            print(name)
        print(f"cache: {cache_dir()}")
        return 0
    out = args.out if args.out is not None else Path(f"{args.name}.onnx")
    if out.is_dir():
        out = out / f"{args.name}.onnx"
    path = build(args.name, out)
    size_mb = path.stat().st_size / 1e6
    print(f"model {args.name}: {size_mb:.1f} MB written to {path}")
    return 0
