"""The readiness checker uploaded to hosts: its socket-ownership logic on real sockets.

(The systemd side is exercised on real hosts; here there is no systemd.)
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "templates" / "deploy" / "inferops-verify.py"


@pytest.fixture(scope="module")
def verify():
    spec = importlib.util.spec_from_file_location("inferops_verify", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_listener_is_found_and_owned_by_this_process(verify):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        assert verify.listening_inodes(port) == set()  # bound, not listening yet
        listener.listen()
        inodes = verify.listening_inodes(port)
        assert len(inodes) == 1
        assert os.getpid() in verify.pids_owning(inodes)


def test_port_owned_by_another_process_is_not_ours(verify):
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen();"
         "print(s.getsockname()[1], flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = int(child.stdout.readline())
        owners = verify.pids_owning(verify.listening_inodes(port))
        assert owners == {child.pid}
        assert not verify.port_owned_by(port, "no-such-unit.service")
    finally:
        child.kill()
        child.wait()


def test_nothing_listening_means_not_owned(verify):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    assert not verify.port_owned_by(free_port, "inferops-server.service")
    assert verify.http_ok(f"http://127.0.0.1:{free_port}/v2/health/ready") is False


def test_http_ok_sends_the_bearer_token(verify):
    """vLLM answers /v1/models only with the token: the probe must send it, and a wrong
    or missing one is not 'ready'."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.headers.get("Authorization") == "Bearer s3cret"
            self.send_response(200 if ok else 401)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/models"
        assert verify.http_ok(url, "s3cret")
        assert not verify.http_ok(url, "wrong")
        assert not verify.http_ok(url)
    finally:
        server.shutdown()
        server.server_close()
