"""The global arrival schedule split across workers, and the lossless merge (no Locust here).

The coordinator is driven with a stand-in for Locust's MasterRunner that has
just what it reads (``clients`` by state, ``get_worker_index``, ``send_message``);
the real runners are exercised end to end in test_distributed.py.
"""

from __future__ import annotations

import itertools
import random
from types import SimpleNamespace

import pytest

from inferops.load.options import LoadConfig
from inferops.load.split import SPLIT_LEAD_S, Coordinator, Plan, due, walk
from inferops.measure import summary as summary_mod
from inferops.measure.recorder import Recorder
from inferops.measure.validity import worker_reasons


def _schedule(rate: float, seconds: float, seed: int) -> list[tuple[float, float]]:
    return list(
        itertools.takewhile(
            lambda a: a[0] < seconds, walk(lambda t: rate, kind="poisson", seed=seed)
        )
    )


def test_every_arrival_has_exactly_one_owner_and_shares_are_equal():
    plan = Plan(t0=0.0, seed=3, splits=[(0.0, ("a", "b")), (50.0, ("a", "b", "c", "d"))])
    arrivals = _schedule(200.0, 100.0, seed=3)
    owners = {m: [] for m in "abcd"}
    for offset, u in arrivals:
        mine = [m for m in "abcd" if plan.owns(m, offset, u)]
        assert len(mine) == 1, (offset, mine)
        owners[mine[0]].append(offset)
    # the union is the global schedule, untouched
    assert sorted(itertools.chain(*owners.values())) == [o for o, _ in arrivals]
    first = [o for o, _ in arrivals if o < 50]
    for m in "ab":
        share = sum(o < 50 for o in owners[m]) / len(first)
        assert share == pytest.approx(0.5, abs=0.03)
    assert not [o for o in owners["c"] + owners["d"] if o < 50]  # not members yet
    later = len(arrivals) - len(first)
    for m in "abcd":
        assert sum(o >= 50 for o in owners[m]) / later == pytest.approx(0.25, abs=0.03)


def test_the_gaps_do_not_depend_on_how_many_workers_share_them():
    alone = [o for o, _ in _schedule(500.0, 5.0, seed=11)]
    split = Plan(t0=0.0, seed=11, splits=[(0.0, ("x", "y", "z"))])
    union = sorted(
        o for o, u in _schedule(500.0, 5.0, seed=11) for m in "xyz" if split.owns(m, o, u)
    )
    assert union == alone
    # each worker's own stream is a thinned Poisson process: exponential gaps, mean n/rate
    mine = [o for o, u in _schedule(500.0, 20.0, seed=11) if split.owns("x", o, u)]
    gaps = [b - a for a, b in itertools.pairwise(mine)]
    mean = sum(gaps) / len(gaps)
    assert mean == pytest.approx(3 / 500.0, rel=0.05)
    var = sum((g - mean) ** 2 for g in gaps) / len(gaps)
    assert var**0.5 / mean == pytest.approx(1.0, abs=0.08)  # CV of an exponential is 1


def test_plan_survives_the_message_round_trip():
    plan = Plan(t0=12.5, seed=9, splits=[(0.0, ("a",)), (1.25, ("a", "b"))], version=1)
    assert Plan.from_message(plan.to_message()) == plan


class _Runner:
    """Stand-in for Locust's MasterRunner: what the coordinator reads, nothing more."""

    def __init__(self):
        self.nodes: dict[str, str] = {}  # id -> Locust state
        self.index: dict[str, int] = {}
        self.sent: list[dict] = []

    def connect(self, node_id: str, state: str = "running") -> None:
        self.nodes[node_id] = state
        self.index.setdefault(node_id, len(self.index))

    @property
    def clients(self):
        def of(state):
            return [SimpleNamespace(id=i) for i, s in self.nodes.items() if s == state]

        return SimpleNamespace(ready=of("ready"), spawning=of("spawning"), running=of("running"))

    def get_worker_index(self, node_id):
        return self.index[node_id]

    def send_message(self, kind, data):
        self.sent.append(data)


def test_coordinator_waits_for_the_expected_workers_then_resplits_on_join_and_leave():
    runner, changes = _Runner(), []
    co = Coordinator(runner, seed=5, expected=2, on_change=changes.append)
    runner.connect("w1")
    co.on_ready(msg=SimpleNamespace(node_id="w1"))
    assert co.plan is None and not runner.sent  # one of two: wait
    runner.connect("w2")
    co.on_ready(msg=SimpleNamespace(node_id="w2"))
    plan = co.plan
    assert plan.splits == [(0.0, ("w1", "w2"))] and plan.seed == 5
    t0 = plan.t0
    assert Plan.from_message(runner.sent[-1]) == plan

    now = t0 + 10.0
    runner.connect("w3")
    co.ready.add("w3")
    assert co.update(now=now)
    assert plan.splits[-1] == (pytest.approx(10.0 + SPLIT_LEAD_S), ("w1", "w2", "w3"))
    assert changes[-1]["joined"] == "w3"

    runner.nodes["w2"] = "missing"  # Locust stopped counting it (heartbeats missed)
    assert co.update(now=now + 5)
    assert plan.splits[-1][1] == ("w1", "w3")
    assert changes[-1]["left"] == "w2" and changes[-1]["share"] == pytest.approx(1 / 3)
    assert not co.update(now=now + 6)  # nothing changed: no new plan
    assert plan.version == 2 and Plan.from_message(runner.sent[-1]).version == 2


