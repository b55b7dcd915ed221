"""Fixtures for the operation-level deploy tests (fake hosts; nothing is contacted)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _local_state(tmp_path, monkeypatch):
    """Tokens/wheels/models go to a per-test .inferops, never the checkout's."""
    monkeypatch.setenv("INFEROPS_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A real (tiny) ONNX model: Identity on a float vector."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    onnx.save(helper.make_model(graph), path)
    return path


@pytest.fixture(scope="session")
def fake_wheel(tmp_path_factory) -> Path:
    """A stand-in wheel file (op-level tests only check it is uploaded and installed)."""
    path = tmp_path_factory.mktemp("wheel") / "inferops-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("inferops/__init__.py", "")
    return path
