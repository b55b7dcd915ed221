"""The dynamic batcher in-process, driven by a real NumPy 'model' that records its batches."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from inferops.server.batcher import Batcher, NotRunning, QueueFull


class Recorder:
    """y = 2x + 1, remembering the rows of every call; ``gate`` can hold the first call."""

    def __init__(self):
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, feeds):
        self.gate.wait(10)
        x = feeds["x"]
        self.batches.append(len(x))
        return {"y": x * 2 + 1}


def _run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_are_merged_and_split_back():
    model = Recorder()

    async def main():
        b = Batcher(model, max_batch_size=16, max_queue_delay=0.5, max_queue_size=64)
        try:
            xs = [np.full((n, 3), i, np.float32) for i, n in enumerate([1, 2, 3, 2])]
            futures = [b.submit({"x": x}) for x in xs]
            results = await asyncio.gather(*futures)
        finally:
            b.stop()
        return xs, results

    xs, results = _run(main())
    assert model.batches == [8]  # one model run for all four callers
    for x, r in zip(xs, results, strict=True):
        np.testing.assert_array_equal(r["y"], x * 2 + 1)


def test_batches_stop_at_max_batch_size_and_big_requests_run_alone():
    model = Recorder()

    async def main():
        b = Batcher(model, max_batch_size=4, max_queue_delay=0.2, max_queue_size=64)
        try:
            model.gate.clear()  # hold the worker so everything queues up first
            futures = [b.submit({"x": np.zeros((1, 2), np.float32)}) for _ in range(6)]
            futures.append(b.submit({"x": np.zeros((9, 2), np.float32)}))
            model.gate.set()
            return await asyncio.gather(*futures)
        finally:
            b.stop()

    results = _run(main())
    assert sorted(model.batches) == [1, 2, 4, 9] or sorted(model.batches) == [2, 4, 9]
    assert sum(model.batches) == 15 and max(model.batches) == 9
    assert all(b <= 4 for b in model.batches if b != 9)
    assert [len(r["y"]) for r in results] == [1] * 6 + [9]


def test_only_requests_with_equal_sample_shapes_merge():
    model = Recorder()

    async def main():
        b = Batcher(model, max_batch_size=8, max_queue_delay=0.2, max_queue_size=64)
        try:
            a = b.submit({"x": np.zeros((1, 2), np.float32)})
            c = b.submit({"x": np.zeros((1, 5), np.float32)})
            d = b.submit({"x": np.zeros((1, 2), np.float32)})
            return await asyncio.gather(a, c, d)
        finally:
            b.stop()

    results = _run(main())
    assert sorted(model.batches) == [1, 2]
    assert [r["y"].shape for r in results] == [(1, 2), (1, 5), (1, 2)]


def test_max_batch_size_one_never_merges():
    model = Recorder()

    async def main():
        b = Batcher(model, max_batch_size=1, max_queue_delay=0.2, max_queue_size=64)
        try:
            return await asyncio.gather(
                *[b.submit({"x": np.ones((1, 2), np.float32)}) for _ in range(5)]
            )
        finally:
            b.stop()

    _run(main())
    assert model.batches == [1] * 5


def test_full_queue_refuses_and_stop_drains_what_was_queued():
    model = Recorder()
    model.gate.clear()

    async def main():
        b = Batcher(model, max_batch_size=1, max_queue_delay=0, max_queue_size=2)
        first = b.submit({"x": np.zeros((1, 1), np.float32)})
        while len(b):  # wait until the worker holds the first request
            await asyncio.sleep(0.001)
        queued = [b.submit({"x": np.zeros((1, 1), np.float32)}) for _ in range(2)]
        with pytest.raises(QueueFull):
            b.submit({"x": np.zeros((1, 1), np.float32)})
        model.gate.set()
        stopper = asyncio.get_running_loop().run_in_executor(None, b.stop)
        done = await asyncio.gather(first, *queued)
        await stopper
        with pytest.raises(NotRunning):
            b.submit({"x": np.zeros((1, 1), np.float32)})
        return done

    assert len(_run(main())) == 3
    assert model.batches == [1, 1, 1]


def test_engine_errors_reach_every_caller():
    def broken(feeds):
        raise RuntimeError("engine exploded")

    async def main():
        b = Batcher(broken, max_batch_size=4, max_queue_delay=0.05)
        try:
            futures = [b.submit({"x": np.zeros((1, 1), np.float32)}) for _ in range(2)]
            return await asyncio.gather(*futures, return_exceptions=True)
        finally:
            b.stop()

    results = _run(main())
    assert all(isinstance(r, RuntimeError) for r in results)


def test_preferred_batch_sizes_dispatch_early_and_cap_the_batch():
    model = Recorder()

    async def main():
        # A 10 s delay: only a preferred size (or stop) can make a batch go.
        b = Batcher(
            model,
            max_batch_size=32,
            max_queue_delay=10.0,
            max_queue_size=64,
            preferred_batch_sizes=(4, 8),
        )
        try:
            model.gate.clear()  # the first batch holds the worker while the rest queue
            futures = [b.submit({"x": np.zeros((1, 2), np.float32)}) for _ in range(4)]
            while len(b):  # the first 4 rows left as a preferred batch, long before 10 s
                await asyncio.sleep(0.001)
            futures += [b.submit({"x": np.zeros((1, 2), np.float32)}) for _ in range(12)]
            model.gate.set()
            return await asyncio.wait_for(asyncio.gather(*futures), 5)
        finally:
            b.stop()

    results = _run(main())
    # 12 queued rows with preferred sizes 4 and 8: 8 (the largest that fits), then 4
    assert model.batches == [4, 8, 4]
    assert len(results) == 16


def test_preferred_batch_sizes_must_fit_the_max_batch():
    with pytest.raises(ValueError, match="preferred"):
        Batcher(lambda feeds: feeds, max_batch_size=8, preferred_batch_sizes=(16,))
