"""The protocol adapters without servers: registry, bodies, checks, SSE, LLM metrics."""

from __future__ import annotations

import json

import pytest

from inferops.exitcodes import UsageError
from inferops.load import protocols
from inferops.load.protocols import sse
from inferops.load.protocols.base import ProtocolOptions, ReplyError, parse_headers
from inferops.measure.llm import LLMRecorder

SIX = ("v2", "predict", "tfserving", "torchserve", "http", "openai")


def make(name: str, **kw):
    return protocols.create(name, ProtocolOptions(**kw))


def test_every_protocol_is_one_module_found_by_the_registry():
    assert protocols.names() == SIX
    for name in SIX:
        cls = protocols.registry()[name]
        assert cls.__module__ == f"inferops.load.protocols.{name}"


def test_paths_follow_each_servers_api():
    assert make("v2", model="m/1").path == "/v2/models/m%2F1/infer"
    assert make("predict").path == "/predict"
    assert make("tfserving", model="half").path == "/v1/models/half:predict"
    assert make("torchserve", model="echo").path == "/predictions/echo"
    assert make("http", path="/score", method="put").method == "PUT"
    assert make("openai").path == "/v1/chat/completions"
    assert make("openai", openai_endpoint="completions").path == "/v1/completions"
    assert make("predict", path="/v1/classify").path == "/v1/classify"


@pytest.mark.parametrize(
    "name, kw, message",
    [
        ("v2", {}, "--model is required"),
        ("tfserving", {}, "--model is required"),
        ("torchserve", {}, "--model is required"),
        ("http", {}, "--path"),
        ("http", {"path": "/x", "method": "BREW"}, "--method"),
        ("openai", {"openai_endpoint": "embeddings"}, "--openai-endpoint"),
        ("predict", {"path": "nope"}, "--path must start"),
    ],
)
def test_missing_or_bad_protocol_options_are_usage_errors(name, kw, message):
    with pytest.raises(UsageError, match=message):
        make(name, **kw)


def test_headers_parse_and_a_bad_one_never_echoes_its_value():
    assert parse_headers(["X-Api-Key: abc:def", "Accept:text/plain"]) == {
        "X-Api-Key": "abc:def",
        "Accept": "text/plain",
    }
    with pytest.raises(UsageError) as err:
        parse_headers(["Authorization Bearer s3cret-value"])
    assert "s3cret-value" not in str(err.value)


def test_explicit_header_wins_over_the_token():
    p = make("predict", token="t0k", headers=["Authorization: Basic xyz"])
    assert p.headers()["Authorization"] == "Basic xyz"
    assert make("predict", token="t0k").headers()["Authorization"] == "Bearer t0k"


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('"x"', "expected a JSON object, got str"),
    ],
)
def test_input_file_line_that_is_not_an_object_names_the_line(tmp_path, line, message):
    f = tmp_path / "in.jsonl"
    f.write_text('{"texts": ["ok"]}\n\n' + line + "\n")
    for name, kw in (("predict", {}), ("tfserving", {"model": "m"}), ("openai", {"model": "m"})):
        p = make(name, input_file=str(f), **kw)
        with pytest.raises(UsageError, match=rf"in\.jsonl:3: {message}"):
            p.prepare("http://127.0.0.1:9")


