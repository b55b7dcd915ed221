"""``inferops nightly``: provision, run, store, compare, confirm, report.

1. optionally provisions with the real ``pyinfra`` CLI (idempotent deploy);
2. runs each configured scenario with ``inferops bench`` in a subprocess
   (fixed-rate or SLO sweep) into ``OUT/<UTC stamp>/<scenario>``;
3. stores each run (one transaction per run);
4. compares it with the scenario's baseline and its history
   (:mod:`inferops.history.detect`);
5. on a suspected change, reruns that scenario once to confirm;
6. renders the trend report;
7. exits 1 on a confirmed regression, 3 when a run was invalid or not
   comparable with its baseline, else 0.

The first valid run of a scenario becomes its baseline.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from inferops.exitcodes import BREACH, INVALID, OK, USAGE, UsageError
from inferops.history import attribution
from inferops.history.compare import Comparison, Knobs, compare
from inferops.history.config import NightlyConfig, Scenario
from inferops.history.detect import HistoryKnobs, confirm, suspects
from inferops.history.metrics import METRICS
from inferops.history.runsource import load_run
from inferops.history.store import Store, open_store


@dataclass
class ScenarioResult:
    name: str
    profile: str
    run_id: int | None = None
    run_dir: str | None = None
    bench_exit: int | None = None
    status: str = "ok"  # ok | baseline-set | regression | improvement | invalid | not-comparable
    notes: list[str] = field(default_factory=list)
    suspects: list[str] = field(default_factory=list)
    rerun_id: int | None = None
    confirmed: list[dict] = field(default_factory=list)
    comparison: dict | None = None


def _log(text: str) -> None:
    print(f"nightly: {text}", flush=True)


def provision(config: NightlyConfig) -> None:
    """Run the configured pyinfra deploy; UsageError when it fails."""
    p = config.provision
    cmd = [sys.executable, "-m", "pyinfra", "-y", p.inventory, p.deploy]
    if p.limit:
        cmd += ["--limit", p.limit]
    cmd += p.extra_args
    _log(f"provisioning: {' '.join(cmd[2:])}")
    try:
        done = subprocess.run(cmd, timeout=p.timeout_s)
    except subprocess.TimeoutExpired:
        raise UsageError(f"provisioning did not finish within {p.timeout_s:g} s") from None
    except OSError as exc:
        raise UsageError(f"provisioning could not start: {exc}") from None
    if done.returncode != 0:
        raise UsageError(f"provisioning failed: pyinfra exited {done.returncode}")


def bench_command(scenario: Scenario, out: Path, thresholds: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "inferops", "bench", "--quiet", "--target", scenario.target]
    cmd += ["--protocol", scenario.protocol, "--profile", scenario.profile, "--out", str(out)]
    if scenario.model:
        cmd += ["--model", scenario.model]
    cmd += ["--duration", f"{scenario.duration_s:g}", "--warmup", f"{scenario.warmup_s:g}"]
    if scenario.sweep:
        cmd += ["--sweep", "--slo-p99-ms", f"{scenario.slo_p99_ms:g}"]
        for flag, value in (
            ("--sweep-start", scenario.sweep_start),
            ("--sweep-max", scenario.sweep_max),
            ("--sweep-precision", scenario.sweep_precision),
        ):
            if value is not None:
                cmd += [flag, f"{value:g}"]
    else:
        cmd += ["--rate", f"{scenario.rate:g}"]
        if scenario.slo_p99_ms is not None:
            cmd += ["--slo-p99-ms", f"{scenario.slo_p99_ms:g}"]
    if scenario.seed is not None:
        cmd += ["--seed", str(scenario.seed)]
    if thresholds:
        cmd += ["--thresholds", thresholds]
    return cmd + scenario.bench_args


def bench(scenario: Scenario, out: Path, thresholds: str | None) -> int:
    """Run ``inferops bench`` for ``scenario`` into ``out``; its exit code."""
    cmd = bench_command(scenario, out, thresholds)
    _log(f"{scenario.name}: inferops bench -> {out}")
    try:
        done = subprocess.run(cmd, timeout=scenario.timeout_s, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        raise UsageError(
            f"scenario {scenario.name}: inferops bench ran past {scenario.timeout_s:g} s"
        ) from None
    if done.returncode == USAGE:
        tail = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise UsageError(f"scenario {scenario.name}: inferops bench refused its flags: {tail}")
    if done.returncode not in (OK, BREACH, INVALID):
        tail = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise UsageError(
            f"scenario {scenario.name}: inferops bench exited {done.returncode}: {tail}"
        )
    return done.returncode


def _earlier(store: Store, scenario: str, profile: str, before_id: int, baseline_id: int):
    """Metric series of the valid runs stored before ``before_id``, and the baseline's position."""
    runs = [r for r in store.runs(scenario, profile) if r.valid and r.id != before_id]
    runs = [r for r in runs if r.id < before_id]
    values = {m: [r.metrics.get(m) for r in runs] for m in METRICS}
    index = next((i for i, r in enumerate(runs) if r.id == baseline_id), None)
    return values, index


