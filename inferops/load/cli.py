"""``inferops bench``: load-test an endpoint and gate on thresholds.

Open loop (``--rate``) sends on a Poisson schedule independent of replies and
measures latency from the intended send time; ``--users`` is stock Locust's
closed loop. ``--sweep`` searches the highest rate whose P99 meets
``--slo-p99-ms``. Writes one run folder (docs/run-format.md) and exits 0
(passed), 1 (threshold breached), 2 (usage error) or 3 (invalid/partial run).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from inferops import thresholds, validators
from inferops.exitcodes import UsageError
from inferops.load import options, protocols
from inferops.load.settle import DEFAULT_SETTLE_MAX_S


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_load_options(parser, locust=False)
    p = parser
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/bench-<UTC time>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument(
        "--sweep", action="store_true", help="find the max open-loop QPS whose P99 <= --slo-p99-ms"
    )
    p.add_argument(
        "--sweep-start",
        type=validators.positive,
        default=None,
        metavar="QPS",
        help="first sweep rate (default 10; with --profiles: half of what one user sustains)",
    )
    p.add_argument(
        "--sweep-max",
        type=validators.positive,
        default=100_000.0,
        metavar="QPS",
        help="highest rate the sweep tries (default 100000)",
    )
    p.add_argument(
        "--sweep-precision",
        type=validators.open_fraction,
        default=0.02,
        help="stop when the bracket is this fraction wide (default 0.02)",
    )
    p.add_argument("--sweep-max-steps", type=validators.positive_int, default=25)
    p.add_argument(
        "--sweep-budget",
        type=validators.duration,
        metavar="DURATION",
        help="start no sweep step that would end after this long (up to 3x while no "
        "step has met the SLO yet); the sweep then stops with what it found (default: none)",
    )
    p.add_argument(
        "--sweep-settle-max",
        type=validators.duration_or_zero,
        default=DEFAULT_SETTLE_MAX_S,
        metavar="DURATION",
        help="after a step that overloaded the target (P99 over 2x the SLO, or errors), "
        "probe it one request at a time until its median latency is back to light load, "
        "for at most this long, before the next step; 0: never (default: 60s)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress display")
    _add_cluster_arguments(p)
    _add_profile_arguments(p)


def _add_cluster_arguments(p) -> None:
    """Distributed load on Locust's master/worker runners (docs/load.md)."""
    g = p.add_argument_group("distributed load (Locust master/workers)")
    g.add_argument(
        "--workers",
        type=validators.positive_int,
        metavar="N",
        help="send from N local Locust worker processes under a master (this process)",
    )
    g.add_argument(
        "--worker-cpus",
        metavar="LIST",
        help="with --workers: pin worker k to the k-th CPU of this comma list (e.g. 2,3)",
    )
    g.add_argument(
        "--master",
        action="store_true",
        help="be the master of workers started elsewhere (bench --worker --master-host ...)",
    )
    g.add_argument(
        "--expect-workers",
        type=validators.positive_int,
        default=1,
        metavar="N",
        help="with --master: start once N workers are connected (default 1)",
    )
    g.add_argument(
        "--master-bind-host",
        default="*",
        metavar="ADDR",
        help="with --master: interface to listen on (default all)",
    )
    g.add_argument(
        "--worker",
        action="store_true",
        help="be a worker: send the share of the load the master gives (needs --master-host)",
    )
    g.add_argument("--master-host", metavar="HOST", help="with --worker: the master's address")
    g.add_argument(
        "--master-port",
        type=validators.positive_int,
        default=5557,
        metavar="PORT",
        help="the master's port (default 5557, Locust's)",
    )


def _add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """The profile axis of --sweep (inferops/load/profiles.py)."""
    g = parser.add_argument_group(
        "optimisation profiles (--sweep --profiles; see docs/profiles.md)"
    )
    g.add_argument(
        "--profiles",
        metavar="LIST",
        help="serve and sweep each profile of --model in turn: comma-separated fp32, "
        "int8-dynamic, int8-static, openvino, openvino-int8, or all; one run folder "
        "each under --out, with the accuracy against FP32 beside it",
    )
    g.add_argument(
        "--profile-file",
        action="append",
        metavar="NAME=PATH",
        help="serve this file as profile NAME instead of making it (repeatable)",
    )
    g.add_argument(
        "--calibration",
        type=Path,
        metavar="FILE",
        help="calibration inputs for int8-static/openvino-int8 (.npy/.npz/.jsonl; "
        "generated for the embedded models)",
    )
    g.add_argument(
        "--accuracy-samples",
        metavar="FILE|N",
        help="held-out inputs each profile is compared with FP32 on "
        "(default: 1000 generated for the embedded models; a file for your own)",
    )
    g.add_argument(
        "--server-cpus",
        default="1",
        metavar="CPUS",
        help="cores every profile's server is pinned to, e.g. 1 or 2-3 (default 1); "
        "the load generator gets the others",
    )
    g.add_argument(
        "--server-arg",
        action="append",
        metavar="'ARGS'",
        help="extra inferops serve flags for every profile, e.g. '--max-batch-size 16'",
    )


