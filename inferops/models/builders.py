"""Deterministic graphs for the embedded models, built with the ONNX helper API.

Every weight comes from a seeded legacy ``RandomState`` (its stream is frozen
across NumPy versions), and nothing time- or host-dependent goes into the
proto, so building the same model twice gives the same bytes.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: Bumped whenever a builder changes, so cached files from an older build are not reused.
BUILD_VERSION = 1
OPSET = 17
SEED = 20240229
BATCH = "batch"  # symbolic name of the dynamic batch dimension


class _Graph:
    """Accumulates nodes and initializers with unique, readable names."""

    def __init__(self, seed: int):
        self.rng = np.random.RandomState(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def weight(self, name: str, shape: tuple[int, ...], fan_in: int, gain: float = 1.0) -> str:
        # Uniform He-style init keeps activations O(1) through ReLU stacks, so
        # ORT and OpenVINO can be compared with an absolute tolerance.
        limit = gain * np.sqrt(6.0 / fan_in)
        data = (self.rng.random_sample(shape) * 2.0 - 1.0) * limit
        self.inits.append(numpy_helper.from_array(data.astype(np.float32), name))
        return name

    def bias(self, name: str, size: int) -> str:
        data = (self.rng.random_sample(size) * 2.0 - 1.0) * 0.01
        self.inits.append(numpy_helper.from_array(data.astype(np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def dense(self, x: str, name: str, n_in: int, n_out: int, relu: bool) -> str:
        w = self.weight(f"{name}.weight", (n_in, n_out), n_in)
        b = self.bias(f"{name}.bias", n_out)
        y = self.node("Gemm", [x, w, b], f"{name}.out")
        return self.node("Relu", [y], f"{name}.relu") if relu else y

    def conv(
        self,
        x: str,
        name: str,
        c_in: int,
        c_out: int,
        k: int,
        stride: int,
        relu: bool,
        gain: float = 1.0,
    ) -> str:
        w = self.weight(f"{name}.weight", (c_out, c_in, k, k), c_in * k * k, gain)
        b = self.bias(f"{name}.bias", c_out)
        pad = k // 2
        y = self.node(
            "Conv",
            [x, w, b],
            f"{name}.out",
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[pad, pad, pad, pad],
        )
        return self.node("Relu", [y], f"{name}.relu") if relu else y

    def model(self, name: str, inputs, outputs, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="inferops",
            producer_version=str(BUILD_VERSION),
            doc_string=doc,
        )
        model.ir_version = 8  # readable by every ORT >= 1.15 and OpenVINO we support
        return model


def _tensor(name: str, *dims) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, *dims])


def mlp(features: int = 64, hidden: int = 256, classes: int = 10) -> onnx.ModelProto:
    """Tiny classifier: [batch, 64] -> two ReLU layers of 256 -> [batch, 10] logits."""
    g = _Graph(SEED)
    x = g.dense("input", "fc1", features, hidden, relu=True)
    x = g.dense(x, "fc2", hidden, hidden, relu=True)
    x = g.dense(x, "fc3", hidden, classes, relu=False)
    g.node("Identity", [x], "logits")
    return g.model(
        "mlp",
        [_tensor("input", features)],
        [_tensor("logits", classes)],
        "inferops embedded mlp: a small MLP, well under 1 ms per sample",
    )


def cnn(
    size: int = 64, widths: tuple[int, ...] = (32, 64, 128), blocks: int = 2, classes: int = 10
) -> onnx.ModelProto:
    """ResNet-style classifier: NCHW [batch, 3, 64, 64] float32 -> [batch, 10] logits.

    A 3x3 stem, then ``blocks`` residual blocks per stage; every stage after the
    first halves the resolution with a strided 3x3 conv and a 1x1 projection
    shortcut. Global average pooling and a linear head finish it.
    """
    g = _Graph(SEED + 1)
    x = g.conv("input", "stem", 3, widths[0], 3, 1, relu=True)
    c_in = widths[0]
    for s, width in enumerate(widths):
        for b in range(blocks):
            stride = 2 if (s > 0 and b == 0) else 1
            name = f"stage{s}.block{b}"
            y = g.conv(x, f"{name}.conv1", c_in, width, 3, stride, relu=True)
            # A small gain on the last conv of each branch keeps the residual
            # stream's scale stable, as zero-init-gamma does in real ResNets.
            y = g.conv(y, f"{name}.conv2", width, width, 3, 1, relu=False, gain=0.3)
            shortcut = x
            if stride != 1 or c_in != width:
                shortcut = g.conv(x, f"{name}.proj", c_in, width, 1, stride, relu=False)
            x = g.node("Add", [y, shortcut], f"{name}.add")
            x = g.node("Relu", [x], f"{name}.relu")
            c_in = width
    x = g.node("GlobalAveragePool", [x], "pool")
    x = g.node("Flatten", [x], "flat", axis=1)
    x = g.dense(x, "head", c_in, classes, relu=False)
    g.node("Identity", [x], "logits")
    return g.model(
        "cnn",
        [_tensor("input", 3, size, size)],
        [_tensor("logits", classes)],
        "inferops embedded cnn: a small ResNet-style image classifier (NCHW)",
    )


def dense(width: int = 4096, out: int = 1024) -> onnx.ModelProto:
    """Wide feed-forward block: [batch, 4096] -> 4096 -> 4096 -> [batch, 1024], ~150 MB fp32.

    Shaped like a transformer FFN / recommendation MLP: at batch 1 every sample
    streams all weights from memory, so batching pays even on a CPU.
    """
    g = _Graph(SEED + 2)
    x = g.dense("input", "fc1", width, width, relu=True)
    x = g.dense(x, "fc2", width, width, relu=True)
    x = g.dense(x, "fc3", width, out, relu=False)
    g.node("Identity", [x], "output")
    return g.model(
        "dense",
        [_tensor("input", width)],
        [_tensor("output", out)],
        "inferops embedded dense: a wide memory-bound feed-forward model",
    )


BUILDERS = {"mlp": mlp, "cnn": cnn, "dense": dense}
