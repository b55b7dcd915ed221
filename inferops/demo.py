"""``inferops demo``: the whole pipeline on this machine, no GPU and no downloads.

Builds the embedded model, serves it in two configurations as two "profiles"
(dynamic batching vs per-request ``--max-batch-size 1``), sweeps each for the
highest QPS whose P99 meets the SLO, and renders ``reports/demo/index.html``.
It uses the same code paths as a fleet run: ``ServerProcess`` for the servers,
``inferops bench --sweep`` (a subprocess, as in CI) for the load, and the
report package for the page.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from inferops import validators
from inferops.exitcodes import INVALID, InvalidMeasurement, UsageError
from inferops.load.profiles import generator_cpus
from inferops.measure.validity import GENERATOR_LIMITED, INFLIGHT_CAP

#: (profile label, ServerProcess keyword arguments, what it is)
PROFILES: list[tuple[str, dict, str]] = [
    ("cpu-dynamic-batching", {"max_batch_size": 32}, "dynamic batching, up to 32 per batch"),
    ("cpu-batch-1", {"max_batch_size": 1}, "one request per inference (--max-batch-size 1)"),
]
#: ``--llm``: the embedded decoder with and without continuous batching
LLM_PROFILES: list[tuple[str, dict, str]] = [
    (
        "cpu-llm-continuous-batching",
        {"extra_args": ["--max-num-seqs", "32"]},
        "continuous batching, up to 32 sequences",
    ),
    ("cpu-llm-max-num-seqs-1", {"extra_args": ["--max-num-seqs", "1"]}, "one sequence at a time"),
]
#: ``--profiles``: what the optimisation-profile demo compares by default. int8-dynamic
#: is left out: on the convolutional cnn it becomes ConvInteger, 5x slower than FP32
#: here (onnxruntime#16009), and sweeping that slow a server takes minutes on its own;
#: ``--profiles all`` or benchmarks/profiles.py measure it
DEMO_OPTIMISATION_PROFILES = ("fp32", "int8-static", "openvino")
#: ``--profiles``: sweep budget per profile (3 profiles x 50 s + building, comparing
#: and calibrating stay within the demo's 5 minutes on a quiet 2-core machine)
PROFILE_SWEEP_BUDGET_S = 50.0
#: ``--profiles``: held-out samples each profile is compared with FP32 on (cnn's
#: agreement is cosine similarity on random inputs, which 256 samples resolve)
PROFILE_ACCURACY_SAMPLES = 256
#: ``--llm`` requests: short prompts and replies keep each request cheap, so a sweep
#: step gets its 600 samples within the demo's budget
LLM_PROMPT_WORDS, LLM_MAX_TOKENS = 16, 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the run folders and index.html "
        "(default reports/demo, with --llm reports/demo-llm)",
    )
    parser.add_argument(
        "--llm",
        action="store_true",
        help="the LLM demo: tinylm with continuous batching vs --max-num-seqs 1, "
        "load over the OpenAI API, knee on P99 TTFT/TPOT",
    )
    parser.add_argument(
        "--slo-ttft-ms",
        type=validators.positive,
        default=1000.0,
        help="--llm: P99 TTFT bound of the sweeps, ms (default 1000)",
    )
    parser.add_argument(
        "--slo-tpot-ms",
        type=validators.positive,
        default=100.0,
        help="--llm: P99 TPOT bound of the sweeps, ms (default 100)",
    )
    parser.add_argument(
        "--profiles",
        nargs="?",
        const=",".join(DEMO_OPTIMISATION_PROFILES),
        default=None,
        metavar="LIST",
        help="the optimisation-profile demo: FP32 vs INT8 vs OpenVINO of the model, each "
        "served on the same pinned cores and swept, with the accuracy against FP32, in one "
        f"report (default list {','.join(DEMO_OPTIMISATION_PROFILES)}; out reports/demo-profiles)",
    )
    parser.add_argument(
        "--model",
        default="cnn",
        choices=("mlp", "cnn", "dense"),
        help="embedded model to serve (default cnn)",
    )
    parser.add_argument(
        "--slo-p99-ms",
        type=validators.positive,
        default=None,
        help="P99 SLO the sweeps search against, ms (default 100; with --llm the "
        "report's E2E bound, default 5000)",
    )
    parser.add_argument(
        "--target-qps",
        type=validators.positive,
        default=1000.0,
        help="fleet throughput to size for, req/s (default 1000)",
    )
    parser.add_argument(
        "--step-duration",
        type=validators.duration,
        default="3s",
        help="measured window per sweep step (default 3s; the engine "
        "lengthens low-rate steps to get enough samples)",
    )
    parser.add_argument(
        "--sweep-budget",
        type=validators.positive,
        default=80.0,
        metavar="SECONDS",
        help="time one profile's sweep may take: no step starts that would end "
        "later, and the sweep keeps what it proved (default 80)",
    )
    parser.add_argument(
        "--server-cpus",
        default="1",
        help="CPUs each server is pinned to (default 1; the rest drive the load)",
    )


#: bench keeps to its --sweep-budget itself; only a sweep still running this long after
#: its budget (a hung step) is interrupted from here, and then reported as partial
BACKSTOP_S = 60.0
#: bench turns SIGINT into a partial run only while a step is measuring; just after a
#: step ends it writes that step and sets up the next, so the interrupt waits this long
#: after a "sweep step" line
STEP_SETUP_GRACE_S = 3.0
#: the server and the load generator each need a CPU of their own
MIN_CPUS = 2


def _bench(cmd: list[str], *, on_line, budget_s: float, cpus: set[int] | None = None) -> int:
    """Run ``inferops bench`` as a subprocess, streaming its stderr lines to ``on_line``.

    After ``budget_s`` it gets SIGINT, as from Ctrl-C: bench then writes what it has
    as a partial run (exit 3), which the report shows but does not size. That
    keeps the demo bounded on a slow or busy machine.
    """
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # the generator on CPUs of its own: the server's threads must not delay its sends
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    last_step = [0.0]
    done = threading.Event()
    watchdog = threading.Thread(
        target=_watchdog, daemon=True, args=(proc, on_line, budget_s, last_step, done)
    )
    watchdog.start()
    try:
        for line in proc.stderr:
            if line.startswith("sweep step"):
                last_step[0] = time.monotonic()
            on_line(line.rstrip())
        proc.wait()
    finally:
        done.set()
        if proc.poll() is None:
            _stop(proc)
    return proc.returncode


def _watchdog(proc, on_line, budget_s: float, last_step: list, done: threading.Event) -> None:
    deadline = time.monotonic() + budget_s
    while not done.wait(0.2):
        now = time.monotonic()
        if now < deadline or now - last_step[0] < STEP_SETUP_GRACE_S:
            continue
        if proc.poll() is None:
            on_line(
                f"time budget of {budget_s:.0f} s spent: interrupting (the run will be partial)"
            )
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
        # give it time to write its partial run folder, then insist
        if not done.wait(30):
            _stop(proc)
        return


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _bench_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "inferops", "bench", "--quiet", "--overwrite", *args]


def run(args: argparse.Namespace) -> int:
    """Build, then per profile: serve, calibrate, sweep; then the report."""
    from rich.console import Console

    if args.profiles is not None:
        return run_optimisation_profiles(args, Console(stderr=True, soft_wrap=True))
    profiles = _profiles(args)
    _check_arguments(args)
    console = Console(stderr=True, soft_wrap=True)  # logs stay one line per message
    started = time.monotonic()
    with _progress(console, total=2 + 2 * len(profiles)) as steps:
        _build_model(args, console, steps)
        folders = [
            folder
            for profile, server_kwargs, what in profiles
            if (folder := _measure_profile(args, profile, server_kwargs, what, console, steps))
        ]
        if not folders:
            raise InvalidMeasurement("no sweep finished: nothing to report")
        runs, written = _render_report(args, folders, steps)
    console.print(f"demo finished in {time.monotonic() - started:.0f} s")
    return _verdict(runs, written, console, expected=len(profiles))


def _profiles(args) -> list[tuple[str, dict, str]]:
    """Fill in what --llm changes (model, out, SLO) and return the profiles to measure."""
    if args.llm:
        args.model = "tinylm"
    args.out = args.out or Path("reports/demo-llm" if args.llm else "reports/demo")
    if args.slo_p99_ms is None:
        args.slo_p99_ms = 5000.0 if args.llm else 100.0
    return LLM_PROFILES if args.llm else PROFILES


def _load_args(args) -> list[str]:
    """What bench needs to speak to the demo's server."""
    if not args.llm:
        return ["--model", args.model]
    return [
        "--protocol", "openai", "--openai-endpoint", "completions",
        "--prompt-tokens", str(LLM_PROMPT_WORDS), "--max-tokens", str(LLM_MAX_TOKENS),
    ]  # fmt: skip


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _check_arguments(args) -> None:
    cpus = usable_cpus()
    if cpus < MIN_CPUS:
        raise InvalidMeasurement(
            f"only {cpus} CPU: the server and the load generator would share it, so no "
            f"measurement could be trusted; run the demo where {MIN_CPUS} or more CPUs are usable"
        )
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file; the demo writes a folder there")
    try:
        from inferops.server.process import ServerProcess  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"the reference server is not available in this checkout ({exc})"
        ) from None


