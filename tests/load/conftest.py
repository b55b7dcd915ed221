"""Fixtures for the load-engine tests: real law servers on free 127.0.0.1 ports."""

from __future__ import annotations

import pytest

from tests.load.procs import LawServer


@pytest.fixture(scope="module")
def law_server(request):
    """Start ``tests.load.lawserver`` with the law from ``@pytest.mark.law``-less params."""
    servers = []

    def start(law: str, **kw) -> LawServer:
        server = LawServer(law, **kw)
        servers.append(server)
        return server

    request.addfinalizer(lambda: [s.stop() for s in servers])
    return start
