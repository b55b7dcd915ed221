"""ONNX graph rewrites and inspections used when quantising: small, pure functions on a ModelProto."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

#: Ops whose constant weights per-channel quantisation applies to, with the output-channel axis.
_WEIGHT_AXIS = {"Conv": 0, "ConvTranspose": 1, "MatMul": 1}


def gemm_to_matmul(model) -> int:
    """Rewrite ``Gemm(A, B, C)`` with constant ``B`` as ``MatMul`` + ``Add`` in place; return the count.

    Only plain Gemms (no transA, alpha = beta = 1) are rewritten; a transposed
    ``B`` is stored transposed.
    """
    from onnx import helper, numpy_helper

    inits = {init.name: init for init in model.graph.initializer}
    users = Counter(i for node in model.graph.node for i in node.input)
    nodes, count = [], 0
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = (
            node.op_type == "Gemm"
            and attrs.get("transA", 0) == 0
            and attrs.get("alpha", 1.0) == 1.0
            and attrs.get("beta", 1.0) == 1.0
            and len(node.input) >= 2
            and node.input[1] in inits
            and (not attrs.get("transB", 0) or users[node.input[1]] == 1)
        )
        if not plain:
            nodes.append(node)
            continue
        weight = node.input[1]
        if attrs.get("transB", 0):
            array = numpy_helper.to_array(inits[weight]).T
            inits[weight].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array), weight))
        product = f"{node.output[0]}_matmul"
        nodes.append(
            helper.make_node(
                "MatMul", [node.input[0], weight], [product], name=f"{node.name}_MatMul"
            )
        )
        if len(node.input) > 2 and node.input[2]:
            nodes.append(
                helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=node.name)
            )
        else:
            nodes.append(helper.make_node("Identity", [product], [node.output[0]], name=node.name))
        count += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return count


def weight_channel_spread(model) -> float:
    """Largest, over weight tensors, of (widest output-channel range / median channel range).

    1.0 means every channel spans the same range, so one per-tensor scale loses
    nothing; trained models often reach 10+ where per-channel scales pay.
    """
    from onnx import helper, numpy_helper

    inits = {init.name: init for init in model.graph.initializer}
    worst = 1.0
    for node in model.graph.node:
        if node.op_type == "Gemm":
            trans_b = next(
                (helper.get_attribute_value(a) for a in node.attribute if a.name == "transB"), 0
            )
            axis = 0 if trans_b else 1
        elif node.op_type in _WEIGHT_AXIS:
            axis = _WEIGHT_AXIS[node.op_type]
        else:
            continue
        if len(node.input) < 2 or node.input[1] not in inits:
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        if weight.ndim < 2:
            continue
        ranges = np.abs(np.moveaxis(weight, axis, 0).reshape(weight.shape[axis], -1)).max(axis=1)
        median = float(np.median(ranges))
        if median > 0:
            worst = max(worst, float(ranges.max()) / median)
    return worst


def count_quantized(path: Path) -> dict[str, int]:
    """Quantised compute nodes by op type: QDQ-fed nodes, or integer/quantised ops."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dq_outputs = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    counts: Counter[str] = Counter()
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"):
            continue
        integer_op = node.op_type.endswith("Integer") or node.op_type.startswith(
            ("QLinear", "DynamicQuantize")
        )
        weight_from_dq = len(node.input) > 1 and node.input[1] in dq_outputs
        if integer_op or weight_from_dq:
            counts[node.op_type] += 1
    return dict(sorted(counts.items()))
