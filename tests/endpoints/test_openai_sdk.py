"""Cross-check of the SSE handling against the real ``openai`` Python SDK's parser.

Both read the same law-server streams: on a good stream they must agree on
every content chunk and on the usage counts; on a broken one the SDK raises (or,
for a stream without ``[DONE]``, accepts it: the protocol is stricter there).
"""

from __future__ import annotations

import json

import openai
import pytest
from geventhttpclient import HTTPClient

from inferops.load import protocols
from inferops.load.protocols.base import ProtocolOptions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(sse_server):
    return sse_server("--ttft", "fixed:3", "--itl", "fixed:1", "--tokens-per-chunk", "3")


def _ours(url, endpoint, fault=None, max_tokens=10):
    p = protocols.create(
        "openai", ProtocolOptions(model="law", openai_endpoint=endpoint, max_tokens=max_tokens)
    )
    body = json.loads(p.prepare(url)[0])
    if fault:
        body["x_fault"] = fault
    client = HTTPClient.from_url(url, network_timeout=2, headers=p.headers())
    try:
        return p.call(client, json.dumps(body).encode()), body
    finally:
        client.close()


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_sdk_and_protocol_agree_on_a_good_stream(server, endpoint):
    outcome, body = _ours(server.url, endpoint)
    assert outcome.error is None
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    create = sdk.chat.completions.create if endpoint == "chat" else sdk.completions.create
    kwargs = {k: v for k, v in body.items() if k not in ("model", "stream", "ignore_eos")}
    chunks, usage = [], None
    for event in create(model="law", stream=True, extra_body={"ignore_eos": True}, **kwargs):
        if event.usage:
            usage = event.usage
        for choice in event.choices:
            text = choice.delta.content if endpoint == "chat" else choice.text
            if text:
                chunks.append(text)
    # 10 tokens, 3 a chunk: 4 content chunks, 3 gaps; usage says 10
    assert len(chunks) == outcome.llm["chunks"] == 4
    assert len(outcome.llm["gaps"]) == 3
    assert usage.completion_tokens == outcome.llm["output_tokens"] == 10
    assert usage.prompt_tokens == outcome.llm["input_tokens"]
    assert outcome.llm["source"] == "usage"


@pytest.mark.parametrize(
    "fault, ours, sdk_raises",
    [
        ("error", "error in stream", True),
        ("malformed", "malformed SSE", True),
        ("http-500", "HTTP 500", True),
        ("no-done", "stream ended without [DONE]", False),
    ],
)
def test_broken_streams(server, fault, ours, sdk_raises):
    outcome, body = _ours(server.url, "chat", fault=fault)
    assert outcome.error is not None and ours in str(outcome.error)
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    kwargs = {
        k: v for k, v in body.items() if k not in ("model", "stream", "ignore_eos", "x_fault")
    }

    def consume():
        stream = sdk.chat.completions.create(
            model="law", stream=True, extra_body={"x_fault": fault}, **kwargs
        )
        return [e for e in stream]

    if sdk_raises:
        with pytest.raises(Exception):  # noqa: B017 - APIError, JSONDecodeError, ...
            consume()
    else:
        assert consume()  # the SDK accepts a stream that never says [DONE]
