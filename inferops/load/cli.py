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

from inferops.exitcodes import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from inferops.load.arrivals import ARRIVALS, SCENARIOS

    p = parser
    p.add_argument(
        "--target",
        required=True,
        metavar="URL",
        help="base URL of the inference server, e.g. http://127.0.0.1:8000",
    )
    p.add_argument(
        "--protocol",
        choices=("v2", "predict"),
        default="v2",
        help="v2: POST /v2/models/NAME/infer; predict: POST /predict (default v2)",
    )
    p.add_argument("--model", metavar="NAME", help="model name (payloads from its v2 metadata)")
    p.add_argument(
        "--input-file",
        metavar="FILE",
        help="sample inputs: .jsonl (one request/input object per line) or .npy",
    )
    load = p.add_mutually_exclusive_group()
    load.add_argument("--rate", type=float, metavar="QPS", help="open-loop arrival rate, req/s")
    load.add_argument("--users", type=int, metavar="N", help="classic closed-loop Locust users")
    p.add_argument(
        "--arrivals",
        choices=ARRIVALS,
        default="poisson",
        help="open-loop arrival process (default poisson)",
    )
    p.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="steady",
        help="shape of the load over the run (default steady)",
    )
    p.add_argument("--steps", type=int, default=4, help="plateaus of --scenario step (default 4)")
    p.add_argument(
        "--spike-factor",
        type=float,
        default=5.0,
        help="peak / baseline for --scenario spike (default 5)",
    )
    p.add_argument("--duration", default="30s", help="measured window (default 30s)")
    p.add_argument("--warmup", default="5s", help="warm-up excluded from results (default 5s)")
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/bench-<UTC time>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument(
        "--thresholds",
        metavar="FILE",
        help="thresholds.toml to gate on (default: the built-in seed table)",
    )
    p.add_argument(
        "--slo-p99-ms",
        type=float,
        metavar="MS",
        help="P99 bound for --sweep and early stopping (default p99_latency_ms)",
    )
    p.add_argument(
        "--sweep", action="store_true", help="find the max open-loop QPS whose P99 <= --slo-p99-ms"
    )
    p.add_argument(
        "--sweep-start",
        type=float,
        default=10.0,
        metavar="QPS",
        help="first sweep rate (default 10)",
    )
    p.add_argument(
        "--sweep-max",
        type=float,
        default=100_000.0,
        metavar="QPS",
        help="highest rate the sweep tries (default 100000)",
    )
    p.add_argument(
        "--sweep-precision",
        type=float,
        default=0.02,
        help="stop when the bracket is this fraction wide (default 0.02)",
    )
    p.add_argument("--sweep-max-steps", type=int, default=25)
    p.add_argument("--token", help="bearer token (default: $INFEROPS_TOKEN)")
    p.add_argument("--profile", metavar="LABEL", help="label stored in manifest.json for reports")
    p.add_argument(
        "--node-exporter",
        metavar="URL",
        help="take host metrics from the target's node_exporter (e.g. http://HOST:9100)"
        " instead of this machine",
    )
    p.add_argument(
        "--max-inflight",
        type=int,
        default=10_000,
        help="open-loop safety cap on requests in flight; hitting it invalidates",
    )
    p.add_argument("--timeout", default="30s", help="per-request timeout (default 30s)")
    p.add_argument("--seed", type=int, help="seed of the arrival process")
    p.add_argument(
        "--late-tolerance-ms",
        type=float,
        default=None,
        metavar="MS",
        help="a send this late after its intended time counts as late "
        "(default 5%% of the P99 bound, at least 1 ms)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress display")


def late_tolerance_s(args, limits: dict) -> float:
    """``--late-tolerance-ms``, else 5 % of the P99 bound in force (at least 1 ms)."""
    from inferops.measure.validity import default_late_tolerance_s

    if args.late_tolerance_ms is not None:
        if not args.late_tolerance_ms > 0:
            raise UsageError(f"--late-tolerance-ms must be > 0, got {args.late_tolerance_ms:g}")
        return args.late_tolerance_ms / 1000.0
    return default_late_tolerance_s(args.slo_p99_ms or limits.get("p99_latency_ms"))


