"""``openai``: OpenAI-compatible LLM servers, streamed (vLLM, TGI, SGLang, llama.cpp, Ollama).

``POST /v1/chat/completions`` (or ``/v1/completions`` with
``--openai-endpoint completions``) with ``"stream": true``; the reply is read
as Server-Sent Events while it arrives, and every content chunk is
timestamped on arrival.

Prompts come from ``--input-file`` (``{"messages": [...]}`` or
``{"prompt": "..."}`` lines; every other field of a line is sent as it is) or
are synthetic: ``--prompt-tokens N`` random common English words (one token
each in the usual BPE vocabularies), a fresh prompt per request so prefix
caches do not flatter the server, asking for ``--max-tokens`` tokens with
``ignore_eos`` (vLLM, SGLang; ``--no-ignore-eos`` for servers that reject
it) and ``seed`` when ``--seed`` is given. Every request asks for
``stream_options.include_usage``; the server's ``usage`` counts are used when
it sends them, else content chunks are counted (``token_count_source``).

Success: HTTP 2xx, an event stream whose every ``data`` is JSON, no
``error`` object inside, at least one content chunk, and ``data: [DONE]`` at
the end. Anything else fails with the reason: ``HTTP 503``, ``malformed SSE:
...``, ``error in stream: ...``, ``stream ended without [DONE]``,
``no content in stream``, or the transport's timeout/connection error.

Per request (in the ``llm`` dict of the outcome; the recorder turns it into
TTFT/ITL/TPOT against the *intended* send time): the arrival time of the first
content chunk, every gap between consecutive content chunks, the output and
input token counts and where they came from.
"""

from __future__ import annotations

import json
import random
import time

import orjson

from inferops.exitcodes import UsageError
from inferops.load.protocols import sse
from inferops.load.protocols.base import Outcome, Protocol, ReplyError, read_jsonl
from inferops.redact import redact_url

ENDPOINTS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
#: distinct synthetic prompts per run (each request takes the next, cyclically)
PROMPT_POOL = 256
#: common English words; nearly all are one token in GPT/Llama/Qwen vocabularies
WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have "
    "from or one had by word but not what all were we when your can said there use an each "
    "which she do how their if will up other about out many then them these so some her "
    "would make like him into time has look two more write go see number no way could people "
    "my than first water been call who oil its now find long down day did get come made may "
    "part over new sound take only little work know place year live me back give most very "
    "after thing our just name good sentence man think say great where help through much "
    "before line right too mean old any same tell boy follow came want show also around form "
    "three small set put end does another well large must big even such because turn here "
    "why ask went men read need land different home us move try kind hand picture again "
    "change off play spell air away animal house point page letter mother answer found study"
).split()


