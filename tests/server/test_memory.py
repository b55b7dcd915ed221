"""Hostile load against a real server: peak RSS stays bounded while large uploads pour in.

Many clients each start a large upload (under the body limit, so every one of
them is individually legitimate) and hold the last byte back. A server that
buffers every body would hold all of them at once: ``CLIENTS x BODY`` bytes,
far over the bound asserted here. The shared in-flight budget
(``--max-inflight-bytes``) must refuse the excess with 503 + Retry-After.
Peak RSS is sampled while the attack runs, and the kernel's own high-water mark
(``VmHWM``, reset just before) catches any spike between samples.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from inferops.server.process import ServerProcess

MiB = 1024**2
CLIENTS = 32
BODY = 40 * MiB  # 32 x 40 MiB = 1.25 GiB held by a server without the budget
INFLIGHT = 128 * MiB  # the budget under test
BOUND = 512 * MiB  # peak RSS growth allowed: budget + one parse + allocator slack

pytestmark = pytest.mark.slow


def _status(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", text).group(1)) * 1024


class PeakRss:
    """Samples VmRSS every 5 ms in a thread; also resets and reads the kernel's VmHWM."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        try:  # "5" resets the peak-RSS high-water mark (Linux >= 4.0)
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.baseline = _status(pid, "VmRSS")
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _status(self.pid, "VmRSS"))
            time.sleep(0.005)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.hwm_reset:
            self.peak = max(self.peak, _status(self.pid, "VmHWM"))

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def _upload(port: int, chunked: bool, payload: memoryview, sent: threading.Barrier, out: list):
    """Send all but the last byte, wait until every client has, then finish; record the status."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            framing = (
                b"Transfer-Encoding: chunked\r\n"
                if chunked
                else f"Content-Length: {len(payload)}\r\n".encode()
            )
            sock.sendall(
                b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\n"
                + framing
                + b"Content-Type: application/json\r\n\r\n"
            )
            head, last = payload[:-1], payload[-1:]
            try:
                if chunked:
                    step = 4 * MiB
                    for start in range(0, len(head), step):
                        part = head[start : start + step]
                        sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                else:
                    sock.sendall(head)
            finally:
                sent.wait(120)  # every client holds its upload open now: the worst moment
            if chunked:
                sock.sendall(b"1\r\n" + last + b"\r\n0\r\n\r\n")
            else:
                sock.sendall(last)
            reply = b""
            while b"\r\n\r\n" not in reply:
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
        match = re.match(rb"HTTP/1\.1 (\d{3})", reply)
        retry = re.search(rb"(?i)\r\nretry-after: *(\d+)", reply)
        out.append((int(match.group(1)) if match else "closed", bool(retry)))
    except OSError as exc:  # refused early: the server answered and closed while we sent
        out.append((type(exc).__name__, False))


def attack(port: int, chunked: bool) -> list:
    payload = memoryview(b"0" * BODY)  # one buffer shared by all clients
    sent, results = threading.Barrier(CLIENTS + 1), []
    threads = [
        threading.Thread(target=_upload, args=(port, chunked, payload, sent, results))
        for _ in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    sent.wait(120)
    time.sleep(0.3)  # let the server take in what it was sent
    return threads, results


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_peak_rss_stays_bounded_under_concurrent_large_uploads(model_dir, cache_env, chunked):
    args = ["--max-body-bytes", "48M", "--max-inflight-bytes", str(INFLIGHT)]
    with ServerProcess(model_dir / "mlp.onnx", env=cache_env, extra_args=args) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with PeakRss(server.pid) as rss:
            threads, results = attack(port, chunked)
            for t in threads:
                t.join(120)
        alive = httpx.post(server.url + "/predict", json={"inputs": [0.0] * 64}, timeout=30)
        metrics = httpx.get(server.url + "/metrics").text
        assert server.returncode is None  # still running
    print(
        f"peak RSS growth {rss.growth / MiB:.0f} MiB (baseline {rss.baseline / MiB:.0f} MiB, "
        f"hwm={rss.hwm_reset}); outcomes {sorted(map(str, results))}"
    )
    assert len(results) == CLIENTS
    assert rss.growth < BOUND, f"peak RSS grew {rss.growth / MiB:.0f} MiB under attack"
    statuses = [code for code, _ in results]
    # The budget let some uploads in (they are bad JSON: 400) and refused the rest.
    assert statuses.count(400) >= 1
    refused = [r for r in results if r[0] != 400]
    assert refused, "every upload was taken in: the budget never refused one"
    assert all(code == 503 and retry for code, retry in refused if isinstance(code, int))
    assert alive.status_code == 200
    assert re.search(r"inferops_request_body_bytes_in_flight\{[^}]*\} 0\.0", metrics)