DEFAULT_SWEEP_START = 10.0


def late_tolerance_s(args, limits: dict) -> float:
    """``--late-tolerance-ms``, else 5 % of the P99 bound in force (at least 1 ms)."""
    bound = thresholds.resolve_bound(args.slo_p99_ms, limits)
    return options.late_tolerance_s(args.late_tolerance_ms, bound)


def _check_combination(args) -> None:
    """Rules between flags (each flag's own value is checked by its validator)."""
    if not args.target:
        raise UsageError(
            "--target URL is required (or --sweep --profiles LIST to serve each profile here)"
        )
    if args.workers and args.master:
        raise UsageError("--workers starts its own local workers: drop --master")
    if args.worker_cpus and not args.workers:
        raise UsageError("--worker-cpus needs --workers")
    if args.sweep and (args.rate or args.users):
        raise UsageError("--sweep chooses the rates itself: drop --rate/--users")
    if not args.sweep and args.rate is None and args.users is None:
        raise UsageError(
            "one of --rate QPS (open loop), --users N (closed loop) or --sweep is required"
        )
    streaming = getattr(protocols.registry().get(args.protocol), "streaming", False)
    if args.sweep and streaming and not (args.slo_ttft_ms or args.slo_tpot_ms):
        raise UsageError(
            f"--sweep with --protocol {args.protocol} needs --slo-ttft-ms and/or --slo-tpot-ms"
        )
    if args.sweep_start is not None and args.sweep_max < args.sweep_start:
        raise UsageError("--sweep-start must be > 0 and <= --sweep-max")


def _check_node_exporter(url: str) -> str:
    """One scrape now: a wrong address is a usage error (exit 2) before any load."""
    from inferops.measure.hostmetrics import NodeExporterSampler

    exporter = NodeExporterSampler(url)
    try:
        exporter.scrape()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UsageError(f"--node-exporter: cannot read {exporter.url}: {reason}") from None
    return exporter.url


def load_config(args) -> options.LoadConfig:
    """Every usage error, before anything is written; then the typed config."""
    _check_combination(args)
    config = options.LoadConfig.from_namespace(args)
    _ = config.proto  # the protocol's own flags (--model, --path, --header...): exit 2 now
    remote_hosts(args, config)
    return config


def remote_hosts(args, config: options.LoadConfig) -> None:
    """Where host metrics come from (--node-exporter or --prometheus/--instance), checked
    now: an unreachable source or unknown host is exit 2 before any load."""
    prometheus, instances = getattr(args, "prometheus", None), getattr(args, "instance", None)
    password_file = getattr(args, "prometheus_password_file", None)
    if prometheus and args.node_exporter:
        raise UsageError("--node-exporter and --prometheus are two sources of host metrics: one")
    if (instances or password_file) and not prometheus:
        raise UsageError("--instance and --prometheus-password-file go with --prometheus URL")
    if args.node_exporter:
        config.node_exporter = _check_node_exporter(args.node_exporter)
    if prometheus:
        from inferops.measure.promsource import PrometheusSource

        source = PrometheusSource.from_options(prometheus, instances, password_file)
        source.check()
        config.prometheus = source


def cluster_spec(args):
    """The engine's ClusterSpec for --workers/--master, or None (one process)."""
    from inferops.load.engine import ClusterSpec

    if args.workers:
        cpus = ()
        if args.worker_cpus:
            try:
                cpus = tuple(int(c) for c in args.worker_cpus.split(","))
            except ValueError:
                raise UsageError(
                    f"--worker-cpus: expected a comma list of CPU numbers, got {args.worker_cpus!r}"
                ) from None
            usable = set(range(os.cpu_count() or 1))  # not our own mask: taskset may narrow it
            if not set(cpus) <= usable:
                raise UsageError(
                    f"--worker-cpus: CPU {sorted(set(cpus) - usable)[0]} is not available here "
                    f"(usable: {','.join(map(str, sorted(usable)))})"
                )
        return ClusterSpec(local=args.workers, expect=args.workers, cpus=cpus)
    if args.master:
        return ClusterSpec(
            expect=args.expect_workers, bind_host=args.master_bind_host, port=args.master_port
        )
    return None