class _Steps:
    """The demo's progress display: an overall bar and a line saying what runs now."""

    def __init__(self, progress, total: int):
        self.progress = progress
        self.overall = progress.add_task("demo", total=total)
        self.detail = progress.add_task("", total=None)

    def doing(self, what: str) -> None:
        self.progress.update(self.detail, description=what)

    def done(self) -> None:
        self.progress.advance(self.overall)


@contextlib.contextmanager
def _progress(console, *, total: int):
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=console, transient=False) as progress:
        steps = _Steps(progress, total)
        yield steps
        progress.update(steps.detail, description="done", total=1, completed=1)


def _build_model(args, console, steps: _Steps) -> None:
    from inferops.models import resolve

    steps.doing(f"building the embedded {args.model} model")
    model_path = resolve(args.model)
    steps.done()
    console.print(f"model {args.model}: {model_path}")


def _measure_profile(args, profile, server_kwargs, what, console, steps: _Steps) -> Path | None:
    """Serve one profile, calibrate, sweep; the sweep's run folder (None if it left none)."""
    from inferops.server.process import ServerProcess

    runs_dir = args.out / "runs"
    steps.doing(f"{profile}: starting server ({what})")
    with ServerProcess(
        model=args.model, port=None, cpus=args.server_cpus, **server_kwargs
    ) as server:
        users = _calibration_users(args)
        steps.doing(f"{profile}: calibrating ({users} user{'s' * (users > 1)}, 2 s)")
        start_qps = _calibrate(args, server.url, runs_dir / "calibration" / profile, profile)
        steps.done()
        folder = runs_dir / profile
        steps.doing(f"{profile}: sweep from {start_qps:.0f} req/s")
        code = _sweep(args, server.url, folder, profile, start_qps, console, steps)
        steps.done()
    if (folder / "summary.json").exists():
        return folder
    console.print(
        f"[red]{profile}: the sweep left no summary.json "
        f"(bench exit {code}); leaving it out of the report[/red]"
    )
    return None


