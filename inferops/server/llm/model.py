"""A decoder ONNX model behind the continuous batcher: prefill and decode on ragged batches.

Ragged batching by left padding: the running batch's cache is one
``[rows, heads, width, head_dim]`` tensor per layer and kind, each row
right-aligned, its padding masked by ``attention_mask``; positions come from
``position_ids``, so a padded row computes exactly what it would alone. Each
step's ``present`` outputs are the next step's past, unchanged; rows are
re-packed only when sequences join or leave. Prefill runs as its own group in
the same engine step, so decode rows never pay for a prompt's length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inferops.exitcodes import UsageError

REQUIRED_INPUTS = ("input_ids", "attention_mask", "position_ids")
DEFAULT_CONTEXT = 2048


@dataclass(frozen=True)
class DecoderSpec:
    """What the server needs to know about a decoder, read from its graph and metadata."""

    layers: int
    heads: int
    head_dim: int
    vocab: int
    context: int
    bos_id: int | None
    eos_id: int | None
    dtype: np.dtype

    @property
    def kv_bytes_per_token(self) -> int:
        return self.layers * 2 * self.heads * self.head_dim * self.dtype.itemsize


def is_decoder(path: Path) -> bool:
    """True when the ONNX file follows the decoder-with-past convention of docs/llm.md."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # not ONNX at all: the ordinary loader reports it
        return False
    names = {i.name for i in graph.input}
    return set(REQUIRED_INPUTS) <= names and "past_key_values.0.key" in names


