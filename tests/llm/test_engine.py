"""The continuous batcher stepped by hand: admission budgets, KV reservation, stop strings."""

from __future__ import annotations

import numpy as np
import pytest

from inferops.models.tinylm import BOS_ID
from inferops.server.llm.engine import Engine, QueueFull, Sequence
from inferops.server.llm.model import DecoderModel
from inferops.server.llm.protocol import BadRequest, SamplingParams
from inferops.server.llm.sampling import sample


@pytest.fixture(scope="module")
def model(llm_dir):
    return DecoderModel(llm_dir / "small.onnx", threads=1)


def _seq(engine, prompt_len=5, max_tokens=10, **params):
    prompt = [BOS_ID] + [65] * (prompt_len - 1)
    p = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True, **params)
    seq = Sequence(prompt, p, engine.check(prompt, p), engine.spec.eos_id)
    events = []
    seq.sink = events.append
    seq.events = events
    engine.submit(seq)
    return seq


def test_new_sequences_join_at_the_next_step_and_finished_ones_leave_at_once(model):
    engine = Engine(model, max_num_seqs=8)
    a = _seq(engine, max_tokens=4)
    engine.step()  # a: prefill -> first token
    assert [len(a.output_ids)] == [1] and engine.running == [a]
    b = _seq(engine, max_tokens=2)
    engine.step()  # b joins (prefill) while a decodes
    assert len(a.output_ids) == 2 and len(b.output_ids) == 1
    engine.step()  # b's 2nd token ends it: it leaves in this very step
    assert b.finish_reason == "length" and engine.running == [a]
    engine.step()
    assert a.finish_reason == "length" and engine.running == [] and engine.kv_used == 0
    assert [e.finish_reason for e in a.events] == [None, None, None, "length"]


def test_max_num_seqs_bounds_the_running_batch(model):
    engine = Engine(model, max_num_seqs=2)
    seqs = [_seq(engine) for _ in range(5)]
    engine.step()
    assert engine.running == seqs[:2] and list(engine.waiting) == seqs[2:]


def test_prefill_tokens_per_step_stay_within_the_token_budget(model):
    # 3 decoding rows leave 37 of 40 tokens: one 20-token prompt fits, two (padded: 40) do not.
    engine = Engine(model, max_num_seqs=16, max_num_batched_tokens=40)
    for _ in range(3):
        _seq(engine, prompt_len=4, max_tokens=50)
    engine.step()
    assert len(engine.running) == 3
    longs = [_seq(engine, prompt_len=20, max_tokens=50) for _ in range(2)]
    engine.step()
    assert longs[0] in engine.running and list(engine.waiting) == [longs[1]]
    engine.step()
    assert longs[1] in engine.running


def test_a_full_kv_budget_makes_requests_wait_until_bytes_are_freed(model):
    per_request = (5 + 10) * model.spec.kv_bytes_per_token
    engine = Engine(model, max_num_seqs=8, kv_cache_bytes=2 * per_request, max_queue_size=1)
    a = _seq(engine)
    engine.step()
    b = _seq(engine)
    engine.step()
    assert engine.running == [a, b] and engine.kv_usage() == pytest.approx(1.0)
    c = _seq(engine)  # KV is full: c waits in the queue (size 1) ...
    with pytest.raises(QueueFull):  # ... and the next one is turned away
        _seq(engine)
    engine.step()
    assert engine.running == [a, b] and list(engine.waiting) == [c]
    assert engine.kv_usage() == pytest.approx(1.0)
    while not a.finished:
        engine.step()
        assert c not in engine.running or a.finished
    engine.step()
    assert c in engine.running


def test_requests_that_can_never_fit_are_refused_up_front(model):
    engine = Engine(model, max_num_batched_tokens=64, kv_cache_bytes=64 * 1024)
    too_long = SamplingParams(max_tokens=model.spec.context)
    with pytest.raises(BadRequest, match="maximum context length"):
        engine.check([BOS_ID, 1, 2], too_long)
    with pytest.raises(BadRequest, match="--max-num-batched-tokens"):
        engine.check([1] * 100, SamplingParams(max_tokens=1))
    with pytest.raises(BadRequest, match="--kv-cache-bytes"):
        engine.check([1], SamplingParams(max_tokens=200))
    with pytest.raises(BadRequest, match="token ids"):
        engine.check([model.spec.vocab], SamplingParams(max_tokens=1))


