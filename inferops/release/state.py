"""A rollout's durable state: where it is, what each node serves, and why.

Written atomically after every change, so a rollout killed at any moment can
be re-run: it reads this file and carries on from the last completed phase
(the step in progress is redone from its start), or rolls back. The decision
log is the rollout report's source: every decision with its evidence.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inferops.exitcodes import UsageError

SCHEMA = 1

#: phases in order; a rollout only moves forward, or jumps to a rollback
PHASES = (
    "planned",  # nothing changed yet
    "canary-deployed",  # the canary node serves the new version, weight 0
    "canary-checked",  # the canary passed its load test alone
    "shifting",  # traffic steps; ``step`` says which one is done
    "promoting",  # other nodes are being switched, one at a time
    "promoted",  # done: every node serves the new version
    "rolling-back",
    "rolled-back",
)
FINAL = ("promoted", "rolled-back")


@dataclass
class Decision:
    at: float
    phase: str
    decision: str  # "pass" | "rollback" | "promote" | "info"
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class RolloutState:
    version: str
    previous_version: str
    model_sha256: str
    canary: str
    nodes: list[str]
    steps: list[int]
    phase: str = "planned"
    step: int = -1  # index into ``steps`` of the last completed traffic step
    weights: dict[str, int] = field(default_factory=dict)  # node -> nginx weight (0 = down)
    serving: dict[str, str] = field(default_factory=dict)  # node -> version it serves
    promoted: list[str] = field(default_factory=list)  # nodes switched during promotion
    decisions: list[Decision] = field(default_factory=list)
    schema: int = SCHEMA

    # -- invariants the rollout must never break ---------------------------------
    def drained(self) -> list[str]:
        return [n for n in self.nodes if self.weights.get(n, 0) == 0]

    def check_invariants(self) -> None:
        """Never two nodes drained at once: N-1 of N always serve."""
        if len(self.nodes) > 1 and len(self.drained()) > 1:
            raise AssertionError(f"more than one node drained: {self.drained()}")

    def log(self, decision: str, reason: str, **evidence: Any) -> Decision:
        entry = Decision(time.time(), self.phase, decision, reason, evidence)
        self.decisions.append(entry)
        return entry

    @property
    def finished(self) -> bool:
        return self.phase in FINAL

    # -- persistence -------------------------------------------------------------
    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> RolloutState:
        if data.get("schema") != SCHEMA:
            raise UsageError(f"rollout state schema {data.get('schema')!r} is not {SCHEMA}")
        data = dict(data)
        data["decisions"] = [Decision(**d) for d in data.get("decisions", [])]
        if data.get("phase") not in PHASES:
            raise UsageError(f"rollout state has an unknown phase {data.get('phase')!r}")
        return cls(**data)

    def save(self, path: Path) -> None:
        from inferops.atomicfile import atomic_write_text

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> RolloutState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: cannot read rollout state: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path}: rollout state is not a JSON object")
        try:
            return cls.from_json(data)
        except TypeError as exc:
            raise UsageError(f"{path}: malformed rollout state: {exc}") from None