def read_spec(path: Path) -> DecoderSpec:
    """Check the decoder convention and read its sizes; UsageError naming what is wrong."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    inputs = {i.name: i for i in model.graph.input}
    outputs = {o.name: o for o in model.graph.output}

    def dims(value) -> list:
        return [
            d.dim_value if d.HasField("dim_value") else None
            for d in value.type.tensor_type.shape.dim
        ]

    layers = 0
    while f"past_key_values.{layers}.key" in inputs:
        layers += 1
    problems = [n for n in REQUIRED_INPUTS if n not in inputs]
    if "logits" not in outputs:
        problems.append("output logits")
    for i in range(layers):
        for kind in ("key", "value"):
            if f"past_key_values.{i}.{kind}" not in inputs:
                problems.append(f"past_key_values.{i}.{kind}")
            if f"present.{i}.{kind}" not in outputs:
                problems.append(f"output present.{i}.{kind}")
    if layers == 0 or problems:
        raise UsageError(
            f"model {path}: not a decoder with past key/values (missing {', '.join(problems) or 'past_key_values.0.key'}); see docs/llm.md"
        )
    past = dims(inputs["past_key_values.0.key"])
    vocab = dims(outputs["logits"])[-1] if len(dims(outputs["logits"])) == 3 else None
    if len(past) != 4 or past[1] is None or past[3] is None:
        raise UsageError(
            f"model {path}: past_key_values.0.key must be [batch, heads, past, head_dim] with static heads and head_dim"
        )
    elem = inputs["past_key_values.0.key"].type.tensor_type.elem_type
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))
    if vocab is None or vocab < 256:
        raise UsageError(
            f"model {path}: logits must be [batch, sequence, vocab] with a static vocab >= 256 (byte-level ids)"
        )
    tokenizer = meta.get("inferops.tokenizer", "bytes")
    if tokenizer != "bytes":
        raise UsageError(f"model {path}: tokenizer {tokenizer!r} is not supported (only 'bytes')")

    def meta_int(key: str, default: int | None) -> int | None:
        if key not in meta:
            return default
        try:
            return int(meta[key])
        except ValueError:
            raise UsageError(
                f"model {path}: metadata {key}={meta[key]!r} is not an integer"
            ) from None

    return DecoderSpec(
        layers=layers,
        heads=past[1],
        head_dim=past[3],
        vocab=vocab,
        context=meta_int("inferops.context_length", DEFAULT_CONTEXT),
        bos_id=meta_int("inferops.bos_token_id", None),
        eos_id=meta_int("inferops.eos_token_id", None),
        dtype=dtype,
    )


class DecodeBatch:
    """The running batch's KV cache: per layer, ``[rows, heads, width, head_dim]`` keys and values.

    Rows are right-aligned in ``width`` (left padding, masked by ``mask``). In steady
    state a step's ``present`` outputs become the next step's past as they are, so
    the server copies nothing ONNX Runtime does not copy itself; rows are only
    re-packed when sequences join (:meth:`extend`) or leave (:meth:`keep`).
    """

    def __init__(self, past: list[np.ndarray], mask: np.ndarray, lengths: np.ndarray):
        self.past = past  # 2 * layers arrays, key then value per layer
        self.mask = mask  # [rows, width] int64, 1 = a real token
        self.lengths = lengths  # [rows] tokens in each row's cache

    @classmethod
    def empty(cls, spec: DecoderSpec) -> DecodeBatch:
        shape = (0, spec.heads, 0, spec.head_dim)
        past = [np.zeros(shape, spec.dtype) for _ in range(2 * spec.layers)]
        return cls(past, np.zeros((0, 0), np.int64), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def width(self) -> int:
        return self.mask.shape[1]

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.past)

    def extend(self, other: DecodeBatch) -> None:
        """Append ``other``'s rows (e.g. just prefilled), right-aligning both to one width."""
        if not len(other):
            return
        if not len(self):
            self.past, self.mask, self.lengths = other.past, other.mask, other.lengths
            return
        width = max(self.width, other.width)
        n, rows = len(self), len(self) + len(other)
        mask = np.zeros((rows, width), np.int64)
        mask[:n, width - self.width :] = self.mask
        mask[n:, width - other.width :] = other.mask
        past = []
        for mine, theirs in zip(self.past, other.past, strict=True):
            # empty, not zeros: one pass over the bytes instead of two; only the padding
            # is zeroed (masked, but 0 * garbage could be NaN in the attention sum).
            merged = np.empty((rows, mine.shape[1], width, mine.shape[3]), mine.dtype)
            merged[:n, :, : width - self.width] = 0
            merged[:n, :, width - self.width :] = mine
            merged[n:, :, : width - other.width] = 0
            merged[n:, :, width - other.width :] = theirs
            past.append(merged)
        self.past, self.mask = past, mask
        self.lengths = np.concatenate([self.lengths, other.lengths])

    def remove(self, row: int) -> None:
        """Drop one row by moving the last row into its place: one row copied, not the batch.

        The caller mirrors the move in its own row order. Padding columns are only
        dropped (a full copy) once they are over a quarter of the width.
        """
        last = len(self) - 1
        for p in self.past:
            if row != last:
                p[row] = p[last]
        if row != last:
            self.mask[row] = self.mask[last]
            self.lengths[row] = self.lengths[last]
        self.past = [p[:last] for p in self.past]  # a prefix along axis 0 stays contiguous
        self.mask, self.lengths = self.mask[:last], self.lengths[:last]
        if last and self.width - int(self.lengths.max()) > max(16, self.width // 4):
            self.keep(list(range(last)))

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (in that order); drop the padding columns no kept row needs."""
        lengths = self.lengths[rows]
        trim = self.width - int(lengths.max()) if len(rows) else self.width
        self.past = [np.ascontiguousarray(p[rows, :, trim:]) for p in self.past]
        self.mask = np.ascontiguousarray(self.mask[rows, trim:])
        self.lengths = lengths


class DecoderModel:
    """Runs prefill and decode through one backend session (``backends.load``)."""

    def __init__(
        self,
        path: Path,
        backend: str = "onnxruntime",
        threads: int | None = None,
        spinning: bool = False,
    ):
        from inferops.server import backends

        self.spec = read_spec(path)
        self.backend = backends.load(path, backend, threads, spinning=spinning)
        self.platform = self.backend.platform

    def _run(self, ids, mask, positions, past: list[np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
        for i in range(self.spec.layers):
            feeds[f"past_key_values.{i}.key"] = past[2 * i]
            feeds[f"past_key_values.{i}.value"] = past[2 * i + 1]
        return self.backend.run(feeds)

    def _present(self, out: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [
            out[f"present.{i}.{kind}"] for i in range(self.spec.layers) for kind in ("key", "value")
        ]

    def prefill(self, prompts: list[list[int]]) -> tuple[np.ndarray, DecodeBatch]:
        """Run the prompts left-padded to the longest; last logits [rows, vocab] and their batch."""
        rows, width = len(prompts), max(len(p) for p in prompts)
        ids = np.zeros((rows, width), np.int64)
        mask = np.zeros((rows, width), np.int64)
        positions = np.zeros((rows, width), np.int64)
        for r, prompt in enumerate(prompts):
            pad = width - len(prompt)
            ids[r, pad:] = prompt
            mask[r, pad:] = 1
            positions[r, pad:] = np.arange(len(prompt))
        empty = DecodeBatch.empty(self.spec).past
        past = [np.zeros((rows, *p.shape[1:]), p.dtype) for p in empty]
        out = self._run(ids, mask, positions, past)
        lengths = np.array([len(p) for p in prompts], np.int64)
        return out["logits"][:, -1, :], DecodeBatch(self._present(out), mask, lengths)

    def decode(self, batch: DecodeBatch, tokens: list[int]) -> np.ndarray:
        """One token per row on top of ``batch`` (which grows by one column); logits [rows, vocab]."""
        rows = len(batch)
        mask = np.concatenate([batch.mask, np.ones((rows, 1), np.int64)], axis=1)
        ids = np.asarray(tokens, np.int64).reshape(rows, 1)
        positions = batch.lengths.reshape(rows, 1)
        out = self._run(ids, mask, positions, batch.past)
        batch.past, batch.mask, batch.lengths = self._present(out), mask, batch.lengths + 1
        return out["logits"][:, -1, :]
