"""The ``inferops`` command line: parses arguments and hands off to the packages.

Each subcommand lives beside the code it drives, in a module exposing
``add_arguments(parser)`` and ``run(args) -> int``. Only argument definitions
are imported here; heavy imports happen inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from inferops import __version__
from inferops.exitcodes import USAGE, InferopsError

# (name, module, one-line help). Order is the pipeline order shown in --help.
COMMANDS: list[tuple[str, str, str]] = [
    ("model", "inferops.models.cli", "build the embedded ONNX models"),
    ("serve", "inferops.server.cli", "run the reference inference server"),
    ("bench", "inferops.load.cli", "load-test an endpoint and gate on thresholds"),
    ("report", "inferops.report.cli", "render the HTML hardware-sizing report"),
    ("demo", "inferops.demo", "end-to-end demo on the embedded model"),
    ("k8s", "inferops.release.k8s_cli", "Kubernetes manifests sized from measured runs"),
]


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a one-line message naming the bad flag."""

    def error(self, message: str):
        self.exit(USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="inferops", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"inferops {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module_name, help_text in COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # subcommand not built in this checkout
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return USAGE
    try:
        return int(args._run(args) or 0)
    except InferopsError as exc:
        print(f"inferops {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"inferops {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