def test_input_file_lines_are_sent_as_they_are(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text('{"texts": ["a", "b"], "extra": {"k": 1}}\n{"instances": [[1, 2]]}\n')
    bodies = make("predict", input_file=str(f)).prepare("http://127.0.0.1:9")
    assert [json.loads(b) for b in bodies] == [
        {"texts": ["a", "b"], "extra": {"k": 1}},
        {"instances": [[1, 2]]},
    ]


def test_protocols_without_a_body_source_say_what_they_need():
    for name, kw in (("tfserving", {"model": "m"}), ("torchserve", {"model": "m"})):
        with pytest.raises(UsageError, match="needs --input-file"):
            make(name, **kw).prepare("http://127.0.0.1:9")
    assert make("http", path="/ready", method="GET").prepare("http://127.0.0.1:9") == [b""]


@pytest.mark.parametrize(
    "name, kw, status, reply, reason",
    [
        ("v2", {"model": "m"}, 200, b'{"outputs": []}', None),
        ("v2", {"model": "m"}, 200, b'{"results": []}', "reply has no outputs"),
        ("predict", {}, 200, b'{"results": [], "latency_ms": 1}', None),
        ("predict", {}, 200, b"<html>", "reply is not JSON"),
        ("predict", {}, 503, b"{}", "HTTP 503"),
        ("tfserving", {"model": "m"}, 200, b'{"predictions": [1]}', None),
        ("tfserving", {"model": "m"}, 200, b'{"outputs": [1]}', None),
        ("tfserving", {"model": "m"}, 200, b'{"error": "x"}', "reply has no predictions"),
        ("torchserve", {"model": "m"}, 200, b"not json at all", None),
        ("torchserve", {"model": "m"}, 404, b"", "HTTP 404"),
        ("http", {"path": "/x"}, 204, b"", None),
        ("http", {"path": "/x", "expect_json_key": "score"}, 200, b'{"score": 1}', None),
        ("http", {"path": "/x", "expect_json_key": "score"}, 200, b'{"s": 1}', "no 'score' key"),
        ("predict", {"expect_json_key": "results"}, 200, b"[1]", "no 'results' key"),
    ],
)
def test_default_success_checks(name, kw, status, reply, reason):
    p = make(name, **kw)
    if reason is None:
        p._check(status, reply)
    else:
        with pytest.raises(ReplyError, match=reason):
            p._check(status, reply)


# -- openai bodies -----------------------------------------------------------------------


def test_synthetic_prompts_have_the_asked_length_and_options():
    p = make("openai", model="m", prompt_tokens=37, max_tokens=9, seed=5)
    bodies = [json.loads(b) for b in p.prepare("http://127.0.0.1:9")]
    assert len({b["messages"][0]["content"] for b in bodies}) == len(bodies)  # no shared prefix
    for b in bodies:
        assert len(b["messages"][0]["content"].split()) == 37
        assert b["max_tokens"] == 9 and b["ignore_eos"] is True and b["seed"] == 5
        assert b["stream"] is True and b["stream_options"] == {"include_usage": True}
        assert b["model"] == "m"
    again = make("openai", model="m", prompt_tokens=37, max_tokens=9, seed=5)
    assert again.prepare("http://127.0.0.1:9") == p.prepare("http://127.0.0.1:9")
    plain = make("openai", model="m", ignore_eos=False, openai_endpoint="completions")
    body = json.loads(plain.prepare("http://127.0.0.1:9")[0])
    assert "ignore_eos" not in body and isinstance(body["prompt"], str)


def test_openai_file_prompts_keep_their_fields(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(
        '{"messages": [{"role": "user", "content": "hi"}], "temperature": 0.2}\n'
        '{"prompt": "once upon", "max_tokens": 3, "stream": false}\n'
    )
    bodies = [json.loads(b) for b in make("openai", model="m", input_file=str(f)).prepare("x")]
    assert bodies[0]["temperature"] == 0.2 and bodies[0]["max_tokens"] == 128
    assert bodies[1]["messages"] == [{"role": "user", "content": "once upon"}]
    assert bodies[1]["max_tokens"] == 3 and bodies[1]["stream"] is True
    with pytest.raises(UsageError, match=r"p\.jsonl:1: --openai-endpoint completions"):
        make("openai", model="m", input_file=str(f), openai_endpoint="completions").prepare("x")
    f.write_text('{"input": "no prompt here"}\n')
    with pytest.raises(UsageError, match=r"p\.jsonl:1: expected"):
        make("openai", model="m", input_file=str(f)).prepare("x")


# -- SSE -----------------------------------------------------------------------------------


def _lines(raw: bytes):
    lines = raw.splitlines(keepends=True)

    def readline(_sep=b"\n"):
        return lines.pop(0) if lines else b""

    return readline


def test_sse_events_follow_the_spec():
    raw = (
        b": keep-alive\r\n\r\n"
        b'data: {"a": 1}\n\n'
        b'data:{"b": 2}\n\n'
        b"event: error\ndata: line1\ndata: line2\n\n"
        b"id: 7\nretry: 10\ndata: [DONE]\n\n"
        b"data: unterminated"
    )
    assert list(sse.events(_lines(raw))) == [
        (b"message", b'{"a": 1}'),
        (b"message", b'{"b": 2}'),
        (b"error", b"line1\nline2"),
        (b"message", b"[DONE]"),
        (b"message", b"unterminated"),
    ]


def test_a_json_reply_where_a_stream_was_expected_is_malformed():
    with pytest.raises(sse.MalformedStream, match="not an SSE line"):
        list(sse.events(_lines(b'{"choices": []}\n')))


# -- LLM metrics -------------------------------------------------------------------------


def _llm(first, gaps, out, source="usage", tin=10):
    return {"first": first, "gaps": gaps, "chunks": len(gaps) + 1, "output_tokens": out,
            "input_tokens": tin, "source": source}  # fmt: skip


def test_ttft_counts_from_the_intended_send_and_tpot_per_request():
    rec = LLMRecorder(slo_ttft_ms=150, slo_tpot_ms=20)
    # intended at 100.0, sent late at 100.1, first token at 100.2, 5 tokens, done 100.28
    rec.record(100.0, 100.28, _llm(100.2, [0.02] * 4, 5))
    s = rec.summary(duration_s=2.0)
    assert s["ttft_ms"]["p50"] == pytest.approx(200, rel=1e-3)  # not 100 (from the send)
    assert s["tpot_ms"]["p50"] == pytest.approx(20, rel=1e-3)  # (100.28-100.2)/(5-1)
    assert s["itl_ms"]["p99"] == pytest.approx(20, rel=1e-3)
    assert s["goodput_qps"] == 0.0  # TTFT 200 > 150
    assert s["output_tokens_total"] == 5 and s["input_tokens_total"] == 10
    assert s["output_tokens_per_s"] == 2.5 and s["token_count_source"] == "usage"


def test_goodput_needs_every_slo_and_none_without_slos():
    rec = LLMRecorder(slo_ttft_ms=100, slo_tpot_ms=10, slo_e2e_ms=500)
    rec.record(0.0, 0.19, _llm(0.05, [0.01] * 15, 16))  # ttft 50, tpot 9.3, e2e 190: good
    rec.record(1.0, 1.6, _llm(1.05, [0.01] * 15, 16))  # e2e 600 > 500
    rec.record(2.0, 2.5, _llm(2.05, [0.03] * 15, 16))  # tpot 30 > 10
    rec.record(3.0, 3.1, _llm(3.05, [], 1))  # one token: no TPOT, still good
    assert rec.summary(duration_s=1.0)["goodput_qps"] == 2.0
    assert LLMRecorder().summary(1.0)["goodput_qps"] is None


def test_token_source_and_unknown_input_counts():
    rec = LLMRecorder()
    rec.record(0.0, 1.0, _llm(0.1, [0.1], 2, source="chunks", tin=None))
    s = rec.summary(1.0)
    assert s["token_count_source"] == "chunks" and s["input_tokens_total"] is None
    rec.record(0.0, 1.0, _llm(0.1, [0.1], 2))
    assert rec.summary(1.0)["token_count_source"] == "mixed"


def test_window_excludes_warmup_requests():
    rec = LLMRecorder()
    rec.window_start, rec.window_end = 10.0, 20.0
    rec.record(9.99, 10.5, _llm(10.1, [0.1], 2))
    rec.record(20.0, 20.5, _llm(20.1, [0.1], 2))
    assert rec.summary(10.0)["output_tokens_total"] == 0


def test_worker_reports_merge_losslessly():
    master, a, b = LLMRecorder(), LLMRecorder(), LLMRecorder()
    for i in range(200):
        (a if i % 2 else b).record(i, i + 0.5, _llm(i + 0.001 * (i + 1), [0.002 * (i % 7 + 1)], 2))
    whole = LLMRecorder()
    for i in range(200):
        whole.record(i, i + 0.5, _llm(i + 0.001 * (i + 1), [0.002 * (i % 7 + 1)], 2))
    master.merge(a.take_report())
    master.merge(b.take_report())
    assert master.summary(10.0) == whole.summary(10.0)
    assert a.requests == 0 and a.hists["ttft"].get_total_count() == 0  # emptied


def test_header_values_are_secrets_of_the_run():
    from inferops.load.options import LoadConfig
    from inferops.redact import redact_argv

    argv = ["bench", "--token", "t0ps3cret", "--header", "X-Api-Key: k3y-value",
            "--header=A: bbbb", "--model", "m"]  # fmt: skip
    out = redact_argv(argv)
    assert out == ["bench", "--token", "***", "--header", "X-Api-Key: ***", "--header=A: ***",
                   "--model", "m"]  # fmt: skip
    config = LoadConfig(target="http://h", headers_given=["X-Api-Key: k3y-value"])
    assert "k3y-value" in config.secrets  # scrubbed from every run-folder write


def test_llm_threshold_keys_are_known_and_checked():
    from inferops import thresholds

    limits = thresholds.validate(
        {
            "p99_ttft_ms": 500,
            "p99_tpot_ms": 50,
            "min_output_tokens_per_s": 100,
            "min_goodput_qps": 2,
        }  # fmt: skip
    )
    res = {c["name"]: c["ok"] for c in thresholds.check(limits, {"p99_ttft_ms": 600,
           "p99_tpot_ms": 40, "min_output_tokens_per_s": 90, "min_goodput_qps": None})}  # fmt: skip
    assert res == {"p99_ttft_ms": False, "p99_tpot_ms": True, "min_output_tokens_per_s": False,
                   "min_goodput_qps": None}  # fmt: skip
    with pytest.raises(UsageError, match="p99_ttft_ms = 0 is out of range"):
        thresholds.validate({"p99_ttft_ms": 0})
    with pytest.raises(UsageError, match="unknown key 'p99_ttft'"):
        thresholds.validate({"p99_ttft": 5})
    assert "min_qps" not in thresholds.load(None, llm=True)  # req/s means little for LLMs