def _calibrate(args, url: str, folder: Path, profile: str) -> float:
    """One closed-loop user measures the unloaded service rate, so the sweep starts
    near this machine's capacity instead of guessing."""
    code = _bench(
        _bench_cmd(
            "--target", url, *_load_args(args), "--users", str(_calibration_users(args)),
            "--duration", "2s", "--warmup", "1s", "--out", str(folder), "--profile", profile,
        ),
        on_line=lambda _line: None,
        budget_s=60,
        cpus=generator_cpus(args.server_cpus),
    )  # fmt: skip
    return _calibrated_start(folder, code)


def _sweep(args, url, folder, profile, start_qps, console, steps: _Steps) -> int:
    """The SLO sweep, exactly as `inferops bench --sweep` runs in a fleet."""

    def show(line: str) -> None:
        if line.startswith(("sweep step", "sweep:", "time budget")):
            steps.doing(f"{profile}: {line}")
            console.print(f"  {profile}: {line}")

    code = _bench(
        _bench_cmd(
            "--target", url, *_load_args(args), "--sweep", *_slo_args(args),
            "--sweep-start", f"{start_qps:.1f}",
            "--sweep-precision", "0.1", "--sweep-max-steps", "10",
            "--duration", f"{args.step_duration:g}", "--warmup", "1s",
            "--sweep-budget", f"{args.sweep_budget:g}s",
            "--out", str(folder), "--profile", profile,
        ),
        on_line=show,
        budget_s=args.sweep_budget * _budget_stretch() + BACKSTOP_S,
        cpus=generator_cpus(args.server_cpus),
    )  # fmt: skip
    if code == 2:
        raise UsageError(f"inferops bench --sweep rejected its arguments ({profile})")
    return code


