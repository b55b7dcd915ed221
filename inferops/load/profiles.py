"""``inferops bench --sweep --profiles fp32,int8-static,openvino --model cnn``: the profile axis.

For each optimisation profile of one model (:mod:`inferops.models.profileset`):

1. make it (``inferops model optimize``) or take the file ``--profile-file`` names,
   and compare it with FP32 on held-out samples (``inferops model compare``), all
   before any load, so a bad model or calibration file is exit 2 at once;
2. serve it with ``inferops serve`` and the engine it needs (ONNX Runtime for
   ``.onnx``, OpenVINO for an IR), pinned to ``--server-cpus``, every profile on the
   same cores; the load generator runs on the other CPUs;
3. optionally measure one closed-loop user for 2 s (``--sweep-start`` not given):
   the sweep then starts at half that throughput, near this profile's capacity;
4. sweep for the max QPS at the SLO into ``OUT/<profile>/``, exactly as
   ``inferops bench --sweep`` does against any server, with ``accuracy.json`` and
   ``model-profile.json`` beside the sweep's files.

``inferops report OUT/*/`` then adds its profile comparison section.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import sys
import tempfile
from pathlib import Path

from inferops.exitcodes import UsageError

#: ``--server-cpus`` default: the server gets one core, the generator the rest
DEFAULT_SERVER_CPUS = "1"
#: closed-loop calibration of the first sweep rate
CALIBRATION_S, CALIBRATION_WARMUP_S = 2.0, 1.0


def cpu_set(spec: str) -> set[int]:
    """``0-2,5`` -> {0, 1, 2, 5}; exit 2 for anything else."""
    cpus: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()) or (hi and int(hi) < int(lo)):
            raise UsageError(f"--server-cpus {spec!r}: expected CPU numbers like 1 or 0-3,6")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def generator_cpus(server_cpus: str) -> set[int] | None:
    """The usable CPUs the server is not pinned to (None: nothing left, do not pin)."""
    try:
        usable = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return None
    rest = usable - cpu_set(server_cpus)
    return rest or None


def check_arguments(args) -> None:
    """Flag rules of the profile axis (exit 2 before anything is built or served)."""
    if not args.sweep:
        raise UsageError("--profiles measures each profile's max QPS at the SLO: add --sweep")
    if args.target:
        raise UsageError("--profiles serves each profile itself (inferops serve): drop --target")
    if not args.model:
        raise UsageError("--profiles needs --model: an embedded model name or an .onnx file")
    if args.protocol != "v2":
        raise UsageError("--profiles serves with inferops serve: use --protocol v2 (the default)")
    if not args.out:
        raise UsageError("--profiles writes one run folder per profile: give --out DIR")
    usable = generator_cpus(args.server_cpus)
    try:
        have = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        have = set()
    if have and not cpu_set(args.server_cpus) <= have:
        raise UsageError(
            f"--server-cpus {args.server_cpus}: not all usable here (usable: "
            f"{','.join(map(str, sorted(have)))})"
        )
    if have and usable is None:
        raise UsageError(
            f"--server-cpus {args.server_cpus} leaves no CPU for the load generator; "
            "pin the server to fewer cores"
        )


def run(args, say) -> tuple[list, Path]:
    """Prepare, serve and sweep every profile; returns ``([(name, Summary | None)], out)``."""
    from inferops.models import resolve
    from inferops.models.profileset import check_inputs, parse_files, parse_names, prepare

    check_arguments(args)
    names = parse_names(args.profiles)
    files = parse_files(args.profile_file or [], names)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; --profiles writes a folder of run folders there")
    for name in names:  # before minutes of work, not after the first profiles' sweeps
        if (out / name / "summary.json").exists() and not args.overwrite:
            raise UsageError(
                f"run folder {out / name} already holds a finished run; choose another "
                "--out or pass --overwrite"
            )
    workdir = out / "models"
    check_inputs(args.model, names, args.calibration, args.accuracy_samples)  # exit 2 here
    # In a child process: OpenVINO's and ONNX Runtime's native threads, once started in
    # this process, deadlock the load generator's gevent (the sweep hung at its first step).
    with concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        prepared = pool.submit(
            prepare,
            args.model,
            names,
            workdir,
            files=files,
            calibration=args.calibration,
            accuracy_samples=args.accuracy_samples,
            say=_say_stderr,
        ).result()
    source = resolve(args.model)
    # the load generator's CPUs (the servers get theirs from taskset)
    rest = generator_cpus(args.server_cpus)
    if rest:
        os.sched_setaffinity(0, rest)
    results = []
    for item in prepared:
        summary = _sweep_one(args, item, source, out, say)
        results.append((item.name, summary))
        if summary.partial:  # Ctrl-C (or a watchdog): the user wants out, not the next profile
            rest = [p.name for p in prepared[len(results) :]]
            if rest:
                say(f"interrupted: not swept: {', '.join(rest)}")
            break
    return results, out


def _sweep_one(args, item, source: Path, out: Path, say):
    """Serve one profile and sweep it into ``out/<name>``; the sweep's Summary."""
    from inferops.load import engine
    from inferops.measure.runfolder import RunFolder
    from inferops.models.profileset import ACCURACY_FILE, PROFILE_FILE, profile_record
    from inferops.server.process import ServerProcess

    name = Path(source).stem  # every profile answers under the source model's name
    label = f"{args.profile or 'cpu'}-{item.name}"
    server_args = ["--name", name, *_server_args(args)]
    say(f"profile {item.name}: serving {item.path.name} on {item.backend}, CPUs {args.server_cpus}")
    try:
        server = ServerProcess(
            item.path, backend=item.backend, cpus=args.server_cpus, extra_args=server_args
        ).start(timeout=120)
    except RuntimeError as exc:
        raise UsageError(
            f"profile {item.name}: the server did not start ({_last_line(exc)})"
        ) from None
    try:
        config = load_config_for(args, target=server.url, model=name, profile=label)
        folder = RunFolder(out / item.name, overwrite=args.overwrite, secrets=config.secrets)
        server_record = {
            "backend": item.backend,
            "cpus": args.server_cpus,
            "args": server_args,
            "generator_cpus": sorted(generator_cpus(args.server_cpus) or []),
        }
        folder.write_json(PROFILE_FILE, profile_record(item, source=source, server=server_record))
        if item.accuracy is not None:
            folder.write_json(ACCURACY_FILE, item.accuracy)
        start = args.sweep_start or _calibrated_start(config, say, item.name)
        say(f"profile {item.name}: sweep from {start:.1f} req/s")
        summary = engine.sweep(
            config,
            folder,
            start_qps=start,
            max_qps=args.sweep_max,
            precision=args.sweep_precision,
            max_steps=args.sweep_max_steps,
            say=say,
            command=["inferops", "bench", *_argv()],
            progress=not args.quiet,
            budget_s=args.sweep_budget,
            settle_max_s=args.sweep_settle_max,
        )
    finally:
        server.stop()
    best = summary.slo.max_qps if summary.slo else None
    say(
        f"profile {item.name}: max QPS at the SLO "
        + (f"{best:.1f} req/s" if best else "none found")
        + f" ({folder.path})"
    )
    return summary