class OpenAI(Protocol):
    name = "openai"
    help = "OpenAI-compatible streaming: POST /v1/chat/completions (TTFT, ITL, TPOT, tokens/s)"
    streaming = True

    def default_path(self) -> str:
        endpoint = self.opts.openai_endpoint
        if endpoint not in ENDPOINTS:
            raise UsageError(f"--openai-endpoint: expected chat or completions, got {endpoint!r}")
        return ENDPOINTS[endpoint]

    @property
    def chat(self) -> bool:
        return self.opts.openai_endpoint == "chat"

    # -- bodies --------------------------------------------------------------
    def _common(self, body: dict, model: str) -> dict:
        body.setdefault("model", model)
        body["stream"] = True
        options = body.get("stream_options")
        body["stream_options"] = {
            **(options if isinstance(options, dict) else {}),
            "include_usage": True,
        }
        if "max_tokens" not in body and "max_completion_tokens" not in body:
            body["max_tokens"] = self.opts.max_tokens
        if self.opts.seed is not None:
            body.setdefault("seed", self.opts.seed)
        return body

    def default_bodies(self, target: str) -> list[bytes]:
        o = self.opts
        if o.prompt_tokens < 1 or o.max_tokens < 1:
            raise UsageError("--prompt-tokens and --max-tokens must be >= 1")
        model = o.model or self.served_model(target)
        rng = random.Random(o.seed if o.seed is not None else 0)
        bodies = []
        for _ in range(PROMPT_POOL):
            prompt = " ".join(rng.choice(WORDS) for _ in range(o.prompt_tokens))
            body: dict = (
                {"messages": [{"role": "user", "content": prompt}]}
                if self.chat
                else {"prompt": prompt}
            )
            body["max_tokens"] = o.max_tokens
            if o.ignore_eos:
                body["ignore_eos"] = True
            bodies.append(orjson.dumps(self._common(body, model)))
        return bodies

    def bodies_from_file(self, path: str, target: str) -> list[bytes]:
        model = self.opts.model or self.served_model(target)
        bodies = []
        for lineno, obj in read_jsonl(path, numbered=True):
            where = f"--input-file: {path}:{lineno}"
            if self.chat:
                if "messages" not in obj and isinstance(obj.get("prompt"), str):
                    obj = {**obj, "messages": [{"role": "user", "content": obj["prompt"]}]}
                    del obj["prompt"]
                if not isinstance(obj.get("messages"), list):
                    raise UsageError(
                        f'{where}: expected {{"messages": [...]}} or {{"prompt": "..."}}'
                    )
            elif not isinstance(obj.get("prompt"), (str, list)):
                raise UsageError(
                    f'{where}: --openai-endpoint completions needs {{"prompt": "..."}}'
                )
            if self.opts.ignore_eos:
                obj.setdefault("ignore_eos", True)
            bodies.append(orjson.dumps(self._common(obj, model)))
        return bodies

    def served_model(self, target: str) -> str:
        """The first model of ``GET /v1/models`` (what vLLM's benchmark does without --model)."""
        import urllib.error
        import urllib.request

        from inferops.load.protocols.tensors import TargetUnreachable

        url = target.rstrip("/") + "/v1/models"
        headers = {k: v for k, v in self.headers().items() if k.lower() != "content-type"}
        req = urllib.request.Request(url, headers=headers)
        url = redact_url(url)  # what messages show: never a password
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                data = json.loads(r.read())
            return str(data["data"][0]["id"])
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise UsageError(
                    f"{url}: HTTP {exc.code}: the server wants a valid --token"
                ) from None
            raise UsageError(f"{url}: HTTP {exc.code}; pass --model") from None
        except (urllib.error.URLError, OSError) as exc:
            raise TargetUnreachable(f"{url}: {getattr(exc, 'reason', exc)}") from None
        except (ValueError, KeyError, IndexError, TypeError):
            raise UsageError(f"{url}: no model listed; pass --model") from None

    # -- one request -----------------------------------------------------------
    def _content(self, obj: dict) -> bool:
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            if self.chat:
                delta = choice.get("delta") or {}
                if delta.get("content") or delta.get("reasoning_content"):
                    return True
            elif choice.get("text"):
                return True
        return False

    def call(self, client, body: bytes) -> Outcome:
        resp = client.request("POST", self.path, body=body)
        if not 200 <= resp.status_code < 300:
            data = resp.read()
            return Outcome(ReplyError(f"HTTP {resp.status_code}{_error_message(data)}"), len(data))
        now = time.time
        first = last = None
        gaps: list[float] = []
        chunks, usage, done, length, end = 0, None, False, 0, 0.0
        try:
            for kind, data in sse.events(resp.readline):
                length += len(data)
                if data == b"[DONE]":
                    done, end = True, now()
                    break
                try:
                    obj = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise ReplyError(f"malformed SSE: data is not JSON: {data[:60]!r}") from None
                if not isinstance(obj, dict):
                    raise ReplyError("malformed SSE: data is not a JSON object")
                if "error" in obj or kind == b"error":
                    raise ReplyError(f"error in stream{_error_message(data)}")
                if obj.get("usage"):
                    usage = obj["usage"]
                if self._content(obj):
                    t = now()
                    if first is None:
                        first = t
                    else:
                        gaps.append(t - last)
                    last = t
                    chunks += 1
            if done:
                resp.read()  # the end of the chunked body: the connection goes back clean
        except (ReplyError, sse.MalformedStream) as exc:
            resp.release()  # mid-message: release() closes the socket, never reuses it
            error = exc if isinstance(exc, ReplyError) else ReplyError(f"malformed SSE: {exc}")
            return Outcome(error, length)
        if not done:
            return Outcome(ReplyError("stream ended without [DONE]"), length)
        if first is None:
            return Outcome(ReplyError("no content in stream"), length)
        out = _count(usage, "completion_tokens")
        llm = {
            "first": first,
            "end": end,  # [DONE] arrived (TPOT's end; the drain after it is not generation)
            "gaps": gaps,
            "chunks": chunks,
            "output_tokens": out if out is not None else chunks,
            "input_tokens": _count(usage, "prompt_tokens"),
            "source": "usage" if out is not None else "chunks",
        }
        return Outcome(None, length, llm)


def _count(usage, key: str) -> int | None:
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _error_message(data: bytes) -> str:
    """``": <message>"`` from an OpenAI error body, or nothing."""
    try:
        err = orjson.loads(data).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    msg = err.get("message") if isinstance(err, dict) else err
    return f": {str(msg)[:120]}" if msg else ""


PROTOCOL = OpenAI