def run_worker(args) -> int:
    """``inferops bench --worker --master-host HOST``: serve the master until it quits."""
    if not args.master_host:
        raise UsageError("--worker needs --master-host HOST")
    from inferops.load import engine

    print(
        f"inferops: worker connecting to {args.master_host}:{args.master_port}",
        file=sys.stderr,
        flush=True,
    )
    return engine.serve_as_worker(args.master_host, args.master_port)


def run(args: argparse.Namespace) -> int:
    if args.worker:
        return run_worker(args)
    if args.profiles is not None:
        return _run_profiles(args)
    config = load_config(args)
    cluster = cluster_spec(args)
    from inferops.load import engine
    from inferops.load.protocols.tensors import TargetUnreachable
    from inferops.measure.runfolder import RunFolder
    from inferops.measure.summary import exit_code, headline

    try:  # 401/404/bad metadata/bad input file: usage errors before a folder exists
        config.load_bodies()
    except TargetUnreachable:
        pass  # measured as an invalid run (exit 3) with its folder
    out = args.out or os.path.join("runs", time.strftime("bench-%Y%m%d-%H%M%S", time.gmtime()))
    folder = RunFolder(out, overwrite=args.overwrite, secrets=config.secrets)
    command = ["inferops", "bench", *sys.argv[2:]] if len(sys.argv) > 1 else []
    if args.sweep:
        summary = engine.sweep(
            config,
            folder,
            start_qps=args.sweep_start or DEFAULT_SWEEP_START,
            max_qps=args.sweep_max,
            precision=args.sweep_precision,
            max_steps=args.sweep_max_steps,
            say=lambda m: print(m, file=sys.stderr, flush=True),
            command=command,
            progress=not args.quiet,
            budget_s=args.sweep_budget,
            cluster=cluster,
            settle_max_s=args.sweep_settle_max,
        )
        _say_sweep(summary)
    else:
        summary = engine.measure(
            config, folder, command=command, progress=not args.quiet, cluster=cluster
        )
        print(headline(summary), file=sys.stderr)
    _say_verdict(summary)
    print(f"run folder: {folder.path}")
    return exit_code(summary)


def _run_profiles(args: argparse.Namespace) -> int:
    """--sweep --profiles: each profile served and swept in turn (inferops/load/profiles.py)."""
    from inferops.exitcodes import BREACH, INVALID, OK
    from inferops.load import profiles
    from inferops.measure.summary import exit_code

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results, out = profiles.run(args, say)
    codes = []
    for name, summary in results:
        code = exit_code(summary)
        codes.append(code)
        best = summary.slo.max_qps if summary.slo else None
        print(
            f"{name}: "
            + (f"{best:.1f} req/s at the SLO" if best else "no capacity found")
            + {OK: "", BREACH: " (threshold breached)", INVALID: " (invalid run)"}.get(code, ""),
            file=sys.stderr,
        )
    folders = " ".join(str(out / name) for name, _ in results)
    print(f"report: inferops report {folders} --out {out / 'index.html'}", file=sys.stderr)
    print(f"run folders: {out}")
    return INVALID if INVALID in codes else BREACH if BREACH in codes else OK


def _say_sweep(summary) -> None:
    slo = summary.slo
    best = slo.max_qps
    bounds = [
        f"p99 {name} <= {value:g} ms"
        for name, value in (("TTFT", slo.ttft_ms), ("TPOT", slo.tpot_ms), ("", slo.p99_ms))
        if value is not None
    ]
    label = "knee" if slo.ttft_ms is not None or slo.tpot_ms is not None else "max QPS"
    print(
        f"{label} at {', '.join(bounds).replace('p99  <=', 'p99 <=')}: "
        + (f"{best:.1f} req/s" if best else "none found"),
        file=sys.stderr,
    )
    for note in slo.notes:
        print(f"note: {note}", file=sys.stderr)


def _say_verdict(summary) -> None:
    for reason in summary.validity:
        print(f"invalid: {reason}", file=sys.stderr)
    if summary.breach_proven:
        print(f"breach: {summary.breach_proven['reason']}", file=sys.stderr)
    for check in summary.thresholds:
        if check["ok"] is False:
            print(
                f"breach: {check['name']} = {check['value']} (limit {check['limit']:g})"
                + (f" - {check['note']}" if check.get("note") else ""),
                file=sys.stderr,
            )
