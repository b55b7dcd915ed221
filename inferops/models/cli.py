"""``inferops model``: build the embedded ONNX models, make optimisation profiles, compare them.

inferops model build NAME --out PATH                 write NAME (mlp, cnn, dense, tinylm) to PATH
inferops model list                                  show the embedded models and the cache
inferops model optimize MODEL --to PROFILE --out P   INT8 / OpenVINO profile + .profile.json sidecar
inferops model compare REF CANDIDATE --samples N|F   accuracy drift of CANDIDATE against REF
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
    _add_optimize(actions)
    _add_compare(actions)


def _add_optimize(actions) -> None:
    from inferops.models.optimize import CALIBRATION_METHODS, PROFILES

    opt = actions.add_parser(
        "optimize",
        help="write an INT8 or OpenVINO profile of an ONNX model",
        description="Write an INT8 or OpenVINO profile of MODEL, with a sidecar "
        "<out stem>.profile.json recording how it was made.",
    )
    opt.add_argument("model", help="an .onnx file or an embedded model name")
    opt.add_argument("--to", dest="profile", required=True, choices=PROFILES, help="profile")
    opt.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output .onnx (int8-*) or .xml (openvino*) file, or a directory "
        "(default: MODEL-PROFILE.onnx|.xml here)",
    )
    opt.add_argument(
        "--calibration",
        type=Path,
        default=None,
        metavar="FILE",
        help="representative inputs (.npy/.npz/.jsonl) for int8-static and openvino-int8; "
        "generated for the embedded models when omitted",
    )
    opt.add_argument(
        "--calibration-method",
        choices=CALIBRATION_METHODS,
        default=None,
        help="activation range estimator for int8-static (default MinMax)",
    )
    opt.add_argument(
        "--calibration-samples",
        type=_positive_int,
        default=None,
        metavar="N",
        help="generated calibration samples for embedded models (default 128)",
    )
    opt.add_argument(
        "--per-channel",
        choices=("auto", "on", "off"),
        default="auto",
        help="per-channel weight scales for int8-static (auto: when channel ranges differ >2x)",
    )
    opt.add_argument(
        "--activation-type",
        choices=("auto", "uint8", "int8"),
        default="auto",
        help="int8-static activations (auto: from the CPU flags, uint8 on x86)",
    )
    opt.add_argument(
        "--op-types",
        default=None,
        metavar="OPS",
        help="comma-separated operator types to quantise (default: all ONNX Runtime supports)",
    )


def _add_compare(actions) -> None:
    cmp = actions.add_parser(
        "compare",
        help="run REF and CANDIDATE on the same inputs and report their drift",
        description="Run REF and CANDIDATE on the same inputs: max/mean abs error, cosine "
        "similarity, top-1 agreement for classifiers, and the layers that drift most.",
    )
    cmp.add_argument("reference", help="reference model: .onnx file or embedded model name")
    cmp.add_argument("candidate", type=Path, help="candidate model: .onnx or OpenVINO .xml")
    cmp.add_argument(
        "--samples",
        required=True,
        metavar="FILE|N",
        help="inputs file (.npy/.npz/.jsonl) or a count of generated uniform(-1, 1) samples",
    )
    cmp.add_argument(
        "--task",
        choices=("auto", "classifier", "regression"),
        default="auto",
        help="classifier adds top-1 agreement (auto: outputs named like logits/probs)",
    )
    cmp.add_argument("--no-layers", action="store_true", help="skip the per-layer drift")
    cmp.add_argument("--json", action="store_true", help="print the record as JSON")
    cmp.add_argument("--out", type=Path, default=None, help="also write the record to this file")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from inferops.models import build, cache_dir

    if args.action == "optimize":
        return _run_optimize(args)
    if args.action == "compare":
        return _run_compare(args)
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


def _run_optimize(args: argparse.Namespace) -> int:
    from inferops.exitcodes import UsageError
    from inferops.models.optimize import DEFAULT_CALIBRATION_SAMPLES, optimize

    if args.calibration_samples is not None and args.calibration is not None:
        raise UsageError(
            "--calibration-samples sizes generated samples; it cannot go with --calibration"
        )
    op_types = [t.strip() for t in args.op_types.split(",") if t.strip()] if args.op_types else None
    record = optimize(
        args.model,
        args.profile,
        args.out,
        calibration=args.calibration,
        calibration_method=args.calibration_method,
        calibration_samples=args.calibration_samples or DEFAULT_CALIBRATION_SAMPLES,
        per_channel=args.per_channel,
        activation_type=args.activation_type,
        op_types=op_types,
    )
    options = record["options"]
    shown = ", ".join(
        f"{k} {v}"
        for k, v in options.items()
        if not isinstance(v, (dict, list)) and k != "op_types"
    )
    print(f"cpu: {record['cpu']['model_name']} ({' '.join(record['cpu']['flags']) or 'none'})")
    print(f"{args.profile}: {shown}")
    if record["calibration"]:
        cal = record["calibration"]
        origin = cal["source"]
        if origin == "generated":
            origin = f"generated {cal['distribution']}, seed {cal['seed']}"
        print(f"calibration: {cal['samples']} samples ({origin}), {cal['method']}")
    for note in record["notes"]:
        print(f"note: {note}")
    out = record["output"]
    print(
        f"{args.profile} profile: {out['bytes'] / 1e6:.1f} MB ({record['size_ratio']:.2f}x the "
        f"source) written to {out['path']}, recipe in {record['sidecar']}"
    )
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    import json

    from inferops.models import resolve, write_atomic
    from inferops.models.compare import compare, render

    record = compare(
        resolve(args.reference),
        resolve(str(args.candidate)),
        args.samples,
        task=args.task,
        layers=not args.no_layers,
    )
    text = json.dumps(record, indent=2)
    print(text if args.json else render(record))
    if args.out is not None:
        write_atomic((text + "\n").encode(), args.out)
        print(f"accuracy record written to {args.out}")
    return 0