def _judge(
    config: NightlyConfig,
    store: Store,
    scenario: Scenario,
    stamp_dir: Path,
    result: ScenarioResult,
) -> None:
    knobs = Knobs(min_effect=config.min_effect, p_value=config.p_value)
    hknobs = HistoryKnobs(
        min_history=config.min_history, changepoint_pvalue=config.changepoint_pvalue
    )
    candidate = load_run(result.run_dir)
    if not candidate.summary.get("valid") or candidate.summary.get("partial"):
        result.status = "invalid"
        reasons = "; ".join(candidate.summary.get("validity") or []) or "partial run"
        result.notes.append(f"run is invalid, not judged: {reasons}")
        return
    baseline_id = store.baseline(scenario.name, scenario.profile)
    if baseline_id is None:
        store.set_baseline(result.run_id)
        result.status = "baseline-set"
        result.notes.append(f"first valid run: #{result.run_id} is now the baseline")
        return
    baseline = store.run_data(baseline_id)
    comparison: Comparison = compare(baseline, candidate, knobs)
    result.comparison = comparison.to_json()
    if not comparison.comparable:
        result.status = "not-comparable"
        result.notes += [
            f"not comparable with baseline #{baseline_id}: {p}" for p in comparison.problems
        ]
        result.notes.append("set a new baseline (inferops baseline set) if the change was intended")
        return
    earlier, base_index = _earlier(
        store, scenario.name, scenario.profile, result.run_id, baseline_id
    )
    suspected = suspects(comparison, earlier, knobs=hknobs)
    result.suspects = [f"{s.metric} ({s.kind}, {100 * s.change.effect:+.1f} %)" for s in suspected]
    if not suspected:
        flagged = [c.metric for c in comparison.changes if c.flagged]
        if flagged:
            result.notes.append(
                f"moved vs baseline but within the spread of earlier runs: {', '.join(flagged)}"
            )
        return
    _log(f"{scenario.name}: suspected {', '.join(result.suspects)}")
    if config.rerun:
        rerun_dir = stamp_dir / f"{scenario.name}-rerun"
        code = bench(scenario, rerun_dir, config.thresholds)
        rerun_data = load_run(rerun_dir)
        result.rerun_id, _ = store.add_run(
            rerun_data, scenario=scenario.name, profile=scenario.profile
        )
        if code == INVALID or not rerun_data.summary.get("valid"):
            result.status = "invalid"
            result.notes.append("the confirming rerun was invalid: nothing confirmed")
            return
        rerun_cmp = compare(baseline, rerun_data, knobs)
        final = confirm(suspected, rerun_cmp, earlier, baseline_index=base_index, knobs=hknobs)
        unconfirmed = {s.metric for s in suspected} - {s.metric for s in final}
        if unconfirmed:
            result.notes.append(f"not confirmed by the rerun: {', '.join(sorted(unconfirmed))}")
    else:
        final = suspected
        result.notes.append("rerun = false: suspects count as confirmed")
    env = attribution.diff(baseline.manifest, candidate.manifest)
    for s in final:
        finding = {
            "scenario": scenario.name,
            "profile": scenario.profile,
            "metric": s.metric,
            "kind": s.kind,
            "baseline_run_id": baseline_id,
            "candidate_run_id": result.run_id,
            "rerun_run_id": result.rerun_id,
            "effect": s.change.effect,
            "ci_low": s.change.ci_low,
            "ci_high": s.change.ci_high,
            "p_value": s.change.p_value,
            "test": s.change.test + (f"; history: {s.history.note}" if s.history.note else ""),
            "attribution": env,
        }
        finding["id"] = store.add_finding(finding)
        result.confirmed.append(finding)
    kinds = {s.kind for s in final}
    if "regression" in kinds:
        result.status = "regression"
    elif "improvement" in kinds:
        result.status = "improvement"


def run_nightly(config: NightlyConfig, *, stamp: str | None = None) -> tuple[int, dict]:
    """The whole job; returns ``(exit code, result document)``."""
    stamp = stamp or dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    stamp_dir = Path(config.out) / stamp
    if config.provision.enabled:
        provision(config)
    else:
        _log("provisioning skipped (provision.enabled = false)")
    results: list[ScenarioResult] = []
    with open_store(config.store, write=True) as store:
        for scenario in config.scenarios:
            result = ScenarioResult(scenario.name, scenario.profile)
            results.append(result)
            run_dir = stamp_dir / scenario.name
            result.bench_exit = bench(scenario, run_dir, config.thresholds)
            result.run_dir = str(run_dir)
            result.run_id, _ = store.add_run(
                load_run(run_dir), scenario=scenario.name, profile=scenario.profile
            )
            _judge(config, store, scenario, stamp_dir, result)
            _log(f"{scenario.name}: {result.status} (run #{result.run_id})")
            for note in result.notes:
                _log(f"  {note}")
        from inferops.history.trend import write_report

        report = write_report(store, config.report_path, min_effect=config.min_effect)
        where = store.location
    statuses = {r.status for r in results}
    if "regression" in statuses:
        code = BREACH
    elif statuses & {"invalid", "not-comparable"}:
        code = INVALID
    else:
        code = OK
    document = {
        "stamp": stamp,
        "config": str(config.path),
        "store": where,
        "report": str(report),
        "exit_code": code,
        "scenarios": [asdict(r) for r in results],
    }
    stamp_dir.mkdir(parents=True, exist_ok=True)
    from inferops.history.runsource import atomic_write_text

    atomic_write_text(
        stamp_dir / "nightly.json", json.dumps(document, indent=2, default=str) + "\n"
    )
    document["result_file"] = str(stamp_dir / "nightly.json")
    return code, document
