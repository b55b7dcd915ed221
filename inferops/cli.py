"""The ``inferops`` command line: parses arguments and hands off to the packages.

Each subcommand lives beside the code it drives, in a module exposing
``add_arguments(parser)`` and ``run(args) -> int``. Only argument definitions
are imported here; heavy imports happen inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from inferops import __version__
from inferops.exitcodes import USAGE, InferopsError

# (name, module, one-line help). Order is the pipeline order shown in --help.
COMMANDS: list[tuple[str, str, str]] = [
    ("model", "inferops.models.cli", "build the embedded ONNX models"),
    ("serve", "inferops.server.cli", "run the reference inference server"),
    ("bench", "inferops.load.cli", "load-test an endpoint and gate on thresholds"),
    ("report", "inferops.report.cli", "render the HTML hardware-sizing report"),
    ("monitoring", "inferops.monitoring.cli", "render Prometheus, Alertmanager and Grafana files"),
    ("compare", "inferops.history.compare_cli", "compare two runs: did the candidate regress?"),
    ("history", "inferops.history.history_cli", "the results store: list, import, trend report"),
    ("baseline", "inferops.history.baseline_cli", "set or show the baseline run per scenario"),
    ("nightly", "inferops.history.nightly_cli", "nightly regression gate: run, store, judge"),
    ("demo", "inferops.demo", "end-to-end demo on the embedded model"),
    ("rollout", "inferops.release.rollout_cli", "canary release of a new model version"),
    ("k8s", "inferops.release.k8s_cli", "Kubernetes manifests sized from measured runs"),
]


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a one-line message naming the bad flag."""

    def error(self, message: str):
        # "argument --rate: must be > 0, got -5" reads better as "--rate must be > 0, got -5"
        message = re.sub(r"^argument (\S+?)(?:/\S+)?: (?=must )", r"\1 ", message)
        self.exit(USAGE, f"{self.prog}: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI; with ``only``, just that subcommand's module is imported.

    A server host has the serving dependencies and not the load generator's, so
    ``inferops serve`` must not import ``bench``'s module to build its parser.
    """
    parser = _Parser(prog="inferops", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"inferops {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module_name, help_text in COMMANDS:
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if only is not None and name != only:
            continue  # listed in --help; its module is imported when it is the one run
        # every subcommand ships with the package: one that does not import is a broken
        # install, said loudly, never a command that silently disappears from --help
        module = importlib.import_module(module_name)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def _command_named(argv: list[str]) -> str | None:
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in {name for name, _, _ in COMMANDS} else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=_command_named(argv))
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
