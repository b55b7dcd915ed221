"""The embedded decoder and the decoder convention, run through ONNX Runtime directly."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from inferops.exitcodes import UsageError
from inferops.models import build
from inferops.models.tinylm import BOS_ID, EOS_ID, VOCAB, tinylm
from inferops.server.llm.model import DecoderModel, is_decoder, read_spec
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
    _, batch = small.prefill([prompt[:-3]])
    for position, token in enumerate(prompt[-3:-1]):
        small.decode(batch, [token])
        assert list(batch.lengths) == [n - 3 + position + 1]
    last = small.decode(batch, [prompt[-1]])[0]
    np.testing.assert_allclose(last, full[-1], atol=1e-4)


def test_ragged_batch_rows_match_each_sequence_alone(small):
    """Left padding + attention_mask + position_ids: a padded row computes what it would alone,
    also after rows join (extend) and leave (keep) the running batch."""
    prompts = [[BOS_ID, *b"a"], [BOS_ID, *b"a much longer prompt"], [BOS_ID, *b"middle one"]]
    alone = []
    for prompt in prompts:
        logits, batch = small.prefill([prompt])
        steps = [logits[0]]
        for token in (5, 6, 7, 8):
            steps.append(small.decode(batch, [token])[0])
        alone.append(steps)

    def close(row, expected, what):
        np.testing.assert_allclose(row, expected, atol=1e-4, err_msg=what)

    # rows 0 and 1 prefill together; row 2 joins one step later; row 0 leaves after that
    logits, batch = small.prefill(prompts[:2])
    close(logits[0], alone[0][0], "row 0 prefill")
    close(logits[1], alone[1][0], "row 1 prefill")
    logits = small.decode(batch, [5, 5])
    close(logits[0], alone[0][1], "row 0 step 1")
    joined_logits, joined = small.prefill(prompts[2:])
    close(joined_logits[0], alone[2][0], "row 2 prefill")
    batch.extend(joined)
    logits = small.decode(batch, [6, 6, 5])
    close(logits[0], alone[0][2], "row 0 step 2")
    close(logits[1], alone[1][2], "row 1 step 2")
    close(logits[2], alone[2][1], "row 2 step 1 after joining")
    batch.remove(0)  # row 0 leaves: the last row (2) moves into its place
    logits = small.decode(batch, [6, 7])
    close(logits[0], alone[2][2], "row 2 step 2 after row 0 left")
    close(logits[1], alone[1][3], "row 1 step 3 after row 0 left")
    batch.keep([1])  # row 1 alone; the padding only row 2 needed goes
    logits = small.decode(batch, [8])
    close(logits[0], alone[1][4], "row 1 step 4 alone again")
    assert batch.width == batch.lengths[0]
