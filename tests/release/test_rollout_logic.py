"""The rollout's decision sequence, driven through a scripted in-memory fleet.

``ScriptedFleet`` is a FAKE of the world (nodes, nginx weights, load results,
alerts) for the decision logic only; the real tiers drive real servers and
nginx (``test_rollout_local.py``) and the nspawn fleet.
"""

from __future__ import annotations

import json

import pytest

from inferops.release.rollout import Comparison, LoadResult, Plan, Rollout
from inferops.release.state import RolloutState

NODES = ["n1", "n2", "n3"]


class Crash(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in the rollout catches it."""


class ScriptedFleet:
    def __init__(
        self,
        *,
        canary_exit=0,
        regressed=False,
        alert_at_weight=None,
        crash_at_call=None,
        invalid_times=0,
        proven_breach_at_weight=None,
    ):
        self.serving = {n: "v1" for n in NODES}
        self.weights = {n: 100 for n in NODES}
        self.canary_exit, self.regressed = canary_exit, regressed
        self.alert_at_weight, self.crash_at_call = alert_at_weight, crash_at_call
        self.invalid_times = invalid_times
        self.proven_breach_at_weight = proven_breach_at_weight
        self.calls: list[tuple] = []
        self.max_drained = 0

    def _tick(self, *call):
        self.calls.append(call)
        if self.crash_at_call is not None and len(self.calls) == self.crash_at_call:
            raise Crash()

    def deploy(self, node, version):
        self._tick("deploy", node, version)
        self.serving[node] = version

    def set_weights(self, weights):
        self._tick("weights", dict(weights))
        self.weights = dict(weights)
        self.max_drained = max(self.max_drained, sum(1 for w in weights.values() if w == 0))

    def load_test(self, label, node, rate):
        self._tick("load", label, node, rate)
        if self.invalid_times:
            self.invalid_times -= 1
            return LoadResult(label, 3, f"runs/{len(self.calls)}", invalid_because=("noisy",))
        if node is None and self.weights["n1"] == self.proven_breach_at_weight:
            # bench's exit 1 from a run its generator limited (summary.breach_proven)
            return LoadResult(label, 1, "runs/x", p99_ms=2000.0, breach_proven="proven ...")
        version = self.serving[node] if node else None
        code = self.canary_exit if version == "v2" else 0
        return LoadResult(label, code, f"runs/{len(self.calls)}", p99_ms=10.0, error_rate=0.0)

    def compare(self, baseline, candidate):
        return Comparison(
            self.regressed, "P99 +40 % (p < 0.001)" if self.regressed else "no change"
        )

    def firing_alerts(self, seconds, lookback_s=0.0):
        assert lookback_s > 0  # the step's own load window is always looked back on
        canary_weight = self.weights["n1"]
        if self.alert_at_weight is not None and canary_weight == self.alert_at_weight:
            return ["InferenceP99LatencyHigh"]
        return []


def _plan(**kw):
    return Plan(
        version="v2",
        previous_version="v1",
        model_sha256="ab" * 32,
        canary="n1",
        nodes=NODES,
        steps=[10, 50, 100],
        rate=40.0,
        interval_s=0.0,
        **kw,
    )


def _run(fleet, state_path, **kw):
    return Rollout(_plan(**kw), fleet, state_path, log=lambda *_: None).run()


def test_a_good_version_is_promoted_on_every_node(tmp_path):
    fleet = ScriptedFleet()
    assert _run(fleet, tmp_path / "s.json") == 0
    assert fleet.serving == {n: "v2" for n in NODES}
    assert fleet.weights == {n: 100 for n in NODES}
    assert fleet.max_drained == 1
    state = RolloutState.load(tmp_path / "s.json")
    assert state.phase == "promoted"
    passes = [d for d in state.decisions if d.decision == "pass"]
    assert len(passes) == 1 + 3  # canary alone + three traffic steps, each with evidence
    assert all("run" in d.evidence or "canary" in d.evidence for d in passes)


def test_canary_weights_follow_the_steps(tmp_path):
    fleet = ScriptedFleet()
    _run(fleet, tmp_path / "s.json")
    lb_loads = [c for c in fleet.calls if c[0] == "load" and c[2] is None]
    # each step offers one node's rate per full member plus the canary's share
    assert [round(c[3], 3) for c in lb_loads] == [40 * 2.1, 40 * 2.5, 40 * 3.0]


@pytest.mark.parametrize(
    "fleet_kw, where, code",
    [
        ({"canary_exit": 1}, "breached thresholds", 1),
        ({"regressed": True}, "regressed", 1),
        ({"alert_at_weight": 50}, "alerts fired", 1),
        ({"canary_exit": 3}, "stayed invalid", 3),
        # a breach, not "cannot be judged", proven from a run with late sends
        ({"proven_breach_at_weight": 50}, "(exit 1; breach proven despite late sends)", 1),
    ],
)
def test_a_bad_version_is_rolled_back(tmp_path, fleet_kw, where, code):
    fleet = ScriptedFleet(**fleet_kw)
    assert _run(fleet, tmp_path / "s.json") == code
    assert fleet.serving == {n: "v1" for n in NODES}
    assert fleet.weights == {n: 100 for n in NODES}
    state = RolloutState.load(tmp_path / "s.json")
    assert state.phase == "rolled-back"
    rollback = [d for d in state.decisions if d.decision == "rollback"]
    assert len(rollback) == 1 and where in rollback[0].reason
    assert fleet.max_drained == 1


def test_an_invalid_measurement_is_repeated_then_judged(tmp_path):
    fleet = ScriptedFleet(invalid_times=1)
    assert _run(fleet, tmp_path / "s.json") == 0
    repeated = [d for d in json.loads((tmp_path / "s.json").read_text())["decisions"]
                if "invalid measurement" in d["reason"]]  # fmt: skip
    assert [d["reason"].split(": ", 1)[1] for d in repeated] == [
        "invalid measurement (attempt 1): noisy"
    ]
    fleet = ScriptedFleet(invalid_times=10)
    assert _run(fleet, tmp_path / "t.json") == 3  # cannot judge: rolled back, exit 3
    assert fleet.serving == {n: "v1" for n in NODES}


@pytest.mark.parametrize("scenario", [{}, {"alert_at_weight": 100}])
def test_killed_at_any_point_a_rerun_ends_clean(tmp_path, scenario):
    """Kill the rollout at every action in turn; the re-run always finishes cleanly."""
    full = ScriptedFleet(**scenario)
    _run(full, tmp_path / "full.json")
    total = len(full.calls)
    assert total > 10
    for k in range(1, total + 1):
        state_path = tmp_path / f"kill{k}.json"
        fleet = ScriptedFleet(crash_at_call=k, **scenario)
        with pytest.raises(Crash):
            _run(fleet, state_path)
        fleet.crash_at_call = None
        code = _run(fleet, state_path)  # the same fleet, a new process
        state = json.loads(state_path.read_text())
        assert state["phase"] in ("promoted", "rolled-back"), k
        expected = "v2" if state["phase"] == "promoted" else "v1"
        assert fleet.serving == {n: expected for n in NODES}, k
        assert fleet.weights == {n: 100 for n in NODES}, k
        assert fleet.max_drained <= 1, k
        assert code == (0 if expected == "v2" else 1)


def test_a_different_unfinished_rollout_blocks_a_new_one(tmp_path):
    fleet = ScriptedFleet(crash_at_call=4)
    with pytest.raises(Crash):
        _run(fleet, tmp_path / "s.json")
    other = Plan(
        version="v3",
        previous_version="v1",
        model_sha256="cd" * 32,
        canary="n1",
        nodes=NODES,
        steps=[100],
        rate=1.0,
    )
    from inferops.exitcodes import InferopsError

    with pytest.raises(InferopsError, match="unfinished rollout of version v2"):
        Rollout(other, ScriptedFleet(), tmp_path / "s.json", log=lambda *_: None)


@pytest.mark.parametrize(
    "fleet_kw, phase",
    [({"canary_exit": 1}, "canary-deployed"), ({"alert_at_weight": 50}, "shifting")],
)
def test_the_rollback_is_logged_in_the_phase_that_failed(tmp_path, fleet_kw, phase):
    _run(ScriptedFleet(**fleet_kw), tmp_path / "s.json")
    state = RolloutState.load(tmp_path / "s.json")
    assert [d.phase for d in state.decisions if d.decision == "rollback"] == [phase]


def test_abort_rolls_an_interrupted_rollout_back(tmp_path):
    fleet = ScriptedFleet(crash_at_call=8)  # mid-way through the traffic steps
    with pytest.raises(Crash):
        _run(fleet, tmp_path / "s.json")
    fleet.crash_at_call = None
    rollout = Rollout(_plan(), fleet, tmp_path / "s.json", log=lambda *_: None)
    assert rollout.state.phase == "shifting"
    assert rollout.abort() == 1
    assert fleet.serving == {n: "v1" for n in NODES}
    assert fleet.weights == {n: 100 for n in NODES}
    state = RolloutState.load(tmp_path / "s.json")
    assert state.phase == "rolled-back"
    assert [d.reason for d in state.decisions if d.decision == "rollback"] == [
        "aborted by the operator"
    ]