def test_cancelled_sequences_free_their_kv_at_the_next_step(model):
    engine = Engine(model, max_num_seqs=4)
    a, b = _seq(engine, max_tokens=50), _seq(engine, max_tokens=50)
    engine.step()
    used = engine.kv_used
    engine.cancel(a)
    engine.step()
    assert engine.running == [b] and engine.kv_used == used - a.kv_bytes
    assert a.finish_reason == "cancelled"


def _feed(seq, text: bytes):
    return [seq.add_token(t) for t in text]


def test_stop_strings_end_the_text_before_the_stop_even_across_tokens():
    seq = Sequence([1], SamplingParams(max_tokens=50, stop=("END",)), 50, eos_id=None)
    events = _feed(seq, b"abcEN")
    assert "".join(e.text for e in events) == "abc"  # "EN" held back: it could start "END"
    last = seq.add_token(ord("D"))
    assert last.finish_reason == "stop"
    assert "".join(e.text for e in [*events, last]) == "abc"


def test_eos_ends_unless_ignored_and_utf8_is_decoded_across_tokens():
    seq = Sequence([1], SamplingParams(max_tokens=9), 9, eos_id=257)
    events = _feed(seq, "é".encode())
    assert [e.text for e in events] == ["", "é"]
    assert seq.add_token(257).finish_reason == "stop"
    ignoring = Sequence([1], SamplingParams(max_tokens=2, ignore_eos=True), 2, eos_id=257)
    assert ignoring.add_token(257).finish_reason is None
    assert ignoring.add_token(257).finish_reason == "length"


def test_sampling_greedy_top_p_and_seed():
    logits = np.array([0.0, 3.0, 1.0, 2.9])
    rng = np.random.default_rng(0)
    assert sample(logits, 0.0, 1.0, rng) == 1
    assert {sample(logits, 1.0, 1e-6, rng) for _ in range(50)} == {1}  # nucleus of one
    assert {sample(logits, 1.0, 0.8, rng) for _ in range(200)} == {1, 3}
    draws = [sample(logits, 1.0, 1.0, np.random.default_rng(42)) for _ in range(5)]
    assert len(set(draws)) == 1


def test_greedy_output_is_the_same_alone_and_in_a_changing_batch(model):
    def alone(prompt_len, max_tokens):
        engine = Engine(model)
        seq = _seq(engine, prompt_len, max_tokens)
        while not seq.finished:
            engine.step()
        return seq.output_ids

    engine = Engine(model, max_num_seqs=8)
    a = _seq(engine, 3, 12)
    engine.step()
    engine.step()
    b, c = _seq(engine, 9, 4), _seq(engine, 6, 9)  # join mid-way; b leaves first
    d = _seq(engine, 4, 1)  # done at its prefill: never joins the decode batch
    while not (a.finished and b.finished and c.finished):
        engine.step()
    assert d.output_ids == alone(4, 1)
    assert a.output_ids == alone(3, 12)
    assert b.output_ids == alone(9, 4)
    assert c.output_ids == alone(6, 9)
    assert engine.kv_used == 0 and len(engine.batch) == 0


def test_an_engine_failure_fails_that_batch_and_the_engine_keeps_serving(model):
    class Flaky:
        spec = model.spec
        fail = True

        def prefill(self, prompts):
            return model.prefill(prompts)

        def decode(self, batch, tokens):
            if self.fail:
                self.fail = False
                raise RuntimeError("device lost")
            return model.decode(batch, tokens)

    engine = Engine(Flaky())
    a = _seq(engine, max_tokens=5)
    engine.step()  # prefill ok
    engine.step()  # decode raises
    assert a.finish_reason == "error" and a.events[-1].error == "inference failed: device lost"
    assert engine.running == [] and engine.kv_used == 0 and len(engine.batch) == 0
    b = _seq(engine, max_tokens=3)
    while not b.finished:
        engine.step()
    assert b.finish_reason == "length"
