"""Fixtures for the measure tests: a real node_exporter on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import types
import urllib.request

import pytest

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def node_exporter(tmp_path):
    """A real prometheus-node-exporter process: ``.url`` and ``.proc``; stopped after the test."""
    binary = shutil.which("prometheus-node-exporter") or NODE_EXPORTER
    if not os.path.exists(binary):
        pytest.fail(
            f"{NODE_EXPORTER} missing: run `make system-deps` (Debian prometheus-node-exporter)"
        )
    port = _free_port()
    log = open(tmp_path / "node_exporter.log", "wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            # these need systemd/dbus or hardware that containers lack; they only log errors
            "--no-collector.systemd",
            "--no-collector.hwmon",
            "--no-collector.thermal_zone",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"node_exporter exited: {(tmp_path / 'node_exporter.log').read_text()}")
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("node_exporter did not answer within 15 s")
                time.sleep(0.1)
        yield types.SimpleNamespace(url=url, proc=proc)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
