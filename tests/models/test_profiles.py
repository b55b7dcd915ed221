"""Real profiles of the embedded models: they load in both engines and agree with FP32 within tolerance.

The tolerances are recorded in docs/profiles.md, with the figures measured on
an AVX-512 VNNI CPU; they leave room for other CPUs (7-bit weights without
VNNI). On ``cnn`` random inputs put every sample in one class, so its agreement
is the cosine similarity (see inferops.models.accuracy).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from inferops.models import accuracy, cpuflags, samples
from inferops.models.compare import compare
from inferops.models.graphops import gemm_to_matmul, weight_channel_spread
from inferops.models.optimize import optimize, sha256_file
from inferops.server.backends import load as load_backend

#: (model, profile) -> (min agreement, max |err|) against FP32 on generated samples.
TOLERANCES = {
    ("mlp", "int8-dynamic"): (0.98, 0.1),
    ("mlp", "int8-static"): (0.97, 0.6),
    ("mlp", "openvino"): (0.9999, 1e-4),
    ("mlp", "openvino-int8"): (0.95, 0.6),
    ("cnn", "int8-dynamic"): (0.9995, 0.1),
    ("cnn", "int8-static"): (0.9995, 0.1),
    ("cnn", "openvino"): (0.9999, 1e-4),
    ("cnn", "openvino-int8"): (0.9995, 0.1),
    ("dense", "int8-dynamic"): (0.9995, 0.2),
    ("dense", "int8-static"): (0.9995, 0.6),
    ("dense", "openvino"): (0.9999, 1e-4),
    ("dense", "openvino-int8"): (0.9995, 0.3),
}
#: Samples per comparison: top-1 needs many; ConvInteger (cnn int8-dynamic) is slow on CPU.
SAMPLES = {"mlp": "1000", "cnn": "96", "dense": "64"}
PROFILES = ("int8-dynamic", "int8-static", "openvino", "openvino-int8")


def _check_profile(fp32, profile, model, to):
    record = profile(model, to)
    out = Path(record["output"]["path"])
    # Loads in the server's backends: ONNX in both engines, IR in OpenVINO.
    engines = ["openvino"] if out.suffix == ".xml" else ["onnxruntime", "openvino"]
    for engine in engines:
        backend = load_backend(out, engine, threads=1)
        assert [s.name for s in backend.inputs] == ["input"]
        assert [s.name for s in backend.outputs] == [("logits" if model != "dense" else "output")]
    result = compare(fp32(model), out, SAMPLES[model], layers=False)
    min_agreement, max_err = TOLERANCES[(model, to)]
    (metrics,) = result["outputs"].values()
    assert result["agreement"]["value"] >= min_agreement, result["agreement"]
    assert metrics["max_abs_error"] <= max_err, metrics
    if to != "openvino":
        assert record["size_ratio"] < 0.35, record["size_ratio"]
        assert accuracy.check_accuracy(result, 0.05).accepted
    return record, result


@pytest.mark.parametrize("to", PROFILES)
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_profile_loads_and_agrees_with_fp32(fp32, profile, model, to):
    record, result = _check_profile(fp32, profile, model, to)
    if model == "mlp":
        assert result["agreement"]["metric"] == "top1"
    else:
        assert result["agreement"]["metric"] == "cosine"  # one-class reference on random inputs


@pytest.mark.slow
@pytest.mark.parametrize("to", PROFILES)
def test_dense_profiles(fp32, profile, to):
    record, result = _check_profile(fp32, profile, "dense", to)
    assert result["agreement"]["metric"] == "cosine"


def test_sidecar_records_how_the_profile_was_made(fp32, profile):
    record = profile("mlp", "int8-static")
    out = Path(record["output"]["path"])
    on_disk = json.loads(Path(record["sidecar"]).read_text())
    assert on_disk["output"]["files"] == {out.name: sha256_file(out)}
    assert on_disk["source"]["sha256"] == sha256_file(fp32("mlp"))  # builds are byte-identical
    assert on_disk["source"]["embedded"] == "mlp"
    assert {"onnx", "onnxruntime", "numpy", "inferops"} <= set(on_disk["tools"])
    cpu = cpuflags.read_cpu()
    assert on_disk["cpu"]["flags"] == cpu.int8_flags
    plan = cpuflags.int8_plan(cpu)
    assert on_disk["options"]["reduce_range"] == plan.reduce_range
    assert on_disk["options"]["activation_type"] == plan.activation_type
    assert on_disk["options"]["format"] == "QDQ"
    expected = samples.generate(
        samples.input_specs(fp32("mlp")),
        on_disk["calibration"]["samples"],
        samples.CALIBRATION_SEED,
    )
    assert on_disk["calibration"]["sha256"] == samples.digest(expected)
    assert on_disk["calibration"]["method"] == "MinMax"
    assert on_disk["quantized_nodes"].get("Gemm") == 3


def test_openvino_int8_sidecar_names_nncf(profile):
    record = profile("mlp", "openvino-int8")
    assert "nncf" in record["tools"] and "openvino" in record["tools"]
    assert record["options"]["fake_quantize_nodes"] > 0
    out = Path(record["output"]["path"])
    files = {
        out.name: sha256_file(out),
        out.with_suffix(".bin").name: sha256_file(out.with_suffix(".bin")),
    }
    assert record["output"]["files"] == files
    assert record["output"]["bytes"] == sum((out.parent / f).stat().st_size for f in files)


def test_calibration_methods_are_applied(profile):
    for method in ("Entropy", "Percentile"):
        record = profile("mlp", "int8-static", calibration_method=method)
        assert record["calibration"]["method"] == method


def test_dynamic_profile_of_a_convnet_warns_about_convinteger(profile):
    record = profile("cnn", "int8-dynamic")
    assert record["quantized_nodes"].get("ConvInteger", 0) > 0
    assert any("ConvInteger" in note for note in record["notes"])


# -- the accuracy rule on real profiles, with a negative control ------------------------------


@pytest.mark.parametrize(
    "scale", [1000.0, 1e-3], ids=["calibration-x1000", "calibration-tiny-range"]
)
def test_rule_refuses_a_profile_with_broken_calibration(fp32, profile, tmp_path, scale):
    """Same model, same quantiser, same evaluation samples: only the calibration differs."""
    good = samples.generate(samples.input_specs(fp32("mlp")), 128, seed=7)["input"]
    np.save(tmp_path / "good.npy", good)
    np.save(tmp_path / "broken.npy", good * scale)
    threshold = 0.03
    verdicts = {}
    for name in ("good", "broken"):
        record = profile("mlp", "int8-static", calibration=tmp_path / f"{name}.npy")
        result = compare(fp32("mlp"), Path(record["output"]["path"]), "1000", layers=False)
        verdicts[name] = accuracy.check_accuracy(result, threshold)
    assert verdicts["good"].accepted, verdicts["good"].reason
    assert not verdicts["broken"].accepted
    assert "exceeds max_accuracy_drop" in verdicts["broken"].reason
    assert verdicts["broken"].drop > 0.3


def test_layer_drift_ranks_the_worst_tensors(fp32, profile):
    record = profile("cnn", "int8-static")
    result = compare(fp32("cnn"), Path(record["output"]["path"]), "16")
    drift = result["layers"]
    assert drift["method"].startswith("onnxruntime.quantization.qdq_loss_debug")
    assert drift["tensors_matched"] >= 10
    sqnr = [w["sqnr_db"] for w in drift["worst"]]
    assert len(sqnr) == 5 and sqnr == sorted(sqnr)
    assert 10 < sqnr[0] < 80  # quantisation noise: present, far below the signal


def test_layer_drift_of_dynamic_profile_matches_names(fp32, profile):
    record = profile("mlp", "int8-dynamic")
    drift = compare(fp32("mlp"), Path(record["output"]["path"]), "16")["layers"]
    assert drift["method"] == "tensors of the same name in both models"
    reference_tensors = {o for n in onnx.load(str(fp32("mlp"))).graph.node for o in n.output}
    assert drift["worst"] and {w["tensor"] for w in drift["worst"]} <= reference_tensors | {"input"}
    assert drift["tensors_matched"] >= 4


def test_layer_drift_is_not_claimed_for_openvino(fp32, profile):
    record = profile("mlp", "openvino")
    result = compare(fp32("mlp"), Path(record["output"]["path"]), "8")
    assert result["layers"]["method"] is None and result["candidate"]["precision_hint"] == "f32"


# -- graph helpers ----------------------------------------------------------------------------


def _gemm_model(trans_b: int, weight: np.ndarray) -> onnx.ModelProto:
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="g", transB=trans_b)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])],
        [
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(np.arange(5, dtype=np.float32), "b"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_to_matmul_keeps_the_function(trans_b):
    rng = np.random.RandomState(0)
    weight = rng.normal(size=(5, 6) if trans_b else (6, 5)).astype(np.float32)
    model = _gemm_model(trans_b, weight)
    x = rng.normal(size=(3, 6)).astype(np.float32)
    before = ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(None, {"x": x})[0]
    assert gemm_to_matmul(model) == 1
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Add"]
    onnx.checker.check_model(model)
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)


def test_per_channel_is_chosen_when_channel_ranges_differ(fp32, profile, tmp_path):
    model = onnx.load(str(fp32("mlp")))
    assert weight_channel_spread(model) < 1.5  # uniform init: every channel spans the same range
    assert profile("mlp", "int8-static")["options"]["per_channel"] is False
    weight = next(i for i in model.graph.initializer if i.name == "fc2.weight")
    array = numpy_helper.to_array(weight).copy()
    array[:, 7] *= 20  # one output channel 20x wider, as trained models often have
    weight.CopyFrom(numpy_helper.from_array(array, "fc2.weight"))
    assert weight_channel_spread(model) > 10
    onnx.save(model, str(tmp_path / "wide.onnx"))
    np.save(
        tmp_path / "cal.npy",
        samples.generate(samples.input_specs(tmp_path / "wide.onnx"), 32, 7)["input"],
    )
    record = optimize(
        str(tmp_path / "wide.onnx"),
        "int8-static",
        tmp_path / "wide-int8.onnx",
        calibration=tmp_path / "cal.npy",
    )
    assert record["options"]["per_channel"] is True
    assert record["source"]["embedded"] is None and record["calibration"]["source"] == str(
        tmp_path / "cal.npy"
    )


def test_a_sidecar_never_describes_files_it_was_not_written_for(tmp_path, monkeypatch):
    """Crash between publishing the model and writing its sidecar: the old sidecar must be gone."""
    from inferops.models import optimize as optimize_module

    out = tmp_path / "mlp-int8.onnx"
    first = optimize("mlp", "int8-dynamic", out)
    assert Path(first["sidecar"]).is_file()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(optimize_module, "write_atomic", crash)
    with pytest.raises(OSError):
        optimize("mlp", "int8-static", out)
    assert out.is_file()  # the new model is in place...
    assert not Path(first["sidecar"]).exists()  # ...and nothing claims it is the dynamic one


def test_activation_type_override_is_applied_and_recorded(profile):
    record = profile("mlp", "int8-static", activation_type="int8")
    assert record["options"]["activation_type"] == "int8"
    assert "overridden to int8" in record["options"]["int8_plan"]["reason"]
    graph = onnx.load(record["output"]["path"]).graph
    zero_points = {i.name: i.data_type for i in graph.initializer if i.name == "input_zero_point"}
    assert zero_points == {"input_zero_point": TensorProto.INT8}
    default = onnx.load(profile("mlp", "int8-static")["output"]["path"]).graph
    expected = (
        TensorProto.UINT8
        if cpuflags.int8_plan(cpuflags.read_cpu()).activation_type == "uint8"
        else TensorProto.INT8
    )
    assert {i.name: i.data_type for i in default.initializer if i.name == "input_zero_point"} == {
        "input_zero_point": expected
    }
