"""Canary rollout of a new model version, gated on open-loop load tests.

The sequence (each phase is saved before the next starts, see ``state``):

1. **Canary deployed.** The canary node is drained (nginx weight 0), measured
   on the *old* version at the rate under test, then switched to the new
   version. Measuring the same drained node before and after gives the
   baseline and the candidate on identical hardware and traffic.
2. **Canary checked alone.** The new version is load-tested on the drained
   canary at that rate and judged twice: against ``thresholds.toml`` (the
   bench exit code) and against the old version's latency distribution
   (the nightly comparison statistics). No user traffic has reached it yet.
3. **Shifting.** For each ``--steps`` value S the canary gets nginx weight S
   while every other node keeps 100: S is the canary's traffic as a percent of
   a full node's share, so 100 makes it a full member. Each step is
   load-tested through the load balancer and the Prometheus alerts are
   watched for ``--interval``.
4. **Promoting.** Every other node is drained, switched and restored, one at a
   time: at most one node is ever drained, so N-1 of N always serve.

Any failed check rolls back: the canary is drained, switched back to the
previous version and restored; nodes already promoted are switched back the
same way, one at a time. Every decision is logged with its evidence.

The effects (deploy, weights, load, comparison, alerts) are behind
``Actions`` so the same sequence drives the pyinfra fleet and a local fleet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from inferops.exitcodes import BREACH, INVALID, OK, InferopsError
from inferops.release.state import RolloutState

FULL_WEIGHT = 100


@dataclass(frozen=True)
class LoadResult:
    """One load test: the bench exit code and its run folder's headline numbers."""

    label: str
    exit_code: int  # inferops bench: 0 ok, 1 threshold breached, 3 invalid
    run_dir: str
    p99_ms: float | None = None
    error_rate: float | None = None
    achieved_qps: float | None = None
    #: why bench called the measurement invalid (its summary's ``validity``), if it did
    invalid_because: tuple[str, ...] = ()
    #: a breach bench proved from a run late sends made invalid (summary ``breach_proven``)
    breach_proven: str | None = None

    @property
    def evidence(self) -> dict[str, Any]:
        evidence = {
            "run": self.run_dir,
            "exit_code": self.exit_code,
            "p99_ms": self.p99_ms,
            "error_rate": self.error_rate,
            "achieved_qps": self.achieved_qps,
        }
        if self.invalid_because:
            evidence["invalid_because"] = list(self.invalid_because)
        if self.breach_proven:
            evidence["breach_proven"] = self.breach_proven
        return evidence


@dataclass(frozen=True)
class Comparison:
    regressed: bool
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)


class Actions(Protocol):
    """What a rollout does to the world. Each call either succeeds or raises."""

    def deploy(self, node: str, version: str) -> None:
        """Make ``node`` serve ``version`` (atomic switch, restart of its unit only)."""

    def set_weights(self, weights: dict[str, int]) -> None:
        """Load-balancer weights per node; 0 takes the node out of rotation."""

    def load_test(self, label: str, node: str | None, rate: float) -> LoadResult:
        """Open-loop load at ``rate`` on ``node`` directly, or through the LB (None)."""

    def compare(self, baseline: LoadResult, candidate: LoadResult) -> Comparison:
        """Is the candidate's latency distribution a regression on the baseline's?"""

    def firing_alerts(self, seconds: float, lookback_s: float = 0.0) -> list[str]:
        """The alerts that fired in the last ``lookback_s`` (the step's load) or while
        watched for ``seconds`` after it (empty when quiet)."""


class RollbackNeeded(Exception):
    def __init__(self, reason: str, exit_code: int = BREACH, evidence: dict | None = None):
        super().__init__(reason)
        self.reason, self.exit_code, self.evidence = reason, exit_code, evidence or {}


@dataclass
class Plan:
    version: str
    previous_version: str
    model_sha256: str
    canary: str
    nodes: list[str]
    steps: list[int]
    rate: float  # req/s a single node is tested at (its measured capacity, or --rate)
    interval_s: float = 30.0
    invalid_retries: int = 1  # an invalid (noisy) measurement is repeated this often

    def new_state(self) -> RolloutState:
        return RolloutState(
            version=self.version,
            previous_version=self.previous_version,
            model_sha256=self.model_sha256,
            canary=self.canary,
            nodes=list(self.nodes),
            steps=list(self.steps),
            weights={n: FULL_WEIGHT for n in self.nodes},
            serving={n: self.previous_version for n in self.nodes},
        )


