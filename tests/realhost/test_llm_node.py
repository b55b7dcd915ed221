"""``deploys/cpu_node.py`` with ``server_model = "tinylm"``: the deployed unit serves the
embedded decoder's OpenAI routes, and a streaming chat request through it, with the
node's bearer token, receives tokens one SSE chunk at a time and then ``[DONE]``."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.realhost.deploying import CPU_NODE, SERVER_PORT, assert_no_changes

pytestmark = pytest.mark.realhost


def test_tinylm_node_streams_openai_chat(fleet, deployer):
    host = fleet.hosts[0]
    fleet_file = deployer.write_fleet("tinylm.toml", data={"server_model": "tinylm"})
    result = deployer.run(CPU_NODE, host, fleet_file=fleet_file)
    assert result.returncode == 0, result.tail()
    assert result.total.errors == 0 and result.total.changed > 0
    token = deployer.token(host)
    assert token not in result.output

    base = f"http://{host.ip}:{SERVER_PORT}"
    models = httpx.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {token}"})
    assert models.status_code == 200, models.text
    assert [m["id"] for m in models.json()["data"]] == ["tinylm"]
    body = {
        "model": "tinylm",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 8,
        "ignore_eos": True,
        "temperature": 0,
        "stream": True,
    }
    refused = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=30)
    assert refused.status_code == 401  # no token, no tokens

    events = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream(
        "POST", f"{base}/v1/chat/completions", json=body, headers=headers, timeout=60
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line[len("data: ") :])
    assert events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(e) for e in events[:-1]]
    content = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    # a role chunk, then one chunk per generated token (8, EOS ignored)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len(content) - 1 == 8, chunks
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"

    assert_no_changes(deployer.run(CPU_NODE, host, fleet_file=fleet_file))