def _spec(args):
    from inferops import thresholds
    from inferops.load.arrivals import Scenario
    from inferops.load.engine import RunSpec
    from inferops.load.users import LoadConfig
    from inferops.units import parse_duration

    if not args.target.startswith(("http://", "https://")):
        raise UsageError(f"--target: expected an http:// or https:// URL, got {args.target!r}")
    if args.protocol == "v2" and not args.model:
        raise UsageError("--model is required with --protocol v2")
    if not args.model and not args.input_file:
        raise UsageError("--model (for its metadata) or --input-file is required")
    if args.sweep and (args.rate or args.users):
        raise UsageError("--sweep chooses the rates itself: drop --rate/--users")
    if not args.sweep and args.rate is None and args.users is None:
        raise UsageError(
            "one of --rate QPS (open loop), --users N (closed loop) or --sweep is required"
        )
    if args.rate is not None and not args.rate > 0:
        raise UsageError(f"--rate must be > 0, got {args.rate:g}")
    if args.users is not None and args.users < 1:
        raise UsageError(f"--users must be >= 1, got {args.users}")
    if args.slo_p99_ms is not None and not args.slo_p99_ms > 0:
        raise UsageError(f"--slo-p99-ms must be > 0, got {args.slo_p99_ms:g}")
    late_tolerance_s(args, {})  # a bad value is a usage error before anything else
    if args.max_inflight < 1:
        raise UsageError(f"--max-inflight must be >= 1, got {args.max_inflight}")
    if not 0 < args.sweep_precision < 1:
        raise UsageError("--sweep-precision must be between 0 and 1")
    if not args.sweep_start > 0 or args.sweep_max < args.sweep_start:
        raise UsageError("--sweep-start must be > 0 and <= --sweep-max")
    duration = parse_duration(args.duration, name="--duration")
    warmup = parse_duration(args.warmup, name="--warmup")
    timeout = parse_duration(args.timeout, name="--timeout")
    if duration <= 0:
        raise UsageError("--duration must be > 0")
    if timeout <= 0:
        raise UsageError("--timeout must be > 0")
    limits = thresholds.load(args.thresholds)
    scenario = Scenario(
        args.scenario,
        duration_s=warmup + duration,
        steps=args.steps,
        spike_factor=args.spike_factor,
    )
    config = LoadConfig(
        target=args.target.rstrip("/"),
        protocol=args.protocol,
        model=args.model,
        token=args.token or os.environ.get("INFEROPS_TOKEN") or None,
        input_file=args.input_file,
        rate=args.rate,
        arrivals=args.arrivals,
        scenario=scenario,
        max_inflight=args.max_inflight,
        timeout_s=timeout,
        seed=args.seed,
        late_tolerance_s=late_tolerance_s(args, limits),
    )
    if args.input_file:
        from inferops.load.payloads import bodies_from_file

        bodies_from_file(args.input_file, args.protocol)  # fail fast (exit 2) on a bad file
    if args.node_exporter:
        from inferops.measure.hostmetrics import NodeExporterSampler

        exporter = NodeExporterSampler(args.node_exporter)
        try:  # one scrape now: a wrong address is a usage error (exit 2) before any load
            exporter.scrape()
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise UsageError(f"--node-exporter: cannot read {exporter.url}: {reason}") from None
        args.node_exporter = exporter.url
    return RunSpec(
        config=config,
        users=args.users,
        duration_s=duration,
        warmup_s=warmup,
        limits=limits,
        slo_p99_ms=args.slo_p99_ms,
        node_exporter=args.node_exporter,
        command=["inferops", "bench", *sys.argv[2:]] if len(sys.argv) > 1 else [],
        profile=args.profile,
        progress=not args.quiet,
    )


def run(args: argparse.Namespace) -> int:
    spec = _spec(args)  # every usage error before anything is written
    from inferops.load import engine
    from inferops.load.payloads import TargetUnreachable
    from inferops.measure.runfolder import RunFolder
    from inferops.measure.summary import exit_code, headline

    try:  # 401/404/bad metadata are usage errors: raise them before a folder exists
        spec.config.load_bodies()
    except TargetUnreachable:
        pass  # measured as an invalid run (exit 3) with its folder
    out = args.out or os.path.join("runs", time.strftime("bench-%Y%m%d-%H%M%S", time.gmtime()))
    folder = RunFolder(out, overwrite=args.overwrite)
    if args.sweep:
        summary = engine.sweep(
            spec,
            folder,
            start_qps=args.sweep_start,
            max_qps=args.sweep_max,
            precision=args.sweep_precision,
            max_steps=args.sweep_max_steps,
            say=lambda m: print(m, file=sys.stderr, flush=True),
        )
        slo = summary.get("slo", {})
        best = slo.get("max_qps")
        print(
            f"max QPS at p99 <= {slo.get('p99_ms'):g} ms: "
            + (f"{best:.1f} req/s" if best else "none found"),
            file=sys.stderr,
        )
        for note in slo.get("notes", []):
            print(f"note: {note}", file=sys.stderr)
    else:
        summary = engine.measure(spec, folder)
        print(headline(summary), file=sys.stderr)
    for reason in summary.get("validity", []):
        print(f"invalid: {reason}", file=sys.stderr)
    for check in summary.get("thresholds", []):
        if check["ok"] is False:
            print(
                f"breach: {check['name']} = {check['value']} (limit {check['limit']:g})"
                + (f" - {check['note']}" if check.get("note") else ""),
                file=sys.stderr,
            )
    print(f"run folder: {folder.path}")
    return exit_code(summary)
