"""``tinylm``: a GPT-style decoder-only transformer built with the ONNX helper API.

Byte-level vocabulary (ids 0-255 are bytes, then BOS, EOS, PAD), learned
position embeddings, pre-LayerNorm blocks, and past key/values as inputs and
outputs, so a server can run prefill once and then one token per step. Its text
is gibberish (the weights are seeded noise); its cost is real: prefill is a
batch of GEMMs, decode is one GEMV per weight matrix plus attention over the
whole KV cache, so a decode step costs about the same for 1 and for 16 rows
until the CPU runs out of FLOPs.

The I/O convention (the one Hugging Face Optimum uses for ``decoder_with_past``
exports; documented in docs/llm.md) is what any user decoder must follow:

    input_ids                       int64 [batch, sequence]
    attention_mask                  int64 [batch, past_sequence + sequence]  1 = attend
    position_ids                    int64 [batch, sequence]
    past_key_values.{i}.key|value   float [batch, heads, past_sequence, head_dim]
    ->
    logits                          float [batch, sequence, vocab]
    present.{i}.key|value           float [batch, heads, past_sequence + sequence, head_dim]
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inferops.models.builders import BUILD_VERSION, OPSET, SEED

BOS_ID, EOS_ID, PAD_ID = 256, 257, 258
VOCAB = 259
# Keeps a random model from ending every reply after a few bytes, or never.
EOS_BIAS = -4.0
NEG_INF = -1e9  # additive mask value; finite, so a fully masked (padding) row stays finite

#: metadata_props keys a user decoder may set (see docs/llm.md).
META_CONTEXT = "inferops.context_length"
META_BOS = "inferops.bos_token_id"
META_EOS = "inferops.eos_token_id"
META_TOKENIZER = "inferops.tokenizer"


class _Builder:
    def __init__(self, seed: int):
        self.rng = np.random.RandomState(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value, dtype=np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def normal(self, name: str, shape: tuple[int, ...], std: float) -> str:
        return self.const(name, self.rng.standard_normal(shape) * std)

    def node(self, op: str, inputs: list[str], output: str | list[str], **attrs):
        outputs = [output] if isinstance(output, str) else output
        self.nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0], **attrs))
        return output

    def linear(self, x: str, name: str, n_in: int, n_out: int, std: float) -> str:
        w = self.normal(f"{name}.weight", (n_in, n_out), std)
        b = self.const(f"{name}.bias", np.zeros(n_out))
        return self.node("Add", [self.node("MatMul", [x, w], f"{name}.mm"), b], f"{name}.out")

    def layer_norm(self, x: str, name: str, width: int) -> str:
        g = self.const(f"{name}.weight", np.ones(width))
        b = self.const(f"{name}.bias", np.zeros(width))
        return self.node("LayerNormalization", [x, g, b], f"{name}.out", axis=-1, epsilon=1e-5)


def tinylm(
    d_model: int = 512,
    layers: int = 4,
    heads: int = 8,
    context: int = 1024,
    seed: int = SEED + 3,
) -> onnx.ModelProto:
    """Build the decoder; defaults give ~13 M parameters (~54 MB fp32) and 1024 tokens of context."""
    if d_model % heads:
        raise ValueError("d_model must be a multiple of heads")
    head_dim = d_model // heads
    g = _Builder(seed)
    std = 0.02
    resid_std = std / np.sqrt(2 * layers)  # GPT-2's scaled init of residual projections

    # Embeddings: token + position.
    wte = g.normal("wte", (VOCAB, d_model), std)
    wpe = g.normal("wpe", (context, d_model), std)
    tok = g.node("Gather", [wte, "input_ids"], "tok_emb")
    pos = g.node("Gather", [wpe, "position_ids"], "pos_emb")
    h = g.node("Add", [tok, pos], "emb")

    # Mask [batch, 1, seq, total]: causal by index (padding is on the left) AND attention_mask.
    g.const("zero_i", 0, np.int64)
    g.const("one_i", 1, np.int64)
    g.const("axes0", [0], np.int64)
    g.const("axes12", [1, 2], np.int64)
    g.const("axes1", [1], np.int64)
    s_len = g.node(
        "Squeeze", [g.node("Shape", ["input_ids"], "seq_shape", start=1, end=2), "axes0"], "seq_len"
    )
    t_len = g.node(
        "Squeeze",
        [g.node("Shape", ["attention_mask"], "tot_shape", start=1, end=2), "axes0"],
        "tot_len",
    )
    past_len = g.node("Sub", [t_len, s_len], "past_len")
    key_idx = g.node("Range", ["zero_i", t_len, "one_i"], "key_idx")
    query_idx = g.node("Range", [past_len, t_len, "one_i"], "query_idx")
    query_col = g.node("Unsqueeze", [query_idx, "axes1"], "query_col")
    causal = g.node("LessOrEqual", [key_idx, query_col], "causal")  # [seq, total]
    pad = g.node("Cast", ["attention_mask"], "pad_bool", to=TensorProto.BOOL)
    pad4 = g.node("Unsqueeze", [pad, "axes12"], "pad4")  # [batch, 1, 1, total]
    allowed = g.node("And", [causal, pad4], "allowed")  # [batch, 1, seq, total]
    g.const("neg_inf", NEG_INF)
    g.const("scale", 1.0 / np.sqrt(head_dim))
    g.const("split_shape", [0, 0, heads, head_dim], np.int64)
    g.const("merge_shape", [0, 0, d_model], np.int64)
    g.const("qkv_split", [d_model, d_model, d_model], np.int64)
    g.const("gelu_k", 1.702)

    for i in range(layers):
        p = f"h{i}"
        a = g.layer_norm(h, f"{p}.ln1", d_model)
        qkv = g.linear(a, f"{p}.attn.qkv", d_model, 3 * d_model, std)
        q, k, v = g.node("Split", [qkv, "qkv_split"], [f"{p}.q", f"{p}.k", f"{p}.v"], axis=-1)
        q, k, v = (
            g.node(
                "Transpose",
                [g.node("Reshape", [t, "split_shape"], f"{t}.heads")],
                f"{t}.bhsd",
                perm=[0, 2, 1, 3],
            )
            for t in (q, k, v)
        )
        k_all = g.node("Concat", [f"past_key_values.{i}.key", k], f"present.{i}.key", axis=2)
        v_all = g.node("Concat", [f"past_key_values.{i}.value", v], f"present.{i}.value", axis=2)
        k_t = g.node("Transpose", [k_all], f"{p}.k_t", perm=[0, 1, 3, 2])
        scores = g.node("Mul", [g.node("MatMul", [q, k_t], f"{p}.qk"), "scale"], f"{p}.scores")
        masked = g.node("Where", [allowed, scores, "neg_inf"], f"{p}.masked")
        probs = g.node("Softmax", [masked], f"{p}.probs", axis=-1)
        ctx = g.node("MatMul", [probs, v_all], f"{p}.ctx")
        ctx = g.node("Transpose", [ctx], f"{p}.ctx_t", perm=[0, 2, 1, 3])
        ctx = g.node("Reshape", [ctx, "merge_shape"], f"{p}.ctx_merged")
        h = g.node(
            "Add", [h, g.linear(ctx, f"{p}.attn.proj", d_model, d_model, resid_std)], f"{p}.res1"
        )
        m = g.layer_norm(h, f"{p}.ln2", d_model)
        m = g.linear(m, f"{p}.mlp.fc", d_model, 4 * d_model, std)
        # GELU as x * sigmoid(1.702 x): opset 17 has no Gelu op.
        gate = g.node("Sigmoid", [g.node("Mul", [m, "gelu_k"], f"{p}.mlp.k")], f"{p}.mlp.gate")
        m = g.node("Mul", [m, gate], f"{p}.mlp.act")
        m = g.linear(m, f"{p}.mlp.proj", 4 * d_model, d_model, resid_std)
        h = g.node("Add", [h, m], f"{p}.res2")

    h = g.layer_norm(h, "ln_f", d_model)
    # A wider head than GPT-2's tied 0.02 gives logits with some spread, so sampling
    # at temperature 1 is not uniform noise and greedy decoding is stable.
    head = g.normal("lm_head.weight", (d_model, VOCAB), 0.1)
    bias = np.zeros(VOCAB)
    bias[EOS_ID] = EOS_BIAS
    bias[BOS_ID] = bias[PAD_ID] = NEG_INF  # never generated
    g.const("lm_head.bias", bias)
    logits = g.node("MatMul", [h, head], "lm_head.mm")
    g.node("Add", [logits, "lm_head.bias"], "logits")

    def tensor(name, elem, dims):
        return helper.make_tensor_value_info(name, elem, dims)

    inputs = [
        tensor("input_ids", TensorProto.INT64, ["batch", "sequence"]),
        tensor("attention_mask", TensorProto.INT64, ["batch", "total_sequence"]),
        tensor("position_ids", TensorProto.INT64, ["batch", "sequence"]),
    ]
    outputs = [tensor("logits", TensorProto.FLOAT, ["batch", "sequence", VOCAB])]
    for i in range(layers):
        for kind in ("key", "value"):
            inputs.append(
                tensor(
                    f"past_key_values.{i}.{kind}",
                    TensorProto.FLOAT,
                    ["batch", heads, "past_sequence", head_dim],
                )
            )
            outputs.append(
                tensor(
                    f"present.{i}.{kind}",
                    TensorProto.FLOAT,
                    ["batch", heads, "total_sequence", head_dim],
                )
            )
    graph = helper.make_graph(g.nodes, "tinylm", inputs, outputs, initializer=g.inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="inferops",
        producer_version=str(BUILD_VERSION),
        doc_string=(
            f"inferops embedded tinylm: byte-level GPT-style decoder, {layers} layers, "
            f"d_model {d_model}, {heads} heads, {context} tokens of context"
        ),
    )
    model.ir_version = 8
    helper.set_model_props(
        model,
        {
            META_TOKENIZER: "bytes",
            META_CONTEXT: str(context),
            META_BOS: str(BOS_ID),
            META_EOS: str(EOS_ID),
        },
    )
    return model
