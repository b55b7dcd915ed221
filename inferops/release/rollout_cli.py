"""``inferops rollout``: canary release of a new model version on a pyinfra fleet.

    inferops rollout --inventory inventory.py --model NEW.onnx [--version V]
        [--steps 10,50,100] (--rate QPS | --at-capacity --runs RUN_DIR...)
        [--interval 30s] [--prometheus URL] [--out DIR]

Re-running the same command resumes a rollout that was interrupted (its state
file is in ``--out``); ``--abort`` rolls it back instead. Exit 0 promoted, 1
rolled back on a failed check, 2 bad input, 3 rolled back because the
measurement could not judge the new version.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from inferops import validators

DEFAULT_STEPS = "10,50,100"


def _steps(text: str) -> list[int]:
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be weights like 10,50,100, got {text!r}") from None
    if not steps or any(not 0 < s <= 100 for s in steps):
        raise argparse.ArgumentTypeError(f"must be weights in 1..100, got {text!r}")
    if steps != sorted(set(steps)):
        raise argparse.ArgumentTypeError(f"must increase step by step, got {text!r}")
    return steps


def _version(text: str) -> str:
    from inferops.deploy.model_store import VERSION_PATTERN

    if not re.match(VERSION_PATTERN, text):
        raise argparse.ArgumentTypeError(
            f"must be a version label (letters, digits, . _ + -; up to 63), got {text!r}"
        )
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inventory", required=True, help="the pyinfra inventory (inventory.py)")
    parser.add_argument("--model", required=True, help="the new model version's .onnx file")
    parser.add_argument(
        "--version",
        type=_version,
        help="its version label (default: none; the version is named by its sha256 alone)",
    )
    parser.add_argument(
        "--steps",
        type=_steps,
        default=_steps(DEFAULT_STEPS),
        help="canary nginx weights, each as a percent of a full node's share "
        f"(default {DEFAULT_STEPS})",
    )
    rate = parser.add_mutually_exclusive_group(required=True)
    rate.add_argument("--rate", type=validators.positive, help="req/s one node is tested at")
    rate.add_argument(
        "--at-capacity",
        action="store_true",
        help="test one node at the rate the sizing report plans for it (its max QPS at the "
        "SLO x (1 - headroom)), from --runs",
    )
    parser.add_argument(
        "--runs", nargs="+", metavar="RUN_DIR", help="sweep run folders sized for --at-capacity"
    )
    parser.add_argument("--profile", help="with --at-capacity: the sized profile to use")
    parser.add_argument(
        "--interval",
        type=validators.duration_or_zero,
        default=30.0,
        help="how long Prometheus alerts are watched at each step (default 30s; 0: not watched)",
    )
    parser.add_argument(
        "--duration",
        type=validators.duration,
        default=20.0,
        help="each load test's measured duration (default 20s)",
    )
    parser.add_argument(
        "--warmup", type=validators.duration, default=3.0, help="each load test's warm-up (3s)"
    )
    parser.add_argument(
        "--thresholds", help="thresholds.toml the load tests gate on (default: bench's)"
    )
    parser.add_argument(
        "--late-tolerance-ms",
        type=validators.positive,
        metavar="MS",
        help="each load test's lateness criterion: a send this late counts as late, and "
        "over 1 %% late sends make a test invalid (default bench's: 5 %% of the P99 bound)",
    )
    parser.add_argument(
        "--retries",
        type=validators.int_range(0, 10),
        default=1,
        help="times an invalid (noisy) load test is repeated before the rollout gives up "
        "and rolls back with exit 3 (default 1)",
    )
    parser.add_argument(
        "--min-effect",
        default="5%",
        metavar="PCT",
        help="smallest latency change against the old version that counts (default 5%%)",
    )
    parser.add_argument(
        "--prometheus",
        type=validators.http_url,
        metavar="URL",
        help="Prometheus whose alerts stop a step: any that fired during the step's load or "
        "its --interval (default: none watched, said so); http://user:pass@host:9090 for "
        "basic auth",
    )
    parser.add_argument(
        "--prometheus-password-file",
        metavar="FILE",
        help="basic-auth password for --prometheus (user from the URL, default inferops)",
    )
    parser.add_argument("--canary", help="the canary host (default: the first inference host)")
    parser.add_argument(
        "--node-deploy",
        default="deploys/cpu_node.py",
        help="the deploy that provisions the inference hosts (default deploys/cpu_node.py)",
    )
    parser.add_argument(
        "--lb-deploy",
        default="deploys/loadbalancer.py",
        help="the load balancer's deploy (default deploys/loadbalancer.py)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="state, run folders, pyinfra logs and report (default rollouts/<name>-<version>)",
    )
    parser.add_argument(
        "--abort", action="store_true", help="roll back the unfinished rollout recorded in --out"
    )


def _rate(args) -> tuple[float, str]:
    from inferops.exitcodes import UsageError

    if args.rate is not None:
        if args.runs:
            raise UsageError("--runs is for --at-capacity; with --rate it is not used")
        return args.rate, f"--rate {args.rate:g} req/s"
    if not args.runs:
        raise UsageError("--at-capacity needs --runs RUN_DIR... (a sizing sweep of one node)")
    from inferops.release.sizing_source import choose, sized_runs

    sized = choose(
        sized_runs(
            args.runs, target_qps=None, slo_p99_ms=None, headroom=None, thresholds=args.thresholds
        ),
        args.profile,
    )
    rate = sized.max_qps_at_slo * (1.0 - sized.headroom)
    why = (
        f"at capacity: {sized.max_qps_at_slo:.1f} req/s max at the {sized.slo_p99_ms:g} ms SLO "
        f"x (1 - {sized.headroom:g} headroom) = {rate:.1f} req/s ({sized.path})"
    )
    return rate, why


def _planned_duration(duration_s: float, rate: float) -> float:
    """``--duration``, lengthened (and said so) until one node's load test at ``rate`` plans
    for enough requests that a Poisson count rarely falls short of a P99 claim's minimum:
    an invalid baseline is retried, then rolled back with exit 3."""
    import math

    from inferops.measure.validity import MIN_SAMPLES_P99, PLANNED_SAMPLES_P99

    needed_s = math.ceil(10 * PLANNED_SAMPLES_P99 / rate) / 10
    if duration_s >= needed_s:
        return duration_s
    print(
        f"--duration {duration_s:g}s at {rate:g} req/s plans ~{rate * duration_s:.0f} requests "
        f"a load test; a P99 needs {MIN_SAMPLES_P99}, and a random count falls short of that "
        f"too often below {PLANNED_SAMPLES_P99}: each load test runs {needed_s:g}s"
    )
    return needed_s


def run(args: argparse.Namespace) -> int:
    from inferops.deploy.artifacts import sha256_file
    from inferops.deploy.model_store import version_dir
    from inferops.exitcodes import InferopsError, UsageError
    from inferops.history.refs import parse_fraction
    from inferops.release import actions, fleet_view, report
    from inferops.release.rollout import Plan, Rollout

    model = Path(args.model)
    if not model.is_file() or model.suffix != ".onnx":
        raise UsageError(f"--model: not an .onnx file: {args.model}")
    for flag, path in (("--node-deploy", args.node_deploy), ("--lb-deploy", args.lb_deploy)):
        if not Path(path).is_file():
            raise UsageError(f"{flag}: no such deploy file: {path}")
    if args.thresholds and not Path(args.thresholds).is_file():
        raise UsageError(f"--thresholds: no such file: {args.thresholds}")
    parse_fraction(args.min_effect, name="--min-effect")
    rate, rate_why = _rate(args)
    duration_s = _planned_duration(args.duration, rate)

    view = fleet_view.load(args.inventory)
    names = [n.name for n in view.nodes]
    canary = args.canary or names[0]
    if canary not in names:
        raise UsageError(f"--canary {canary!r} is not an inference host ({', '.join(names)})")
    digest = sha256_file(model)
    version = version_dir(args.version, digest)
    out = args.out or Path("rollouts") / f"{view.model_name}-{version}"
    state_path = out / "state.json"

    if state_path.exists():
        from inferops.release.state import RolloutState

        recorded = RolloutState.load(state_path)
        previous = recorded.previous_version
        print(f"resuming the rollout recorded in {state_path} (phase {recorded.phase})")
    else:
        if args.abort:
            raise UsageError(f"--abort: no rollout recorded in {out}")
        served = fleet_view.served_versions(view)
        versions = set(served.values())
        if len(versions) != 1 or None in versions:
            listing = ", ".join(f"{n}: {v or 'no versioned model'}" for n, v in served.items())
            raise UsageError(
                "every node must serve the same version before a rollout (run the node "
                f"deploy first): {listing}"
            )
        previous = versions.pop()
        if previous == version:
            raise UsageError(f"every node already serves {version}: nothing to roll out")

    plan = Plan(
        version=version,
        previous_version=previous,
        model_sha256=digest,
        canary=canary,
        nodes=names,
        steps=args.steps,
        rate=rate,
        interval_s=args.interval,
        invalid_retries=args.retries,
    )
    pyinfra_logs = out / "pyinfra"
    world = _World(
        actions.BenchLoad(
            out_root=out / "runs",
            node_url={n.name: n.url for n in view.nodes},
            lb_url=view.lb_url,
            model=view.model_name,
            duration=f"{duration_s:g}s",
            warmup=f"{args.warmup:g}s",
            thresholds=args.thresholds,
            token_files={**{n.name: n.token_file for n in view.nodes}, None: view.lb_token_file},
            extra_args=[]
            if args.late_tolerance_ms is None
            else ["--late-tolerance-ms", f"{args.late_tolerance_ms:g}"],
        ),
        actions.CompareCli(extra_args=["--min-effect", args.min_effect]),
        actions.PrometheusAlerts(args.prometheus, password_file=args.prometheus_password_file)
        if args.prometheus
        else None,
        actions.PyinfraFleet(
            inventory=args.inventory,
            node_deploy=args.node_deploy,
            lb_deploy=args.lb_deploy,
            overrides={
                version: {
                    "server_model_version": args.version,
                    "server_model_source": str(model.resolve()),
                }
            },
            lb_limit=view.lb_name,
            log_dir=pyinfra_logs,
        ),
    )
    if world.alerts is not None:
        try:  # before anything changes: a Prometheus that cannot be read is a usage error
            world.alerts.firing_alerts(0)
        except InferopsError as exc:
            raise UsageError(f"--prometheus: {exc}") from None
    rollout = Rollout(plan, world, state_path, log=lambda line: print(line, flush=True))
    if not state_path.exists():
        print(f"rolling out {version} over {previous} on {', '.join(names)} (canary {canary})")
        print(f"rate: {rate_why}")
        if world.alerts is None:
            print("alerts: not watched (no --prometheus); each step is judged on its load test")
    try:
        code = rollout.abort() if args.abort else rollout.run()
    finally:
        if state_path.exists():
            report.write(rollout.state, out / "report.html")
    if rollout.state.phase == "promoted":
        print(
            f"make it permanent: set server_model_path = '{model.resolve()}'"
            + (f" and server_model_version = '{args.version}'" if args.version else "")
            + " in your inventory's data, or the next plain deploy switches back to "
            + previous
        )
    print(f"rollout {rollout.state.phase}: report {out / 'report.html'}, state {state_path}")
    return code


class _World:
    """The rollout's ``Actions``: load, comparison, alerts and fleet changes together."""

    def __init__(self, load, comparison, alerts, fleet):
        self.load, self.comparison, self.alerts, self.fleet = load, comparison, alerts, fleet

    def deploy(self, node, version):
        self.fleet.deploy(node, version)

    def set_weights(self, weights):
        self.fleet.set_weights(weights)

    def load_test(self, label, node, rate):
        return self.load.load_test(label, node, rate)

    def compare(self, baseline, candidate):
        return self.comparison.compare(baseline, candidate)

    def firing_alerts(self, seconds, lookback_s=0.0):
        return self.alerts.firing_alerts(seconds, lookback_s) if self.alerts else []
