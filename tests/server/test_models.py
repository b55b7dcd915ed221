"""Embedded models: deterministic bytes, valid ONNX, dynamic batch, resolution and CLI."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from inferops.exitcodes import UsageError
from inferops.models import EMBEDDED, build, builders, cache_dir, resolve


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_build_is_byte_for_byte_deterministic(name, tmp_path, model_dir):
    again = build(name, tmp_path / f"{name}.onnx")
    assert _sha(again) == _sha(model_dir / f"{name}.onnx")


def test_dense_builder_is_deterministic_at_small_width():
    # Same builder code as the 150 MB model, narrow enough to build twice cheaply.
    a = builders.dense(width=128, out=32).SerializeToString()
    b = builders.dense(width=128, out=32).SerializeToString()
    assert a == b
    assert builders.dense(width=128, out=16).SerializeToString() != a


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_passes_full_checker_and_batch_dim_is_dynamic(name, model_dir):
    model = onnx.load(str(model_dir / f"{name}.onnx"))
    onnx.checker.check_model(model, full_check=True)
    for value in [*model.graph.input, *model.graph.output]:
        first = value.type.tensor_type.shape.dim[0]
        assert first.dim_param == builders.BATCH and not first.HasField("dim_value")
    session = ort.InferenceSession(
        str(model_dir / f"{name}.onnx"), providers=["CPUExecutionProvider"]
    )
    shape = session.get_inputs()[0].shape[1:]
    for batch in (1, 3):
        (out,) = session.run(None, {"input": np.zeros([batch, *shape], np.float32)})
        assert out.shape == (batch, 10)


def test_cnn_is_nchw_float32_resnet_style(model_dir):
    model = onnx.load(str(model_dir / "cnn.onnx"))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    assert dims == [3, 64, 64]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Conv") >= 12 and ops.count("Add") >= 6  # residual blocks


def test_full_dense_model_is_100_to_200_mb(tmp_path):
    # The only place the 150 MB model is built in the test suite.
    path = build("dense", tmp_path / "dense.onnx")
    assert 100e6 <= path.stat().st_size <= 200e6
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 4096]
    (out,) = session.run(None, {"input": np.ones((2, 4096), np.float32)})
    assert out.shape == (2, 1024) and np.isfinite(out).all()


def test_resolve_builds_embedded_models_into_the_cache(tmp_path, monkeypatch, model_dir):
    monkeypatch.setenv("INFEROPS_CACHE", str(tmp_path))
    path = resolve("mlp")
    assert path.parent == cache_dir() and path.is_relative_to(tmp_path)
    assert _sha(path) == _sha(model_dir / "mlp.onnx")
    assert resolve(str(model_dir / "cnn.onnx")) == model_dir / "cnn.onnx"  # files as given


def test_resolve_rejects_unknown_models(tmp_path):
    with pytest.raises(UsageError, match="no such file, and not an embedded model"):
        resolve(str(tmp_path / "missing.onnx"))
    with pytest.raises(UsageError, match="is not a file"):
        resolve(str(tmp_path))
    with pytest.raises(UsageError, match="unknown model"):
        build("resnet50", tmp_path / "x.onnx")


def test_model_build_cli(tmp_path, model_dir):
    out = tmp_path / "sub" / "m.onnx"
    done = subprocess.run(
        [sys.executable, "-m", "inferops", "model", "build", "mlp", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].endswith(str(out))
    assert _sha(out) == _sha(model_dir / "mlp.onnx")
    bad = subprocess.run(
        [sys.executable, "-m", "inferops", "model", "build", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    assert set(EMBEDDED) >= {"mlp", "cnn", "dense"}
