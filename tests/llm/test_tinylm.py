"""The embedded decoder and the decoder convention, run through ONNX Runtime directly."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from inferops.exitcodes import UsageError
from inferops.models import build
from inferops.models.tinylm import BOS_ID, EOS_ID, VOCAB, tinylm
from inferops.server.llm.model import DecoderModel, KVCache, is_decoder, read_spec
from tests.llm.conftest import SMALL


def test_build_is_byte_identical_and_follows_the_convention(tmp_path):
    a, b = build("tinylm", tmp_path / "a.onnx"), build("tinylm", tmp_path / "b.onnx")
    assert a.read_bytes() == b.read_bytes()
    spec = read_spec(a)
    assert (spec.layers, spec.heads, spec.head_dim, spec.vocab) == (4, 8, 64, VOCAB)
    assert (spec.context, spec.bos_id, spec.eos_id) == (1024, BOS_ID, EOS_ID)
    assert is_decoder(a)
    graph = onnx.load(str(a)).graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]  # dynamic batch and sequence length


def test_mlp_is_not_a_decoder_and_a_partial_decoder_is_refused(tmp_path):
    assert not is_decoder(build("mlp", tmp_path / "mlp.onnx"))
    model = tinylm(**SMALL)
    del model.graph.output[1]  # drop present.0.key
    path = tmp_path / "broken.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(UsageError, match=r"present\.0\.key"):
        read_spec(path)


@pytest.fixture(scope="module")
def small(llm_dir):
    return DecoderModel(llm_dir / "small.onnx", threads=1)


def _session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def test_prefill_then_decode_equals_one_full_pass(llm_dir, small):
    prompt = [BOS_ID, *b"continuous batching"]
    spec = small.spec
    session = _session(llm_dir / "small.onnx")
    n = len(prompt)
    feeds = {
        "input_ids": np.array([prompt], np.int64),
        "attention_mask": np.ones((1, n), np.int64),
        "position_ids": np.arange(n)[None],
    }
    for i in range(spec.layers):
        for kind in ("key", "value"):
            feeds[f"past_key_values.{i}.{kind}"] = np.zeros(
                (1, spec.heads, 0, spec.head_dim), np.float32
            )
    full = session.run(["logits"], feeds)[0][0]
    cache = KVCache(spec, n)
    small.prefill([prompt[:-3]], [cache])
    for position, token in enumerate(prompt[-3:-1]):
        small.decode([token], [cache])
        assert cache.length == n - 3 + position + 1
    last = small.decode([prompt[-1]], [cache])[0]
    np.testing.assert_allclose(last, full[-1], atol=1e-4)


def test_ragged_batch_rows_match_each_sequence_alone(small):
    """Left padding + attention_mask + position_ids: a padded row computes what it would alone."""
    prompts = [[BOS_ID, *b"a"], [BOS_ID, *b"a much longer prompt"], [BOS_ID, *b"middle one"]]
    spec = small.spec
    alone = []
    for prompt in prompts:
        cache = KVCache(spec, 40)
        steps = [small.prefill([prompt], [cache])[0]]
        for token in (5, 6, 7):
            steps.append(small.decode([token], [cache])[0])
        alone.append(steps)
    caches = [KVCache(spec, 40) for _ in prompts]
    batched = [list(small.prefill(prompts, caches))]
    for token in (5, 6, 7):
        batched.append(list(small.decode([token] * len(prompts), caches)))
    for step, rows in enumerate(batched):
        for r, row in enumerate(rows):
            np.testing.assert_allclose(
                row, alone[r][step], atol=1e-4, err_msg=f"row {r} step {step}"
            )