def _record(recorder: Recorder, samples) -> None:
    for intended, sent, done in samples:
        recorder.record(intended, sent, done, ok=True)


def test_two_workers_merged_equal_one_process_on_the_same_schedule():
    """Lossless: HDR encode -> decode_and_add, not Locust's rounded response times."""
    rng = random.Random(2)
    t0 = 1_700_000_000.0
    plan = Plan(t0=t0, seed=4, splits=[(0.0, ("a", "b"))])
    samples = {"a": [], "b": []}
    alone = Recorder()
    for offset, u in _schedule(300.0, 20.0, seed=4):
        intended = t0 + offset
        sent = intended + rng.expovariate(1 / 0.0004)
        done = sent + rng.lognormvariate(-4.5, 0.8)  # a long tail, 1 ms .. 100s of ms
        _record(alone, [(intended, sent, done)])
        samples["a" if plan.owns("a", offset, u) else "b"].append((intended, sent, done))
    master = Recorder()
    for name in "ab":
        worker = Recorder()
        half = samples[name]
        _record(worker, half[: len(half) // 2])
        master.merge(worker.take_report())  # reports are deltas: two per worker
        _record(worker, half[len(half) // 2 :])
        master.merge(worker.take_report())
    assert master.requests == alone.requests == sum(map(len, samples.values()))
    for name in ("latency", "service", "send_lag"):
        merged, single = master.histograms[name], alone.histograms[name]
        assert merged.get_total_count() == single.get_total_count()
        for p in (50, 90, 99, 99.9, 99.99):
            assert merged.get_value_at_percentile(p) == single.get_value_at_percentile(p)
        assert merged.get_max_value() == single.get_max_value()
    assert master.quantiles_ms()["p99"] <= master.quantiles_ms()["max"]
    assert master.rows(t0) == alone.rows(t0)


def _node(name, late=0.0, cpu=20.0, dropped=0):
    return {"worker": name, "late_sends_pct": late, "cpu_pct_max": cpu, "dropped": dropped}


def test_one_saturated_worker_invalidates_the_run_and_is_named():
    rec = Recorder()
    t0 = 1_700_000_000.0
    for i in range(1000):
        rec.record(t0 + i / 100, t0 + i / 100, t0 + i / 100 + 0.002, ok=True)
    workers = {
        "count": 2,
        "samples": [500, 500],
        "nodes": [_node("#0 (a pid 1)"), _node("#1 (b pid 2)", late=4.2, cpu=97.0)],
    }
    s = summary_mod.build(
        recorder=rec,
        config=LoadConfig(target="http://x", rate=100.0),
        started_at=t0,
        duration_s=10.0,
        host={},
        generator_cpu_pct_max=97.0,
        rows=[],
        workers=workers,
    )
    assert not s.valid and summary_mod.exit_code(s) == 3
    named = [r for r in s.validity if "#1 (b pid 2)" in r]
    assert len(named) == 2 and any("4.20 % of its arrivals late" in r for r in named)
    assert not any("#0" in r for r in s.validity)
    assert s.workers == workers  # recorded in summary.json
    assert worker_reasons([_node("#0 (a pid 1)", late=0.5, cpu=60.0)]) == []


def test_no_arrival_is_due_at_or_after_the_measured_window_s_end():
    # 3 req/s constant for 5 s: the 15th offset is 4.999999999999999, and on a clock of
    # today's magnitude start + offset rounds onto the window's end, where the recorder
    # no longer counts it (a CI run's bench counted 14 requests while its server saw 15)
    start, duration = 1_796_300_000.25, 5.0
    offsets = [o for o, _ in itertools.islice(walk(lambda t: 3.0, kind="constant", seed=1), 16)]
    last = offsets[14]
    assert last < duration and start + last == start + duration  # the premise
    window_end = start + duration
    intended = [due(start, o, duration, window_end) for o in offsets]
    assert intended[:14] == [start + o for o in offsets[:14]]
    assert intended[14:] == [None, None]  # not sent: it could never be counted
    recorder = Recorder()
    recorder.window_start, recorder.window_end = start, window_end
    for t in intended[:14]:
        recorder.record(t, t, t + 0.01, ok=True)
    assert recorder.latency.get_total_count() == 14  # every arrival sent is measured
    # the schedule's own end still ends it when the window is open-ended (warm-up only)
    assert due(start, 2.0, 2.0, float("inf")) is None and due(start, 1.9, 2.0, float("inf"))
