"""Dynamic batching, the way Triton does it: merge queued requests along the batch axis.

Requests are queued from the event loop; one worker thread takes the oldest
request, waits until the queued rows reach ``max_batch_size`` or the oldest
request has waited ``max_queue_delay`` seconds, runs the model once on the
concatenation and hands every caller back its own rows. A request may itself
carry several rows; one larger than ``max_batch_size`` runs alone. With
``preferred_batch_sizes`` (Triton's ``preferred_batch_size``) a batch goes as
soon as the queue can fill the largest preferred size it holds, and never grows
past that size unless the delay ran out first. Only
requests whose non-batch dimensions agree are merged. The queue is bounded:
:meth:`Batcher.submit` raises :class:`QueueFull` instead of letting memory grow.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from inferops.server.stats import BatchTiming


class QueueFull(Exception):
    """The admission queue is at ``max_queue_size`` (HTTP 503)."""


class NotRunning(Exception):
    """The batcher has been stopped (HTTP 503)."""


@dataclass
class _Item:
    feeds: dict[str, np.ndarray]
    rows: int
    key: tuple
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)


def _settle(future: asyncio.Future, result=None, error: BaseException | None = None) -> None:
    if future.done():  # the caller went away (client disconnect)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _settle_all(entries: list) -> None:
    for future, result, error in entries:
        _settle(future, result, error)


class Batcher:
    """Queue + worker thread in front of ``run(feeds) -> {name: array}``.

    ``batched`` says whether the model's inputs have a dynamic first dimension;
    when False every request runs alone, exactly as sent. ``observe`` is called
    after each model run with a :class:`BatchTiming` (rows, queue waits, input
    concatenation, engine and output-split durations).
    """

    def __init__(
        self,
        run: Callable[[dict], dict],
        *,
        max_batch_size: int = 32,
        max_queue_delay: float = 0.002,
        max_queue_size: int = 256,
        batched: bool = True,
        observe: Callable[[BatchTiming], None] | None = None,
        preferred_batch_sizes: tuple[int, ...] = (),
    ):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        if any(not 1 <= p <= max_batch_size for p in preferred_batch_sizes):
            raise ValueError("preferred batch sizes must be between 1 and max_batch_size")
        self._run = run
        self.max_batch_size = max_batch_size if batched else 1
        self.max_queue_delay = max_queue_delay
        self.max_queue_size = max_queue_size
        self.batched = batched
        # Triton's preferred_batch_size: dispatch as soon as one of these can be formed.
        self.preferred_batch_sizes = tuple(sorted(set(preferred_batch_sizes))) if batched else ()
        #: queued rows at which a batch may be due before the delay runs out
        self._due_rows = (
            self.preferred_batch_sizes[0] if self.preferred_batch_sizes else self.max_batch_size
        )
        self._observe = observe
        self._queue: deque[_Item] = deque()
        self._rows = 0  # rows waiting in the queue, all shapes together
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="inferops-batcher", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return len(self._queue)

    def full(self) -> bool:
        return len(self._queue) >= self.max_queue_size

    def submit(self, feeds: dict[str, np.ndarray]) -> asyncio.Future:
        """Queue one request (from the event loop); await the returned future for its outputs."""
        loop = asyncio.get_running_loop()
        first = next(iter(feeds.values()))
        rows = int(first.shape[0]) if self.batched and first.ndim else 1
        # Requests merge only when every non-batch dimension agrees.
        key = tuple((name, a.shape[1:]) for name, a in sorted(feeds.items()))
        item = _Item(feeds, rows, key, loop.create_future(), loop)
        with self._cond:
            if self._stopping:
                raise NotRunning("server is shutting down")
            if len(self._queue) >= self.max_queue_size:
                raise QueueFull(f"queue is full ({self.max_queue_size} requests waiting)")
            self._queue.append(item)
            self._rows += rows
            # Wake the worker only when it can act: it was idle, or a batch is full. Waking
            # it on every arrival makes it fight the event loop for the GIL for nothing.
            if len(self._queue) == 1 or self._rows >= self._due_rows:
                self._cond.notify()
        return item.future

    def stop(self, timeout: float = 30.0) -> None:
        """Finish everything already queued, then stop the worker."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _take(self) -> list[_Item] | None:
        """Block until a batch is due; return it (None once stopped and drained)."""
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                self._cond.wait()
            deadline = self._queue[0].enqueued + self.max_queue_delay
            limit = self.max_batch_size
            while not self._stopping and self.max_batch_size > 1:
                if self._rows >= self._due_rows:
                    due = self._due_size(self._queued_rows(self._queue[0].key))
                    if due:
                        limit = due
                        break
                remaining = deadline - time.perf_counter()
                if remaining <= 0:  # the oldest waited long enough: as large as possible
                    break
                self._cond.wait(remaining)
            first = self._queue.popleft()
            batch, rows, rest = [first], first.rows, deque()
            while self._queue and rows < limit:
                item = self._queue.popleft()
                if item.key == first.key and rows + item.rows <= limit:
                    batch.append(item)
                    rows += item.rows
                else:
                    rest.append(item)
            rest.extend(self._queue)  # keep arrival order for the ones left behind
            self._queue = rest
            self._rows -= rows
            return batch

    def _due_size(self, queued: int) -> int:
        """The batch size to dispatch now with ``queued`` rows waiting, or 0 to keep waiting.

        Without preferred sizes: the max batch, once that many rows wait. With them
        (Triton's rule): the largest preferred size the queue can fill.
        """
        if not self.preferred_batch_sizes:
            return self.max_batch_size if queued >= self.max_batch_size else 0
        fits = [p for p in self.preferred_batch_sizes if p <= queued]
        return fits[-1] if fits else 0

    def _queued_rows(self, key: tuple) -> int:
        return sum(item.rows for item in self._queue if item.key == key)

    def _work(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            started = time.perf_counter()
            waits = [started - item.enqueued for item in batch]
            try:
                if len(batch) == 1:
                    feeds = batch[0].feeds
                else:
                    feeds = {
                        name: np.concatenate([item.feeds[name] for item in batch])
                        for name in batch[0].feeds
                    }
                inputs_ready = time.perf_counter()
                outputs = self._run(feeds)
            except Exception as exc:  # engine failure: every caller in the batch gets it
                self._hand_back([(item, None, exc) for item in batch])
                continue
            ran = time.perf_counter()
            settled, offset = [], 0
            for item in batch:
                if len(batch) == 1:
                    mine = outputs
                else:
                    mine = {name: out[offset : offset + item.rows] for name, out in outputs.items()}
                offset += item.rows
                settled.append((item, mine, None))
            if self._observe is not None:
                self._observe(
                    BatchTiming(
                        rows=sum(item.rows for item in batch),
                        waits=waits,
                        input_s=inputs_ready - started,
                        infer_s=ran - inputs_ready,
                        output_s=time.perf_counter() - ran,
                    )
                )
            self._hand_back(settled)

    @staticmethod
    def _hand_back(settled: list) -> None:
        # One wake-up of each event loop per batch, not one per request.
        by_loop: dict = {}
        for item, result, error in settled:
            by_loop.setdefault(item.loop, []).append((item.future, result, error))
        for loop, entries in by_loop.items():
            loop.call_soon_threadsafe(_settle_all, entries)
