"""Real servers for the protocol tests, each started once per module and always stopped."""

from __future__ import annotations

import pytest

from tests.endpoints.servers import KServeV1, MLServer, SeedsAPI, SSELawServer, TorchServe


@pytest.fixture(scope="module")
def seeds_api():
    with SeedsAPI() as server:
        yield server


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory):
    with MLServer(tmp_path_factory.mktemp("mlserver")) as server:
        yield server


@pytest.fixture(scope="module")
def torchserve(tmp_path_factory):
    with TorchServe(tmp_path_factory.mktemp("torchserve")) as server:
        yield server


@pytest.fixture(scope="module")
def kserve(tmp_path_factory):
    with KServeV1(tmp_path_factory.mktemp("kserve")) as server:
        yield server


@pytest.fixture(scope="module")
def sse_server():
    """``sse_server(*args)`` starts an SSE law server; all are stopped with the module."""
    servers = []

    def start(*args: str, **kw) -> SSELawServer:
        servers.append(SSELawServer(*args, **kw))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()
