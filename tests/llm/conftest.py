"""Fixtures for the LLM tests: decoder ONNX files and real `inferops serve` processes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import orjson
import pytest

from inferops.models import build, write_atomic
from inferops.models.tinylm import tinylm
from inferops.server.process import ServerProcess

# A user-sized decoder: same convention as tinylm, other sizes (2 layers, d_model 64).
SMALL = {"d_model": 64, "layers": 2, "heads": 4, "context": 512, "seed": 7}


@pytest.fixture(scope="session")
def llm_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("llm-models")
    build("tinylm", root / "tinylm.onnx")
    write_atomic(tinylm(**SMALL).SerializeToString(), root / "small.onnx")
    return root


@pytest.fixture(scope="session")
def llm_env(tmp_path_factory) -> dict[str, str]:
    return {**os.environ, "INFEROPS_CACHE": str(tmp_path_factory.mktemp("llm-cache"))}


@pytest.fixture(scope="session")
def tinylm_server(llm_dir, llm_env):
    """One tinylm server shared by the read-only protocol tests."""
    server = ServerProcess(
        llm_dir / "tinylm.onnx",
        extra_args=["--name", "tinylm", "--max-body-bytes", "64k"],
        env=llm_env,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(tinylm_server):
    with httpx.Client(base_url=tinylm_server.url, timeout=60) as c:
        yield c


def sse_events(lines) -> list:
    """Parse SSE ``data:`` lines into JSON documents, with ``"[DONE]"`` kept as a string."""
    events = []
    for line in lines:
        if not line.startswith("data: "):
            continue
        data = line[len("data: ") :]
        events.append(data if data == "[DONE]" else orjson.loads(data))
    return events


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{{[^}}]*{re.escape(labels)}[^}}]*}} ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{name}{{{labels}}} not in /metrics"
    return float(match.group(1))