def load_config_for(args, **overrides):
    """The load config of one profile: bench's flags, with its server's URL and names."""
    import argparse

    from inferops.load.options import LoadConfig

    config = LoadConfig.from_namespace(argparse.Namespace(**{**vars(args), **overrides}))
    _ = config.proto  # the protocol's own flag checks
    return config


def _calibrated_start(config, say, name: str) -> float:
    """Half the throughput of one closed-loop user: a rate the server surely sustains."""
    from inferops.load import engine
    from inferops.measure.runfolder import RunFolder

    calib = dataclasses.replace(
        config, rate=None, users=1, duration_s=CALIBRATION_S, warmup_s=CALIBRATION_WARMUP_S
    )
    with tempfile.TemporaryDirectory(prefix="inferops-calibrate-") as tmp:
        summary = engine.measure(calib, RunFolder(tmp), progress=False)
    achieved = summary.achieved_qps or 0.0
    if achieved <= 0:
        raise UsageError(f"profile {name}: one user got no reply in {CALIBRATION_S:g} s")
    say(f"profile {name}: one user sustained {achieved:.1f} req/s")
    return max(1.0, 0.5 * achieved)


def _say_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _server_args(args) -> list[str]:
    extra = []
    for item in args.server_arg or []:
        extra += item.split()
    return extra


def _argv() -> list[str]:
    return sys.argv[2:] if len(sys.argv) > 1 else []


def _last_line(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
