"""Fixtures for the server tests: small embedded models on disk and real server processes."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from inferops.models import build
from inferops.server.process import ServerProcess


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """mlp.onnx and cnn.onnx, built once per test session."""
    root = tmp_path_factory.mktemp("models")
    for name in ("mlp", "cnn"):
        build(name, root / f"{name}.onnx")
    return root


@pytest.fixture(scope="session")
def cache_env(tmp_path_factory) -> dict[str, str]:
    """Environment whose model cache is a fresh temp dir (never the user's ~/.cache)."""
    return {**os.environ, "INFEROPS_CACHE": str(tmp_path_factory.mktemp("cache"))}


@pytest.fixture(scope="session")
def mlp_server(model_dir, cache_env):
    """One mlp server shared by the read-only protocol and fuzz tests."""
    server = ServerProcess(
        model_dir / "mlp.onnx",
        max_batch_size=8,
        max_queue_delay_ms=1,
        extra_args=["--max-body-bytes", "256k"],
        env=cache_env,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(mlp_server):
    with httpx.Client(base_url=mlp_server.url, timeout=30) as c:
        yield c
