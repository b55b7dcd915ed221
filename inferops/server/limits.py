"""Memory bounds on request bodies: the per-request limit and the budget shared by all requests.

The batching queue bounds how many requests wait, but not how many bytes the
server holds while bodies are still arriving: a hundred concurrent 60 MB
uploads would be 6 GB before a single one is queued. Every inference request
therefore takes its body's size out of one :class:`BodyBudget` before reading
it (the declared ``Content-Length``, or chunk by chunk for a chunked body) and
gives it back only when its response is ready, so request bodies, the arrays
parsed from them and the queue together stay under ``--max-inflight-bytes``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from inferops.server.tensors import TensorSpec

#: JSON text per value in the largest legitimate request: a float64 written in full
#: (``-1.2345678901234567e-05``, 23 characters) plus a separator and some whitespace.
JSON_BYTES_PER_VALUE = 32
#: Room for the JSON around the tensors (names, ids, parameters).
ENVELOPE_BYTES = 64 * 1024
#: The default body limit never goes below this, so small models keep a useful margin.
MIN_BODY_BYTES = 1024**2
#: Used when the model has a dynamic dimension besides the batch one (its size is unknown).
FALLBACK_BODY_BYTES = 64 * 1024**2
#: The default in-flight budget: this many largest requests at once, and at least the floor.
INFLIGHT_REQUESTS = 8
MIN_INFLIGHT_BYTES = 64 * 1024**2


def default_body_limit(inputs: Iterable[TensorSpec], max_batch_size: int) -> int:
    """The largest legitimate request: ``max_batch_size`` rows of every input as JSON text.

    Rounded up to a whole MiB, at least 1 MiB; 64 MiB when a non-batch dimension
    is dynamic, since then no request size can be derived from the model.
    """
    values = 0
    for spec in inputs:
        sample = spec.shape[1:] if spec.batched else spec.shape
        if -1 in sample:
            return FALLBACK_BODY_BYTES
        values += (max_batch_size if spec.batched else 1) * math.prod(sample)
    needed = values * JSON_BYTES_PER_VALUE + ENVELOPE_BYTES
    return max(MIN_BODY_BYTES, -(-needed // 1024**2) * 1024**2)


def default_inflight_limit(max_body_bytes: int) -> int:
    return max(MIN_INFLIGHT_BYTES, INFLIGHT_REQUESTS * max_body_bytes)


class BodyBudget:
    """Bytes of request bodies held at once, all requests together (event-loop only, no lock)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False (and nothing reserved) when that would pass the limit."""
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held -= size


class Hold:
    """One request's share of the budget; ``release`` returns all of it (idempotent)."""

    def __init__(self, budget: BodyBudget):
        self._budget = budget
        self.size = 0

    def take(self, size: int) -> bool:
        if not self._budget.take(size):
            return False
        self.size += size
        return True

    def release(self) -> None:
        self._budget.give(self.size)
        self.size = 0
