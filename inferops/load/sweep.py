"""The SLO search: the highest arrival rate whose measured P99 meets the bound.

Pure logic over a ``run_step(rate) -> {"ok": bool, ...} | None`` callback so it
can be tested without servers. Bracketing then bisection: rates double from
``start`` until a step fails; the bracket ``[last ok, first failed]`` is then
halved until ``(hi - lo) / hi <= precision``. ``None`` from the callback stops
the search (interrupted run); ``{"stop": reason}`` ends it early but cleanly
(a time budget spent: what was found stands). Halving below a failing first
step stops at ``start / 8``, or at once when that step was invalid
(``"valid": False``) for a reason a lower rate cannot cure; an invalid step
marked ``"lower_helps": True`` (the load generator could not keep up) halves
like a miss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class SearchResult:
    best_rate: float | None = None
    best_index: int | None = None  # index of the step that proved best_rate
    converged: bool = False
    notes: list[str] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    last_invalid: bool = False
    stopped: bool = False  # ended early on purpose (budget), not interrupted


def search(
    run_step: Callable[[float], dict | None],
    *,
    start: float,
    ceiling: float = 1e6,
    precision: float = 0.02,
    max_steps: int = 25,
) -> SearchResult:
    result = SearchResult()
    lo, hi = None, None

    def step(rate: float) -> bool | None:
        out = run_step(rate)
        if out is not None and "stop" in out:
            result.notes.append(out["stop"])
            result.stopped = True
            return None
        result.rates.append(rate)
        if out is None:
            return None
        result.last_invalid = out.get("valid") is False and not out.get("lower_helps")
        if out["ok"] and (result.best_rate is None or rate > result.best_rate):
            result.best_rate, result.best_index = rate, len(result.rates) - 1
        return bool(out["ok"])

    rate = start
    # 1. bracket: double up (or halve down when the first step already fails)
    while len(result.rates) < max_steps:
        ok = step(rate)
        if ok is None:
            return result
        if ok:
            lo = rate
            if hi is not None:
                break
            if rate >= ceiling:
                result.notes.append(
                    f"met the SLO at the ceiling {ceiling:g} req/s; capacity is at least that"
                )
                result.converged = True
                return result
            rate = min(rate * 2, ceiling)
        else:
            hi = rate
            if lo is not None:
                break
            if result.last_invalid:
                # an invalid step says nothing about the target: going lower will not help
                result.notes.append(
                    f"the first step ({rate:g} req/s) was invalid; no capacity can be claimed"
                )
                return result
            rate = rate / 2
            if rate < start / 8:
                result.notes.append(f"no rate down to {rate * 2:g} req/s met the SLO")
                return result
    # 2. bisect the bracket
    while lo is not None and hi is not None and len(result.rates) < max_steps:
        if (hi - lo) / hi <= precision:
            result.converged = True
            break
        mid = (lo + hi) / 2
        ok = step(mid)
        if ok is None:
            return result
        if ok:
            lo = mid
        else:
            hi = mid
    else:
        if lo is not None and hi is not None and (hi - lo) / hi <= precision:
            result.converged = True
    if not result.converged and not result.stopped:
        result.notes.append(
            f"stopped after {max_steps} steps before reaching {precision:.0%} precision"
        )
    return result
