"""``inferops k8s render``: Kubernetes manifests sized from measured runs.

Writes a Deployment (replicas = the report's N+1), Service,
PodDisruptionBudget, an HPA on per-pod QPS with the prometheus-adapter rule
that serves it, and a ServiceMonitor; validates them offline against pinned
schemas before writing anything. Exit 2 for bad input, 3 when no run can be
sized (invalid, or no step met the SLO).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from inferops import validators
from inferops.exitcodes import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from inferops.release.k8s import SERVER_KINDS

    sub = parser.add_subparsers(dest="k8s_command", metavar="ACTION", parser_class=type(parser))
    render = sub.add_parser("render", help="write sized, validated manifests")
    render.add_argument("--runs", nargs="+", required=True, metavar="RUN_DIR")
    render.add_argument("--out", required=True, metavar="DIR")
    render.add_argument("--target-qps", type=validators.positive, metavar="Q")
    render.add_argument("--slo-p99-ms", type=validators.positive, metavar="X")
    render.add_argument("--headroom", type=validators.fraction, metavar="H")
    render.add_argument("--thresholds", metavar="FILE")
    render.add_argument(
        "--profile", help="which run's profile to size from (default: fewest nodes)"
    )
    render.add_argument("--server", choices=sorted(SERVER_KINDS), default="inferops")
    render.add_argument("--image", help="container image; pin it by digest (repo@sha256:...)")
    render.add_argument("--namespace", default="inference")
    render.add_argument(
        "--gpus",
        type=validators.int_range(0, 64),
        help="GPUs per pod (default: 1 if the run had one)",
    )


def run(args: argparse.Namespace) -> int:
    if args.k8s_command != "render":
        raise UsageError("choose an action: inferops k8s render ...")
    from inferops.release import k8s, k8s_validate
    from inferops.release.sizing_source import choose, sized_runs

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder")
    if args.namespace and not _dns_label(args.namespace):
        raise UsageError(f"--namespace {args.namespace!r} is not a valid DNS label")
    runs = sized_runs(
        args.runs,
        target_qps=args.target_qps,
        slo_p99_ms=args.slo_p99_ms,
        headroom=args.headroom,
        thresholds=args.thresholds,
    )
    chosen = choose(runs, args.profile)
    gpus = args.gpus if args.gpus is not None else (1 if chosen.had_gpu else 0)
    sizing = k8s.Sizing(
        run=chosen.path,
        model=chosen.model,
        max_qps_at_slo=chosen.max_qps_at_slo,
        headroom=chosen.headroom,
        target_qps=chosen.target_qps,
        slo_p99_ms=chosen.slo_p99_ms,
        nodes=chosen.nodes,
        cpu_cores_peak=chosen.cpu_cores_peak,
        memory_bytes_peak=chosen.memory_bytes_peak,
        gpus=gpus,
    )
    options = k8s.RenderOptions(kind=args.server, image=args.image, namespace=args.namespace)
    files = k8s.render(sizing, options, _dump)
    try:
        k8s_validate.validate_all(files)
    except k8s_validate.ManifestError as exc:  # a bug here, or a bad --image/--namespace
        raise UsageError(f"manifest failed validation: {exc}") from None
    from inferops.atomicfile import atomic_write_text as write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    for name, doc in files.items():
        write_text_atomic(out / name, _dump(doc))
    print(
        f"{sizing.replicas} replicas of {chosen.profile} ({chosen.max_qps_at_slo:.1f} req/s per pod "
        f"at P99 <= {chosen.slo_p99_ms:g} ms, HPA target {sizing.qps_per_pod_target:.1f} req/s)"
    )
    print(f"manifests written to {out.resolve()}")
    return 0


def _dns_label(text: str) -> bool:
    import re

    return bool(re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", text))


def _dump(doc: dict) -> str:
    import yaml

    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
