"""OpenAI-compatible routes of `inferops serve --model tinylm`, over httpx and the openai SDK."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.llm.conftest import metric, sse_events

PROMPT = {"model": "tinylm", "prompt": "The quick brown fox", "ignore_eos": True}


def test_models_and_health_routes(client):
    models = client.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["tinylm"] and models["object"] == "list"
    assert models["data"][0]["max_model_len"] == 1024
    for path in ("/health", "/live", "/ready", "/v2/health/live", "/v2/health/ready"):
        assert client.get(path).status_code == 200, path


def test_completion_non_streaming(client):
    resp = client.post("/v1/completions", json={**PROMPT, "max_tokens": 12, "temperature": 0})
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["object"] == "text_completion" and doc["model"] == "tinylm"
    assert doc["choices"][0]["finish_reason"] == "length"
    # BOS + 19 prompt bytes; exactly max_tokens generated
    assert doc["usage"] == {"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32}


def test_completion_streaming_one_chunk_per_token_then_usage_and_done(client):
    body = {**PROMPT, "max_tokens": 9, "temperature": 0, "stream": True}
    body["stream_options"] = {"include_usage": True}
    with client.stream("POST", "/v1/completions", json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(resp.iter_lines())
    assert events[-1] == "[DONE]"
    usage = events[-2]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 9
    tokens = events[:-2]
    assert len(tokens) == 9
    assert [e["choices"][0]["finish_reason"] for e in tokens] == [None] * 8 + ["length"]
    # the streamed text is the non-streamed text of the same greedy request
    streamed = "".join(e["choices"][0]["text"] for e in tokens)
    whole = client.post("/v1/completions", json={**PROMPT, "max_tokens": 9, "temperature": 0})
    assert whole.json()["choices"][0]["text"] == streamed


def test_chat_streaming_starts_with_the_role_and_ends_with_finish_reason(client):
    body = {
        "model": "tinylm",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "max_tokens": 6,
        "stream": True,
        "ignore_eos": True,
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        events = sse_events(resp.iter_lines())
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert "usage" not in chunks[-1]  # not asked for


def test_same_seed_same_text_other_seed_other_text(client):
    body = {**PROMPT, "max_tokens": 40, "temperature": 1.0, "top_p": 0.95}

    def text(seed):
        return client.post("/v1/completions", json={**body, "seed": seed}).json()["choices"][0][
            "text"
        ]

    assert text(1234) == text(1234)
    assert text(1234) != text(4321)


def test_stop_sequence_cuts_the_text(client):
    body = {**PROMPT, "max_tokens": 30, "temperature": 0}
    text = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    stop = text[5:7]
    cut = client.post("/v1/completions", json={**body, "stop": [stop]}).json()["choices"][0]
    assert cut["finish_reason"] == "stop"
    assert cut["text"] == text[: text.index(stop)]


def test_unknown_fields_are_ignored(client):
    body = {**PROMPT, "max_tokens": 2, "frequency_penalty": 0, "user": "x", "whatever": [1, {}]}
    assert client.post("/v1/completions", json=body).status_code == 200


@pytest.mark.parametrize(
    ("route", "body", "param"),
    [
        ("/v1/completions", {"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ("/v1/completions", {"prompt": "x", "max_tokens": "5"}, "max_tokens"),
        ("/v1/completions", {"prompt": "x", "max_tokens": True}, "max_tokens"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 5000}, "max_tokens"),
        ("/v1/completions", {"prompt": "x", "temperature": -1}, "temperature"),
        ("/v1/completions", {"prompt": "x", "temperature": "hot"}, "temperature"),
        ("/v1/completions", {"prompt": "x", "top_p": 0}, "top_p"),
        ("/v1/completions", {"prompt": "x", "top_p": 1.5}, "top_p"),
        ("/v1/completions", {"prompt": "x", "seed": 1.5}, "seed"),
        ("/v1/completions", {"prompt": "x", "seed": 2**70}, "seed"),
        ("/v1/completions", {"prompt": "x", "stop": 3}, "stop"),
        ("/v1/completions", {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ("/v1/completions", {"prompt": "x", "ignore_eos": "yes"}, "ignore_eos"),
        ("/v1/completions", {"prompt": "x", "stream": 1}, "stream"),
        (
            "/v1/completions",
            {"prompt": "x", "stream_options": {"include_usage": True}},
            "stream_options",
        ),
        (
            "/v1/completions",
            {"prompt": "x", "stream": True, "stream_options": []},
            "stream_options",
        ),
        ("/v1/completions", {"prompt": "x", "n": 2}, "n"),
        ("/v1/completions", {"prompt": "x", "logprobs": 3}, "logprobs"),
        ("/v1/completions", {"prompt": ""}, "prompt"),
        ("/v1/completions", {"prompt": [1, 99999]}, "prompt"),
        ("/v1/completions", {"prompt": "x" * 1100}, "prompt"),
        ("/v1/completions", {"prompt": ["a", "b"]}, "prompt"),
        ("/v1/completions", {}, "prompt"),
        ("/v1/completions", {"prompt": "x", "model": 5}, "model"),
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": 5}]}, "messages"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages",
        ),
        ("/v1/chat/completions", {"messages": ["hi"]}, "messages"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": -1},
            "max_completion_tokens",
        ),
    ],
)
def test_bad_values_get_400_in_openai_error_shape(client, route, body, param):
    resp = client.post(route, json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


@pytest.mark.parametrize("body", [b"", b"{", b"[1]", b"null", b'"text"', b"\xff\xfe"])
def test_malformed_bodies_get_400(client, body):
    resp = client.post(
        "/v1/completions", content=body, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400 and "error" in resp.json()


def test_unknown_model_404_big_body_413_unknown_route_404(client):
    resp = client.post("/v1/completions", json={"model": "gpt-4", "prompt": "x"})
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "model_not_found"
    resp = client.post("/v1/completions", json={"prompt": "x" * 70_000})
    assert resp.status_code == 413 and resp.json()["error"]["message"]
    assert client.get("/v1/nothing").status_code == 404
    assert client.get("/v1/completions").status_code == 405


def test_metrics_count_tokens_and_time_to_first_token(client):
    before = client.get("/metrics").text
    client.post("/v1/completions", json={**PROMPT, "max_tokens": 7})
    after = client.get("/metrics").text
    gen = "inferops_generation_tokens_total"
    assert metric(after, gen) - metric(before, gen) == 7
    assert (
        metric(after, "inferops_prompt_tokens_total")
        - metric(before, "inferops_prompt_tokens_total")
        == 20
    )
    for name in (
        "inferops_time_to_first_token_seconds_count",
        "inferops_e2e_request_latency_seconds_count",
    ):
        assert metric(after, name) - metric(before, name) == 1
    tpot = "inferops_time_per_output_token_seconds_count"
    assert metric(after, tpot) - metric(before, tpot) == 6
    for gauge in (
        "inferops_num_requests_running",
        "inferops_num_requests_waiting",
        "inferops_kv_cache_usage_perc",
    ):
        assert metric(after, gauge) == 0


def test_the_openai_sdk_completions_chat_and_streaming(tinylm_server):
    sdk = openai.OpenAI(base_url=tinylm_server.url + "/v1", api_key="unused", max_retries=0)
    done = sdk.completions.create(
        model="tinylm", prompt="hello", max_tokens=5, temperature=0, extra_body={"ignore_eos": True}
    )
    assert done.usage.completion_tokens == 5 and done.choices[0].finish_reason == "length"
    chat = sdk.chat.completions.create(
        model="tinylm",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=4,
        seed=7,
        extra_body={"ignore_eos": True},
    )
    assert chat.choices[0].message.role == "assistant" and chat.usage.completion_tokens == 4
    stream = sdk.chat.completions.create(
        model="tinylm",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=4,
        seed=7,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == chat.choices[0].message.content  # same seed, same text
    assert chunks[-1].usage.completion_tokens == 4
    with pytest.raises(openai.BadRequestError) as err:
        sdk.completions.create(model="tinylm", prompt="x", temperature=5)
    assert err.value.body["param"] == "temperature"
    with pytest.raises(openai.NotFoundError):
        sdk.completions.create(model="nope", prompt="x")


def test_bearer_token_protects_the_v1_routes(llm_dir, llm_env):
    from inferops.server.process import ServerProcess

    with ServerProcess(llm_dir / "small.onnx", token="s3cret", env=llm_env) as server:
        assert httpx.get(server.url + "/v1/models").status_code == 401
        sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="s3cret", max_retries=0)
        assert [m.id for m in sdk.models.list()] == ["small"]
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0).models.list()
