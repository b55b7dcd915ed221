"""Continuous batching: iteration-level scheduling of a decoder, modelled on vLLM's scheduler.

One worker thread runs steps. Each step:

1. drops sequences whose client went away (their KV bytes are free at once);
2. admits waiting sequences first come, first served, while all of these hold:
   running + admitted <= ``max_num_seqs``; decode rows + padded prefill tokens <=
   ``max_num_batched_tokens``; reserved KV bytes <= ``kv_cache_bytes``;
3. runs the admitted prompts as one prefill group and every running sequence as
   one decode group (one token each), samples, streams the new text out;
4. removes finished sequences immediately, so the next step can admit others.

KV memory is reserved for prompt + max_tokens at admission (as TGI does with its
token budget) rather than grown block by block with preemption (as vLLM does):
a running sequence can never run out of cache, at the price of admitting fewer
sequences when max_tokens is generous. A request that waits for KV bytes stays
in the wait queue; when that queue is full, new requests get 503 + Retry-After.
``max_num_seqs=1`` is the naive server: one request at a time, to completion.
"""

from __future__ import annotations

import codecs
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from inferops.server.llm.model import DecodeBatch, DecoderModel
from inferops.server.llm.protocol import BadRequest, SamplingParams
from inferops.server.llm.sampling import sample


class QueueFull(Exception):
    """The wait queue is at ``max_queue_size``: answer 503 with Retry-After."""


class NotRunning(Exception):
    """The engine is stopping or stopped: answer 503."""


@dataclass(frozen=True)
class Event:
    """What one step produced for one sequence: a token's text, and maybe the end."""

    text: str
    finish_reason: str | None = None  # "stop", "length", or "error"
    error: str | None = None


_ids = itertools.count(1)


class Sequence:
    """One request's generation state; written only by the engine thread once submitted."""

    def __init__(self, prompt: list[int], params: SamplingParams, max_tokens: int, eos_id):
        self.id = next(_ids)
        self.prompt = prompt
        self.params = params
        self.max_tokens = max_tokens
        self.eos_id = None if params.ignore_eos else eos_id
        self.rng = np.random.default_rng(params.seed)
        self.output_ids: list[int] = []
        self.kv_bytes = 0
        self.reserved = False  # holds kv_bytes of the engine's budget
        self.finish_reason: str | None = None
        self.cancelled = False
        self.arrival = time.perf_counter()
        self.scheduled_at: float | None = None
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.sink = None  # set by whoever consumes the events (the HTTP layer)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""
        self._sent = 0
        self._holdback = max((len(s) for s in params.stop), default=1) - 1

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def add_token(self, token: int) -> Event:
        """Record a sampled token; return the text now safe to send and the finish reason."""
        self.output_ids.append(token)
        reason = None
        if token == self.eos_id:
            reason = "stop"
        else:
            self._text += self._decoder.decode(bytes([token]) if token < 256 else b"")
            for stop in self.params.stop:
                at = self._text.find(stop, max(0, self._sent - len(stop)))
                if at != -1:
                    self._text, reason = self._text[:at], "stop"
                    break
        if reason is None and len(self.output_ids) >= self.max_tokens:
            reason = "length"
        if reason is not None:
            if reason == "length" or token == self.eos_id:
                self._text += self._decoder.decode(b"", final=True)
            safe = len(self._text)
            self.finish_reason = reason
        else:
            safe = max(self._sent, len(self._text) - self._holdback)
        text, self._sent = self._text[self._sent : safe], safe
        return Event(text, reason)


def capacity_tokens(prompt_tokens: int, max_tokens: int) -> int:
    return prompt_tokens + max_tokens