def _calibration_users(args) -> int:
    """One user for the CNN. An LLM server batches concurrent streams, so one user would
    start continuous batching's sweep far below its capacity: calibrate with four."""
    return 4 if args.llm else 1


def _slo_args(args) -> list[str]:
    if args.llm:
        # a send late by 5 % of the TTFT bound is late (bench's default, 5 % of the E2E
        # bound, is 1 ms here: a 2-core box fails that against a 1 s TTFT SLO for nothing)
        late_ms = max(1.0, 0.05 * args.slo_ttft_ms)
        return [
            "--slo-ttft-ms", f"{args.slo_ttft_ms:g}", "--slo-tpot-ms", f"{args.slo_tpot_ms:g}",
            "--late-tolerance-ms", f"{late_ms:g}",
        ]  # fmt: skip
    return ["--slo-p99-ms", f"{args.slo_p99_ms:g}"]


def _render_report(args, folders: list[Path], steps: _Steps):
    from inferops.report import catalog
    from inferops.report.analysis import Options
    from inferops.report.cli import write_report
    from inferops.report.runs import load_runs

    steps.doing("rendering the report")
    options = Options(
        target_qps=args.target_qps,
        # an LLM sweep bounds TTFT/TPOT; the report's E2E sections need a bound of their own
        slo_p99_ms=args.slo_p99_ms if args.llm else None,
        catalog=catalog.load(),
        catalog_source=str(catalog.DEFAULT_PATH),
    )
    runs = load_runs(folders)
    written = write_report(runs, options, args.out / "index.html")
    steps.done()
    return runs, written


def _verdict(runs, written: Path, console, expected: int = len(PROFILES)) -> int:
    """0 when every profile was sized; else one line per profile saying why not, exit 3."""
    unsized = [r for r in runs if not (r.valid and r.slo and r.slo.max_qps)]
    missing = expected - len(runs)
    for run in unsized:
        console.print(f"[yellow]{run.profile}: no valid sizing: {why_unsized(run)}[/yellow]")
    if unsized or missing:
        console.print(
            f"[yellow]{len(unsized) + missing} of {expected} profiles could not be "
            "sized (see the report's Verdict); exit 3[/yellow]"
        )
    print(f"report written to {written.resolve()}")
    return INVALID if unsized or missing else 0


def why_unsized(run) -> str:
    """One line: why a profile's sweep gave no capacity on this machine."""
    steps = run.slo.steps if run.slo else []
    if steps and all(
        not st.valid
        and all(str(r).startswith((GENERATOR_LIMITED, INFLIGHT_CAP)) for r in st.validity)
        for st in steps
    ):
        lowest = min(st.offered_qps for st in steps)
        return (
            f"the load generator fell behind at every rate down to {lowest:g} req/s: "
            f"this machine ({usable_cpus()} CPUs) is too busy; close other programs and retry"
        )
    reasons = list(run.summary.validity)
    return reasons[-1] if reasons else "no step met the SLO"


def _calibrated_start(folder: Path, code: int) -> float:
    """Half the single-user throughput: a rate the server surely sustains."""
    import json

    summary = folder / "summary.json"
    if code == 2 or not summary.exists():
        raise UsageError(f"calibration run failed (inferops bench exit {code}); see {folder}")
    achieved = json.loads(summary.read_text()).get("achieved_qps") or 0
    if achieved <= 0:
        raise UsageError(f"calibration run measured no throughput; see {folder}")
    return max(5.0, 0.5 * achieved)