class Rollout:
    def __init__(self, plan: Plan, actions: Actions, state_path: Path, log=print):
        self.plan, self.actions, self.state_path, self.say = plan, actions, state_path, log
        self.state = self._load_or_start()

    # -- state ---------------------------------------------------------------------
    def _load_or_start(self) -> RolloutState:
        if not self.state_path.exists():
            return self.plan.new_state()
        state = RolloutState.load(self.state_path)
        same = (state.version, state.model_sha256, state.canary, state.nodes) == (
            self.plan.version,
            self.plan.model_sha256,
            self.plan.canary,
            self.plan.nodes,
        )
        if not same and not state.finished:
            raise InferopsError(
                f"{self.state_path}: an unfinished rollout of version {state.version} "
                f"(canary {state.canary}) is recorded here; re-run it, or run with --abort "
                "to roll it back, before starting another"
            )
        if not same:
            return self.plan.new_state()
        return state

    def _save(self) -> None:
        self.state.check_invariants()
        self.state.save(self.state_path)

    def _set_weights(self, **changes: int) -> None:
        weights = dict(self.state.weights)
        weights.update(changes)
        if weights == self.state.weights:
            return  # already applied (a resumed run re-applies the saved weights first)
        self.state.weights = weights
        self._save()  # saved before applied: a re-run re-applies what was intended
        self.actions.set_weights(weights)

    def _switch(self, node: str, version: str) -> None:
        # recorded as unknown until the deploy returns: a crash in between makes a
        # re-run switch the node again rather than trust a version it may not run
        self.state.serving[node] = f"switching-to:{version}"
        self._save()
        self.actions.deploy(node, version)
        self.state.serving[node] = version
        self._save()

    def _decide(self, decision: str, reason: str, **evidence) -> None:
        """Record a decision with its evidence, and say it with its headline figures."""
        self.state.log(decision, reason, **evidence)
        self._save()
        figures = evidence.get("canary") if isinstance(evidence.get("canary"), dict) else evidence
        shown = {k: figures.get(k) for k in ("p99_ms", "error_rate", "achieved_qps", "run")}
        detail = ", ".join(f"{k}={v}" for k, v in shown.items() if v is not None)
        if evidence.get("alerts"):
            detail += f", alerts={evidence['alerts']}"
        self.say(f"[{decision}] {reason}" + (f" ({detail})" if detail else ""))

    def _enter(self, phase: str) -> None:
        self.state.phase = phase
        self._save()

    # -- the sequence --------------------------------------------------------------
    def run(self) -> int:
        s = self.state
        if s.finished:
            self.say(f"rollout of {s.version} already {s.phase}; nothing to do")
            return OK if s.phase == "promoted" else BREACH
        if s.phase != "planned":
            # weights are saved before they are applied: re-apply what was intended
            self.actions.set_weights(dict(s.weights))
        if s.phase == "rolling-back":
            return self._rollback(RollbackNeeded("resuming an interrupted rollback"))
        try:
            if s.phase == "planned":
                self._deploy_canary()
            if s.phase == "canary-deployed":
                self._check_canary_alone()
            if s.phase in ("canary-checked", "shifting"):
                self._shift_traffic()
            if s.phase == "promoting":
                self._promote()
        except RollbackNeeded as why:
            return self._rollback(why)
        except InferopsError as exc:  # a deploy or LB change failed: never leave it half-done
            return self._rollback(RollbackNeeded(f"an action failed: {exc}"))
        self._decide("promote", f"every node serves {s.version}", serving=dict(s.serving))
        self._enter("promoted")
        self.say(f"promoted {s.version} on {len(s.nodes)} nodes")
        return OK

    def abort(self, reason: str = "aborted by the operator") -> int:
        """Roll an unfinished rollout back (``inferops rollout --abort``)."""
        s = self.state
        if s.finished:
            self.say(f"rollout of {s.version} already {s.phase}; nothing to abort")
            return OK if s.phase == "promoted" else BREACH
        if s.phase != "planned":
            self.actions.set_weights(dict(s.weights))
        return self._rollback(RollbackNeeded(reason))

    def _measure(self, label: str, node: str | None, rate: float) -> LoadResult:
        """A load test, repeated when the measurement itself was invalid (noise)."""
        for attempt in range(self.plan.invalid_retries + 1):
            result = self.actions.load_test(label, node, rate)
            if result.exit_code != INVALID:
                return result
            why = "; ".join(result.invalid_because) or "no reason recorded"
            self._decide(
                "info",
                f"{label}: invalid measurement (attempt {attempt + 1}): {why}",
                **result.evidence,
            )
        raise RollbackNeeded(
            f"{label}: the measurement stayed invalid, so the new version cannot be judged",
            exit_code=INVALID,
            evidence=result.evidence,
        )

    def _deploy_canary(self) -> None:
        s, canary = self.state, self.state.canary
        self.say(f"draining canary {canary} and measuring {s.previous_version} on it")
        self._set_weights(**{canary: 0})
        # after a crash mid-switch the canary may run the new version: switch it back
        # (a node recorded as serving the previous version was read so at the start)
        if s.serving.get(canary) != s.previous_version:
            self._switch(canary, s.previous_version)
        baseline = self._measure("baseline (old version, canary alone)", canary, self.plan.rate)
        self._decide("info", "baseline measured on the drained canary", **baseline.evidence)
        self._baseline = baseline
        self.say(f"switching {canary} to {s.version}")
        self._switch(canary, s.version)
        self._enter("canary-deployed")

    def _check_canary_alone(self) -> None:
        canary = self.state.canary
        baseline = getattr(self, "_baseline", None)
        if baseline is None:  # resumed: the old version is gone from the canary, re-measure
            baseline = self._reference_from_log()
        candidate = self._measure("canary alone (new version)", canary, self.plan.rate)
        both = {"baseline": baseline.evidence, "canary": candidate.evidence}
        if candidate.exit_code == BREACH:
            raise RollbackNeeded("the canary breached thresholds.toml on its own", evidence=both)
        if candidate.exit_code != OK:
            raise RollbackNeeded(
                f"the canary's load test failed (exit {candidate.exit_code})", evidence=both
            )
        verdict = self.actions.compare(baseline, candidate)
        evidence = {**both, "comparison": verdict.evidence}
        if verdict.regressed:
            raise RollbackNeeded(
                f"canary regressed against the old version: {verdict.summary}", evidence=evidence
            )
        self._decide("pass", f"canary alone: within thresholds, {verdict.summary}", **evidence)
        self._enter("canary-checked")

    def _reference_from_log(self) -> LoadResult:
        for entry in reversed(self.state.decisions):
            ev = entry.evidence
            if entry.reason.startswith("baseline measured") and "run" in ev:
                return LoadResult(
                    "baseline",
                    ev["exit_code"],
                    ev["run"],
                    ev.get("p99_ms"),
                    ev.get("error_rate"),
                    ev.get("achieved_qps"),
                )
        raise RollbackNeeded("resumed without a recorded baseline measurement")

    def _shift_traffic(self) -> None:
        s = self.state
        if s.phase != "shifting":
            self._enter("shifting")
        others = len(s.nodes) - 1
        for index in range(s.step + 1, len(s.steps)):
            weight = s.steps[index]
            self.say(f"step {index + 1}/{len(s.steps)}: canary weight {weight}")
            self._set_weights(**{s.canary: weight})
            # offer each node about the rate under test, as it would see in production
            fleet_rate = self.plan.rate * (others + weight / FULL_WEIGHT)
            loaded_from = time.time()
            result = self._measure(f"step {weight}", None, fleet_rate)
            alerts = self.actions.firing_alerts(
                self.plan.interval_s, lookback_s=time.time() - loaded_from
            )
            evidence = {**result.evidence, "weight": weight, "alerts": alerts}
            if result.exit_code != OK:
                despite = "; breach proven despite late sends" if result.breach_proven else ""
                raise RollbackNeeded(
                    f"step {weight}: the load test through the load balancer failed "
                    f"(exit {result.exit_code}{despite})",
                    evidence=evidence,
                )
            if alerts:
                raise RollbackNeeded(
                    f"step {weight}: alerts fired: {', '.join(alerts)}", evidence=evidence
                )
            self._decide("pass", f"step {weight}: load test passed, no alert fired", **evidence)
            s.step = index
            self._save()
        self._enter("promoting")

    def _promote(self) -> None:
        s = self.state
        for node in s.nodes:
            if node == s.canary or s.serving.get(node) == s.version:
                continue
            self.say(f"promoting {node}: drain, switch, restore")
            self._set_weights(**{node: 0})
            self._switch(node, s.version)
            self._set_weights(**{node: FULL_WEIGHT})
            s.promoted.append(node)
            self._decide("info", f"{node} switched to {s.version}")
        # the canary's weight may still be below full after the last step
        self._set_weights(**{s.canary: FULL_WEIGHT})

    def _rollback(self, why: RollbackNeeded) -> int:
        s = self.state
        if s.phase != "rolling-back":
            # logged in the phase that failed: the report says where it stopped
            self._decide("rollback", why.reason, **why.evidence)
            self._enter("rolling-back")
        self.say(f"rolling back: {why.reason}")
        # a node left drained by an interrupted step goes first, then the canary,
        # then any promoted node: one drained at a time, never two
        order = [n for n in s.nodes if s.weights.get(n) == 0] + [s.canary] + s.nodes
        for node in dict.fromkeys(order):
            if s.serving.get(node) == s.previous_version and s.weights.get(node) == FULL_WEIGHT:
                continue
            self._set_weights(**{node: 0})
            if s.serving.get(node) != s.previous_version:
                self._switch(node, s.previous_version)
            self._set_weights(**{node: FULL_WEIGHT})
        self._decide(
            "info", f"every node serves {s.previous_version} again", serving=dict(s.serving)
        )
        self._enter("rolled-back")
        self.say(f"rolled back to {s.previous_version}")
        return why.exit_code
