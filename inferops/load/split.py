"""One global arrival schedule, split across Locust workers.

The cluster offers the requested rate as ONE arrival process. Every worker
walks the same global schedule (same seed, same ``t0``) and sends only the
arrivals it owns. Who owns an arrival is drawn from a second seeded stream:
each arrival carries a uniform ``u``, and the :class:`Plan` in force at its
offset lists the members; the arrival belongs to ``members[floor(u * n)]``.

That is random thinning with equal shares: each worker's arrivals form a
Poisson process of ``rate / n``, and their union is exactly the global
schedule, the very arrivals one process sends with the same seed. It is not a
per-worker rate: locust-plugins' ``constant_total_ips`` keeps its pacing state
per process, so its total depends on how many processes happen to run it.

The master (:class:`Coordinator`) decides the plan from Locust's own worker
list: a worker becomes a member once its scheduler says it is ready (custom
message ``inferops_ready``) and stops being one when Locust drops it (it quit,
or missed its heartbeats). Each change takes effect :data:`SPLIT_LEAD_S` after
the master decides, so every worker hears it first: a scheduler judges an
arrival only when it is less than :data:`JUDGE_HORIZON_S` away, and
``JUDGE_HORIZON_S + message latency < SPLIT_LEAD_S`` means no worker has
judged an arrival under a plan that has since changed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from inferops.load.arrivals import gaps

#: a re-split takes effect this long after the master decides it
SPLIT_LEAD_S = 0.5
#: a scheduler decides whether an arrival is its own only this close to it
JUDGE_HORIZON_S = 0.2
#: how long the master waits for the expected workers before starting with fewer
EXPECT_WAIT_S = 10.0
#: how often the master compares the plan with Locust's worker list
WATCH_INTERVAL_S = 0.1
#: the member id of a process that runs alone (LocalRunner)
LOCAL = "local"

PLAN_MESSAGE = "inferops_plan"
READY_MESSAGE = "inferops_ready"
FLUSH_MESSAGE = "inferops_flush"
FLUSHED_MESSAGE = "inferops_flushed"


@dataclass
class Plan:
    """The global schedule (``t0``, ``seed``) and, over time, who sends which arrival.

    ``splits`` is ``[(from_offset_s, (member, ...)), ...]`` in offset order; the
    first starts at 0.
    """

    t0: float
    seed: int
    splits: list[tuple[float, tuple[str, ...]]] = field(default_factory=list)
    version: int = 0

    @classmethod
    def alone(cls, t0: float, seed: int | None) -> Plan:
        """A process with nobody to share with: it owns every arrival."""
        return cls(t0=t0, seed=new_seed() if seed is None else seed, splits=[(0.0, (LOCAL,))])

    def members_at(self, offset: float) -> tuple[str, ...]:
        splits = self.splits
        for start, members in reversed(splits):
            if start <= offset:
                return members
        return splits[0][1] if splits else ()

    def owns(self, member: str, offset: float, u: float) -> bool:
        members = self.members_at(offset) if len(self.splits) > 1 else self.splits[0][1]
        n = len(members)
        if n == 1:
            return members[0] == member
        return n > 0 and members[int(u * n)] == member

    def includes(self, member: str) -> bool:
        return any(member in members for _, members in self.splits)

    def to_message(self) -> dict:
        return {
            "t0": self.t0,
            "seed": self.seed,
            "splits": [[start, list(members)] for start, members in self.splits],
            "version": self.version,
        }

    @classmethod
    def from_message(cls, data: dict) -> Plan:
        return cls(
            t0=float(data["t0"]),
            seed=int(data["seed"]),
            splits=[(float(s), tuple(m)) for s, m in data["splits"]],
            version=int(data["version"]),
        )


def new_seed() -> int:
    return random.SystemRandom().randrange(2**32)


def due(start: float, offset: float, schedule_s: float, window_end: float) -> float | None:
    """The clock time an arrival at ``offset`` is due, or None once the schedule is over.

    Over at ``schedule_s`` or at the measured window's end, whichever comes first: the
    clock time is a float rounded to ~0.2 µs, so the last arrival of a constant schedule
    (offset 4.999999999999999 of 5 s at 3 req/s) can land exactly on the window's end.
    Sent, it would be answered and counted by the server but never by the run.
    """
    intended = start + offset
    if offset >= schedule_s or intended >= window_end:
        return None
    return intended


def walk(
    rate_at: Callable[[float], float], *, kind: str, seed: int
) -> Iterator[tuple[float, float]]:
    """The global schedule: ``(offset_s, u)`` per arrival, ``u`` deciding its owner.

    Gaps and owners come from separate streams, so the offsets do not depend on
    how many workers share them.
    """
    owners = random.Random(f"{seed}:owners")
    draw = owners.random
    for offset in gaps(rate_at, kind=kind, seed=seed):
        yield offset, draw()


def owned_count(plan: Plan, member: str, rate_at, *, kind: str, until_s: float) -> int:
    """How many arrivals of ``plan`` before ``until_s`` belong to ``member`` (for tests)."""
    n = 0
    for offset, u in walk(rate_at, kind=kind, seed=plan.seed):
        if offset >= until_s:
            return n
        n += plan.owns(member, offset, u)
    return n


class Coordinator:
    """The master's side: keeps the plan in step with Locust's worker list.

    ``expected``: start the schedule once this many schedulers are ready (or
    after :data:`EXPECT_WAIT_S` with those there are). ``on_change(event)`` is
    told of every join and leave after the start.
    """

    def __init__(self, runner, *, seed: int | None, expected: int = 1, on_change=None):
        self.runner = runner
        self.seed = new_seed() if seed is None else seed
        self.expected = max(1, expected)
        self.ready: set[str] = set()
        self.plan: Plan | None = None
        self.on_change = on_change
        self.started = time.time()
        self.greenlet = None

    # -- Locust hooks ---------------------------------------------------------
    def on_ready(self, environment=None, msg=None, **_kw) -> None:
        """A worker's scheduler waits for its share (custom message)."""
        self.ready.add(msg.node_id)
        self.update()

    def start(self) -> Coordinator:
        import gevent

        def loop():
            while True:
                gevent.sleep(WATCH_INTERVAL_S)
                self.update()

        self.greenlet = gevent.spawn(loop)
        return self

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
            self.greenlet = None

    # -- the plan -------------------------------------------------------------
    def active(self) -> list[str]:
        """Ready schedulers on workers Locust still counts (not quit, not missing)."""
        clients = self.runner.clients
        alive = {c.id for c in clients.ready + clients.spawning + clients.running}
        return sorted(self.ready & alive, key=self.runner.get_worker_index)

    def update(self, now: float | None = None) -> bool:
        """Re-split when the members changed; True when a new plan went out."""
        now = time.time() if now is None else now
        members = tuple(self.active())
        plan = self.plan
        if plan is None:
            waited = now - self.started
            if not members or (len(members) < self.expected and waited < EXPECT_WAIT_S):
                return False
            self.plan = Plan(t0=now + SPLIT_LEAD_S, seed=self.seed, splits=[(0.0, members)])
        else:
            current = plan.splits[-1][1]
            if members == current:
                return False
            start = now + SPLIT_LEAD_S - plan.t0
            plan.splits.append((start, members))
            plan.version += 1
            if self.on_change is not None:
                for worker in current:
                    if worker not in members:
                        change = {"t": now, "offset_s": start, "left": worker}
                        self.on_change({**change, "share": 1.0 / len(current)})
                for worker in members:
                    if worker not in current:
                        self.on_change({"t": now, "offset_s": start, "joined": worker})
        self.runner.send_message(PLAN_MESSAGE, self.plan.to_message())
        return True