class Engine:
    """The continuous batcher; ``start()`` its thread, ``submit()`` sequences, ``stop()``."""

    def __init__(
        self,
        model: DecoderModel,
        max_num_seqs: int = 32,
        max_num_batched_tokens: int = 2048,
        kv_cache_bytes: int = 512 * 1024**2,
        max_queue_size: int = 256,
        metrics=None,
        deliver: Callable[[list[tuple[Sequence, Event]]], None] | None = None,
    ):
        self.model = model
        self.spec = model.spec
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.kv_cache_bytes = kv_cache_bytes
        self.max_queue_size = max_queue_size
        self.metrics = metrics
        self.deliver = deliver or deliver_to_sinks
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []  # admitted, in admission order
        self.batch = DecodeBatch.empty(model.spec)  # KV of the sequences that decode next step
        self.batch_seqs: list[Sequence] = []  # its rows, in order
        self.kv_used = 0
        self.steps = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- the batcher's public face ------------------------------------------------------------

    @property
    def max_batch_size(self) -> int:  # what `inferops serve` prints on its ready line
        return self.max_num_seqs

    def check(self, prompt: list[int], params: SamplingParams) -> int:
        """Validate a request against the model and the budgets; return its max_tokens."""
        spec = self.spec
        if any(not 0 <= t < spec.vocab for t in prompt):
            raise BadRequest(f"prompt token ids must be in [0, {spec.vocab})", "prompt")
        room = spec.context - len(prompt)
        if room < 1:
            raise BadRequest(
                f"this model's maximum context length is {spec.context} tokens; "
                f"the prompt has {len(prompt)}",
                "prompt",
                "context_length_exceeded",
            )
        max_tokens = room if params.max_tokens is None else params.max_tokens
        if max_tokens > room:
            raise BadRequest(
                f"this model's maximum context length is {spec.context} tokens; the request "
                f"asks for {len(prompt)} prompt + {max_tokens} completion tokens",
                "max_tokens",
                "context_length_exceeded",
            )
        if len(prompt) > self.max_num_batched_tokens:
            raise BadRequest(
                f"the prompt has {len(prompt)} tokens, over this server's per-step budget of "
                f"{self.max_num_batched_tokens} (--max-num-batched-tokens)",
                "prompt",
            )
        need = capacity_tokens(len(prompt), max_tokens) * spec.kv_bytes_per_token
        if need > self.kv_cache_bytes:
            raise BadRequest(
                f"the request needs {need} bytes of KV cache, over this server's "
                f"{self.kv_cache_bytes} (--kv-cache-bytes); ask for fewer max_tokens",
                "max_tokens",
            )
        return max_tokens

    def submit(self, seq: Sequence) -> None:
        """Queue a checked sequence; QueueFull or NotRunning when it cannot be taken."""
        seq.kv_bytes = (
            capacity_tokens(len(seq.prompt), seq.max_tokens) * self.spec.kv_bytes_per_token
        )
        with self._cond:
            if self._stopping:
                raise NotRunning("server is shutting down")
            if len(self.waiting) >= self.max_queue_size:
                raise QueueFull(f"{len(self.waiting)} requests already waiting (--max-queue-size)")
            self.waiting.append(seq)
            self._cond.notify()

    def cancel(self, seq: Sequence) -> None:
        """The client went away: the sequence leaves at the next step (no-op if finished)."""
        if not seq.finished:
            with self._cond:
                seq.cancelled = True
                self._cond.notify()

    def kv_usage(self) -> float:
        return self.kv_used / self.kv_cache_bytes

    # -- the worker thread ---------------------------------------------------------------------

    def start(self) -> Engine:
        self._thread = threading.Thread(target=self._loop, name="inferops-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current step; whatever still waits or runs ends with an error event."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        self._fail_all("server stopped")

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self.waiting and not self.running:
                    self._cond.wait()
                if self._stopping:
                    return
            try:
                self.step()
            except Exception as exc:  # a bug here must not leave every client hanging
                self._fail_all(f"engine step failed: {exc}")

    def _fail_all(self, why: str) -> None:
        with self._cond:
            failed = list(self.waiting) + self.running
            self.waiting.clear()
            self.running = []
        for seq in failed:
            seq.finish_reason = "error"
            self._release(seq)
        self.batch, self.batch_seqs = DecodeBatch.empty(self.spec), []
        self.deliver([(s, Event("", "error", why)) for s in failed])

    def _schedule(self) -> tuple[list[Sequence], list[Sequence]]:
        """Drop cancelled sequences, admit waiting ones; return (admitted, decoding)."""
        with self._cond:
            for seq in [s for s in self.waiting if s.cancelled]:
                self.waiting.remove(seq)
                seq.finish_reason = "cancelled"
            gone = [s for s in self.running if s.cancelled]
            for seq in gone:
                seq.finish_reason = "cancelled"
                self._release(seq)
            self.running = [s for s in self.running if not s.cancelled]
            decoding = len(self.running)
            admitted: list[Sequence] = []
            budget = self.max_num_batched_tokens - decoding
            width = 0
            while self.waiting and decoding + len(admitted) < self.max_num_seqs:
                seq = self.waiting[0]
                new_width = max(width, len(seq.prompt))
                if new_width * (len(admitted) + 1) > budget:
                    break  # padded prefill tokens of this step would exceed the budget
                if self.kv_used + seq.kv_bytes > self.kv_cache_bytes:
                    break  # first come, first served: the head waits for KV bytes
                self.waiting.popleft()
                self.kv_used += seq.kv_bytes
                seq.reserved = True
                admitted.append(seq)
                width = new_width
            self.running.extend(admitted)
        if gone:
            self._drop(gone)
            for seq in gone:
                self._observe_end(seq)
        return admitted, list(self.batch_seqs)  # decode in the batch's row order

    def _drop(self, leaving: list[Sequence]) -> None:
        """Take sequences out of the decode batch, moving the last row into each hole."""
        gone = set(map(id, leaving))
        for row in reversed(range(len(self.batch_seqs))):
            if id(self.batch_seqs[row]) in gone:
                self.batch.remove(row)
                self.batch_seqs[row] = self.batch_seqs[-1]
                self.batch_seqs.pop()

    def step(self) -> None:
        """One iteration: schedule, decode the running, prefill the admitted, stream, retire."""
        admitted, decode = self._schedule()
        if not admitted and not decode:
            return
        self.steps += 1
        if decode:
            events = self._decode(decode)
            self._retire(events)
            self.deliver(events)
        if admitted:
            now = time.perf_counter()
            for seq in admitted:
                seq.scheduled_at = now
                if self.metrics is not None:
                    self.metrics.observe_scheduled(seq, now)
            events = self._prefill(admitted)
            self._retire(events)
            self.deliver(events)

    def _decode(self, group: list[Sequence]) -> list[tuple[Sequence, Event]]:
        try:
            logits = self.model.decode(self.batch, [s.output_ids[-1] for s in group])
        except Exception as exc:  # the engine failed on checked input: fail these, keep serving
            return self._failed(group, exc)
        return self._sample(group, logits)

    def _prefill(self, group: list[Sequence]) -> list[tuple[Sequence, Event]]:
        try:
            logits, batch = self.model.prefill([s.prompt for s in group])
        except Exception as exc:
            return self._failed(group, exc)
        events = self._sample(group, logits)
        alive = [r for r, s in enumerate(group) if not s.finished]
        if len(alive) < len(group):
            batch.keep(alive)
        self.batch.extend(batch)
        self.batch_seqs.extend(group[r] for r in alive)
        return events

    def _failed(self, group: list[Sequence], exc: Exception) -> list[tuple[Sequence, Event]]:
        for seq in group:
            seq.finish_reason = "error"
        return [(seq, Event("", "error", f"inference failed: {exc}")) for seq in group]

    def _sample(self, group: list[Sequence], logits: np.ndarray) -> list[tuple[Sequence, Event]]:
        now = time.perf_counter()
        events = []
        for seq, row in zip(group, logits, strict=True):
            token = sample(row, seq.params.temperature, seq.params.top_p, seq.rng)
            events.append((seq, seq.add_token(token)))
            if self.metrics is not None:
                self.metrics.observe_token(seq, now)
            if seq.first_token_at is None:
                seq.first_token_at = now
            seq.last_token_at = now
        return events

    def _retire(self, events: list[tuple[Sequence, Event]]) -> None:
        """Finished sequences leave the batch now, so the next step can admit others."""
        finished = [seq for seq, event in events if event.finish_reason is not None]
        if not finished:
            return
        with self._cond:
            self.running = [s for s in self.running if not s.finished]
            for seq in finished:
                self._release(seq)
        self._drop(finished)
        for seq in finished:
            self._observe_end(seq)

    def _release(self, seq: Sequence) -> None:
        if seq.reserved:
            self.kv_used -= seq.kv_bytes
            seq.reserved = False

    def _observe_end(self, seq: Sequence) -> None:
        if self.metrics is not None:
            self.metrics.observe_finished(seq, time.perf_counter())


def deliver_to_sinks(items: list[tuple[Sequence, Event]]) -> None:
    for seq, event in items:
        if seq.sink is not None:
            seq.sink(event)
