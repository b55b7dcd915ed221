"""The rollout report: one self-contained HTML page from the rollout's state file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from inferops import __version__
from inferops.release.state import RolloutState


def _num(value, digits: int) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _row(decision) -> dict:
    ev = decision.evidence
    # the step's own numbers, else the canary's when the entry compares two runs
    figures = ev.get("canary") if isinstance(ev.get("canary"), dict) else ev
    return {
        "when": dt.datetime.fromtimestamp(decision.at, dt.timezone.utc).strftime("%H:%M:%S"),
        "phase": decision.phase,
        "decision": decision.decision,
        "reason": decision.reason,
        "p99": _num(figures.get("p99_ms"), 2),
        "errors": _num(
            None if figures.get("error_rate") is None else 100 * figures["error_rate"], 2
        )
        + (" %" if figures.get("error_rate") is not None else ""),
        "qps": _num(figures.get("achieved_qps"), 1),
        "run": figures.get("run"),
    }


def render(state: RolloutState) -> str:
    from inferops.templating import environment

    env = environment()
    rollback = next((d for d in state.decisions if d.decision == "rollback"), None)
    return env.get_template("rollout.html.j2").render(
        s=state,
        rollback=rollback,
        decisions=[_row(d) for d in state.decisions],
        inferops_version=__version__,
    )


def write(state: RolloutState, out: Path) -> Path:
    from inferops.atomicfile import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, render(state))
    return out