def _budget_stretch() -> float:
    # Imported here, not at module level: `inferops` builds every subcommand's parser at
    # start, and the load stack (hdrhistogram, locust) is not installed on server hosts.
    from inferops.load.engine import BUDGET_STRETCH

    return BUDGET_STRETCH


# --- inferops demo --profiles: FP32 vs INT8 vs OpenVINO --------------------------------------


def run_optimisation_profiles(args, console) -> int:
    """Make, compare, serve and sweep each optimisation profile (`inferops bench --sweep
    --profiles`, a subprocess as in CI), then the report with its profile section."""
    if args.llm:
        raise UsageError("--profiles compares profiles of a tensor model: drop --llm")
    from inferops.models.profileset import parse_names

    names = parse_names(args.profiles)  # exit 2 for a bad list before anything runs
    args.out = args.out or Path("reports/demo-profiles")
    if args.slo_p99_ms is None:
        args.slo_p99_ms = 100.0
    _check_arguments(args)
    if args.sweep_budget == 80.0:  # the two-profile demo's default: four need less each
        args.sweep_budget = PROFILE_SWEEP_BUDGET_S
    started = time.monotonic()
    runs_dir = args.out / "runs"
    with _progress(console, total=len(names) + 2) as steps:
        steps.doing(f"{args.model}: making and comparing {', '.join(names[1:] or names)}")

        def show(line: str) -> None:
            if line.startswith(("profile ", "sweep step", "sweep:", "time budget")):
                steps.doing(line)
                console.print(f"  {line}")
            if line.startswith("profile ") and ": max QPS at the SLO" in line:
                steps.done()
            if (
                line.startswith("profile ")
                and ": serving" in line
                and line.startswith(f"profile {names[0]}:")
            ):
                steps.done()  # everything made and compared

        code = _bench(
            _bench_cmd(
                "--sweep", "--profiles", ",".join(names), "--model", args.model,
                "--slo-p99-ms", f"{args.slo_p99_ms:g}",
                "--accuracy-samples", str(PROFILE_ACCURACY_SAMPLES),
                "--server-cpus", args.server_cpus,
                "--sweep-precision", "0.1", "--sweep-max-steps", "10",
                "--duration", f"{args.step_duration:g}", "--warmup", "1s",
                "--sweep-budget", f"{args.sweep_budget:g}s",
                "--out", str(runs_dir),
            ),
            on_line=show,
            budget_s=len(names) * (args.sweep_budget * _budget_stretch() + 30) + BACKSTOP_S,
        )  # fmt: skip
        if code == 2:
            raise UsageError("inferops bench --sweep --profiles rejected its arguments")
        folders = [runs_dir / n for n in names if (runs_dir / n / "summary.json").exists()]
        if not folders:
            raise InvalidMeasurement(f"no profile's sweep finished (bench exit {code})")
        steps.doing("rendering the report")
        runs, facts, written = _profiles_report(args, folders)
        steps.done()
    console.print(f"demo finished in {time.monotonic() - started:.0f} s")
    _say_profiles(facts.profiles, console)
    return _verdict(runs, written, console, expected=len(names))


def _profiles_report(args, folders: list[Path]):
    """The report (with its profile section): ``(runs, facts, written path)``."""
    from inferops.report import catalog
    from inferops.report.analysis import Options, analyse
    from inferops.report.render import write_html
    from inferops.report.runs import load_runs

    options = Options(
        target_qps=args.target_qps,
        catalog=catalog.load(),
        catalog_source=str(catalog.DEFAULT_PATH),
    )
    runs = load_runs(folders)
    facts = analyse(runs, options)
    return runs, facts, write_html(facts, runs, args.out / "index.html")


def _say_profiles(profiles, console) -> None:
    """The comparison in a few lines, ending with the report's verdict line."""
    if profiles is None:
        return
    console.print(f"cpu: {profiles.cpu_text}")
    for row in profiles.rows:
        qps = "—" if row.max_qps is None else f"{row.max_qps:.0f} req/s"
        nodes = "refused" if row.refused else f"{row.nodes} nodes"
        console.print(f"  {row.title:<22} {qps:>12}  {nodes:<8} accuracy {row.delta}")
    console.print(f"[bold]verdict: {profiles.verdict}[/bold]")
