"""Real `inferops serve` processes: continuous batching, KV-budget waits, disconnects, SIGTERM.

Nothing here asserts speed: every check is about order and state (who is running,
who waits, what was freed), read from the server's own gauges and counters.
"""

from __future__ import annotations

import signal
import threading
import time

import httpx
import orjson
import pytest

from inferops.server.process import ServerProcess
from tests.llm.conftest import metric, sse_events

LONG = {"prompt": "x", "temperature": 0, "ignore_eos": True, "stream": True}


def _first_token(lines) -> dict:
    for line in lines:
        if line.startswith("data: "):
            return orjson.loads(line[6:])
    raise AssertionError("stream ended before its first token")


def _wait_for_metrics(client, name: str, value: float, timeout: float = 30.0) -> str:
    """Scrape /metrics until gauge ``name`` reads ``value``; return that scrape."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = client.get("/metrics").text
        if metric(text, name) == value:
            return text
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {name} == {value}")


@pytest.mark.parametrize("max_num_seqs", [32, 1])
def test_a_second_request_joins_the_running_batch_unless_max_num_seqs_is_1(
    llm_dir, llm_env, max_num_seqs
):
    args = ["--max-num-seqs", str(max_num_seqs)]
    with ServerProcess(llm_dir / "tinylm.onnx", extra_args=args, env=llm_env) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            with client.stream("POST", "/v1/completions", json={**LONG, "max_tokens": 600}) as a:
                a_lines = a.iter_lines()  # keep it referenced: a dropped iterator closes the stream
                _first_token(a_lines)
                with client.stream(
                    "POST", "/v1/completions", json={**LONG, "max_tokens": 600}
                ) as b:
                    b_lines = b.iter_lines()
                    _first_token(b_lines)
                    scrape = client.get("/metrics").text
            a_done = (
                metric(scrape, "inferops_request_success_total", 'finished_reason="length"')
                if "length" in scrape
                else 0
            )
    if max_num_seqs == 1:  # naive: b's first token only after all 600 of a's
        assert a_done == 1
        assert metric(scrape, "inferops_generation_tokens_total") >= 601
    else:  # continuous: b joined while a was still generating
        assert a_done == 0
        assert metric(scrape, "inferops_num_requests_running") == 2


def test_a_full_kv_cache_makes_requests_wait_and_a_full_wait_queue_gets_503(llm_dir, llm_env):
    # 16 KiB of KV per tinylm token: 6 MiB holds one request of 2 + 300 tokens, not two.
    args = ["--kv-cache-bytes", "6M", "--max-queue-size", "1"]
    with ServerProcess(llm_dir / "tinylm.onnx", extra_args=args, env=llm_env) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            with client.stream("POST", "/v1/completions", json={**LONG, "max_tokens": 300}) as a:
                a_lines = a.iter_lines()
                _first_token(a_lines)
                b_result = {}
                b = threading.Thread(
                    target=lambda: b_result.update(
                        resp=httpx.post(
                            server.url + "/v1/completions",
                            json={**LONG, "stream": False, "max_tokens": 300},
                            timeout=60,
                        )
                    )
                )
                b.start()
                text = _wait_for_metrics(client, "inferops_num_requests_waiting", 1)
                assert metric(text, "inferops_num_requests_running") == 1
                assert metric(text, "inferops_kv_cache_usage_perc") > 0.75
                c = client.post("/v1/completions", json={**LONG, "stream": False, "max_tokens": 5})
                assert c.status_code == 503 and c.headers["retry-after"] == "1"
                assert c.json()["error"]["type"] == "server_overloaded"
                a_events = sse_events(a_lines)  # a runs to its end
            b.join(60)
    assert a_events[-1] == "[DONE]" and a_events[-2]["choices"][0]["finish_reason"] == "length"
    assert b_result["resp"].status_code == 200
    assert b_result["resp"].json()["usage"]["completion_tokens"] == 300


def test_a_client_that_disconnects_mid_stream_frees_its_sequence(llm_dir, llm_env):
    with ServerProcess(llm_dir / "tinylm.onnx", env=llm_env) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            with client.stream(
                "POST", "/v1/completions", json={**LONG, "max_tokens": 1000}
            ) as resp:
                lines = resp.iter_lines()
                for _ in range(3):
                    _first_token(lines)
            # leaving the block closed the connection with the body unread
            text = _wait_for_metrics(client, "inferops_num_requests_running", 0)
    assert metric(text, "inferops_request_success_total", 'finished_reason="cancelled"') == 1
    assert metric(text, "inferops_generation_tokens_total") < 1000
    assert metric(text, "inferops_kv_cache_usage_perc") == 0


def test_a_non_streaming_client_that_gives_up_frees_its_sequence(llm_dir, llm_env):
    with ServerProcess(llm_dir / "tinylm.onnx", env=llm_env) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            body = {**LONG, "stream": False, "max_tokens": 1000}
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(server.url + "/v1/completions", json=body, timeout=0.5)
            text = _wait_for_metrics(client, "inferops_num_requests_running", 0)
    assert metric(text, "inferops_request_success_total", 'finished_reason="cancelled"') == 1
    assert metric(text, "inferops_generation_tokens_total") < 1000


def test_sigterm_drains_running_streams_then_exits_0(llm_dir, llm_env):
    server = ServerProcess(llm_dir / "tinylm.onnx", env=llm_env).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            with client.stream("POST", "/v1/completions", json={**LONG, "max_tokens": 300}) as resp:
                lines = resp.iter_lines()
                _first_token(lines)
                server.signal(signal.SIGTERM)
                rest = sse_events(lines)
        assert rest[-1] == "[DONE]"
        assert rest[-2]["choices"][0]["finish_reason"] == "length"
        assert len(rest) == 300  # 299 more tokens + [DONE]
        assert server.proc.wait(60) == 0
    finally:
        server.stop()
    assert "stopped" in server.stdout_text()


def test_a_decoder_missing_present_outputs_exits_2_with_one_line(tmp_path, llm_env):
    import subprocess
    import sys

    from inferops.models.tinylm import tinylm
    from tests.llm.conftest import SMALL

    model = tinylm(**SMALL)
    del model.graph.output[1]  # present.0.key
    path = tmp_path / "broken.onnx"
    path.write_bytes(model.SerializeToString())
    proc = subprocess.run(
        [sys.executable, "-m", "inferops", "serve", "--model", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        env=llm_env,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "present.0.key" in lines[0] and "Traceback" not in proc.stderr
