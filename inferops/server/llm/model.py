"""A decoder ONNX model behind the continuous batcher: prefill and decode on ragged batches.

Ragged batching by left padding: each sequence keeps its own KV cache (one
``[layers, 2, heads, capacity, head_dim]`` array, sized for prompt + max_tokens
when it is admitted). A step copies the caches of the batch into one
``[batch, heads, longest, head_dim]`` tensor per layer, right-aligned, and masks
the padding with ``attention_mask``; positions come from ``position_ids``, so a
padded row computes exactly what it would alone. Prefill and decode are run as
two groups of one step, so decode rows never pay for a prompt's length.
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


class KVCache:
    """One sequence's keys and values: ``[layers, 2, heads, capacity, head_dim]``."""

    def __init__(self, spec: DecoderSpec, capacity: int):
        self.data = np.empty((spec.layers, 2, spec.heads, capacity, spec.head_dim), spec.dtype)
        self.length = 0

    @property
    def nbytes(self) -> int:
        return self.data.nbytes


class DecoderModel:
    """Runs prefill and decode groups through one backend session (``backends.load``)."""

    def __init__(self, path: Path, backend: str = "onnxruntime", threads: int | None = None):
        from inferops.server import backends

        self.spec = read_spec(path)
        self.backend = backends.load(path, backend, threads)
        self.platform = self.backend.platform

    def _empty_past(self, rows: int, length: int) -> list[np.ndarray]:
        s = self.spec
        return [np.zeros((rows, s.heads, length, s.head_dim), s.dtype) for _ in range(2 * s.layers)]

    def _run(self, ids, mask, positions, past: list[np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
        for i in range(self.spec.layers):
            feeds[f"past_key_values.{i}.key"] = past[2 * i]
            feeds[f"past_key_values.{i}.value"] = past[2 * i + 1]
        return self.backend.run(feeds)

    def prefill(self, prompts: list[list[int]], caches: list[KVCache]) -> np.ndarray:
        """Run the prompts (left-padded to the longest), fill ``caches``; last logits [rows, vocab]."""
        rows, width = len(prompts), max(len(p) for p in prompts)
        ids = np.zeros((rows, width), np.int64)
        mask = np.zeros((rows, width), np.int64)
        positions = np.zeros((rows, width), np.int64)
        for r, prompt in enumerate(prompts):
            pad = width - len(prompt)
            ids[r, pad:] = prompt
            mask[r, pad:] = 1
            positions[r, pad:] = np.arange(len(prompt))
        out = self._run(ids, mask, positions, self._empty_past(rows, 0))
        self._store(out, caches, [len(p) for p in prompts], width, start=0)
        return out["logits"][:, -1, :]

    def decode(self, tokens: list[int], caches: list[KVCache]) -> np.ndarray:
        """One token per row on top of each row's cache; appends to the caches; logits [rows, vocab]."""
        rows = len(tokens)
        lengths = [c.length for c in caches]
        longest = max(lengths)
        past = self._empty_past(rows, longest)
        mask = np.zeros((rows, longest + 1), np.int64)
        mask[:, -1] = 1
        for r, (cache, n) in enumerate(zip(caches, lengths, strict=True)):
            offset = longest - n
            mask[r, offset:] = 1
            for j, tensor in enumerate(past):
                tensor[r, :, offset:] = cache.data[j // 2, j % 2, :, :n]
        ids = np.asarray(tokens, np.int64).reshape(rows, 1)
        positions = np.asarray(lengths, np.int64).reshape(rows, 1)
        out = self._run(ids, mask, positions, past)
        self._store(out, caches, [1] * rows, longest + 1, start=None)
        return out["logits"][:, -1, :]

    def _store(self, out, caches: list[KVCache], counts: list[int], width: int, start) -> None:
        # present.* is [rows, heads, width, head_dim] with each row's new entries at the right end.
        for i in range(self.spec.layers):
            for kind_index, kind in enumerate(("key", "value")):
                present = out[f"present.{i}.{kind}"]
                for r, (cache, count) in enumerate(zip(caches, counts, strict=True)):
                    at = cache.length if start is None else start
                    cache.data[i, kind_index, :, at : at + count] = present[r, :, width - count :]
        for cache, count in zip(caches, counts, strict=True):
            cache.length = (cache.length if start is None else start) + count
