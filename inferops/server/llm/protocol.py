"""OpenAI request checking and response shapes for ``/v1/completions`` and ``/v1/chat/completions``.

Every untrusted field is checked here, and every problem becomes :class:`BadRequest`
(HTTP 400 in OpenAI's error shape, naming the parameter). Fields this server does
not know are ignored, as OpenAI-compatible servers do; fields it knows but cannot
honour (``n`` > 1, ``logprobs``, ``echo``, ``best_of`` > 1) are refused rather than
silently dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import orjson

MAX_STOP_SEQUENCES = 4
MAX_SEED = 2**63 - 1
CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")


class BadRequest(Exception):
    """A request the client must fix: HTTP 400 naming ``param``."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.param = param
        self.code = code


@dataclass
class SamplingParams:
    max_tokens: int | None  # None: up to the context length
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False


@dataclass
class GenerationRequest:
    """A checked request: what to feed the model and how to sample and answer."""

    kind: str  # "completion" or "chat"
    model: str | None
    prompt: list[int]
    params: SamplingParams
    stream: bool = False
    include_usage: bool = False
    extra: dict = field(default_factory=dict)


def error_body(message: str, kind: str, param: str | None = None, code=None) -> dict:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _load(body: bytes) -> dict:
    if not body:
        raise BadRequest("request body is empty; send a JSON object")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadRequest("request body must be a JSON object")
    return doc


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(doc: dict, name: str, default: float, lo: float, hi: float, lo_open=False) -> float:
    value = doc.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{name} must be a number, got {_show(value)}", name)
    if value > hi or value < lo or (lo_open and value == lo):
        bound = f"({lo}" if lo_open else f"[{lo}"
        raise BadRequest(f"{name} must be in {bound}, {hi}], got {value}", name)
    return float(value)


def _bool(doc: dict, name: str, default: bool = False) -> bool:
    value = doc.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false, got {_show(value)}", name)
    return value


def _show(value) -> str:
    text = orjson.dumps(value).decode() if value is not None else "null"
    return text if len(text) <= 60 else text[:57] + "..."


def _sampling(doc: dict, max_tokens_names: tuple[str, ...], default_max: int | None):
    max_tokens = default_max
    for name in max_tokens_names:
        value = doc.get(name)
        if value is None:
            continue
        if not _is_int(value) or value < 1:
            raise BadRequest(f"{name} must be an integer >= 1, got {_show(value)}", name)
        max_tokens = value
        break
    seed = doc.get("seed")
    if seed is not None and (not _is_int(seed) or not -MAX_SEED - 1 <= seed <= MAX_SEED):
        raise BadRequest(f"seed must be a 64-bit integer, got {_show(seed)}", "seed")
    stop = doc.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,) if stop else ()
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if len(stop) > MAX_STOP_SEQUENCES:
            raise BadRequest(f"stop takes at most {MAX_STOP_SEQUENCES} sequences", "stop")
        stops = tuple(s for s in stop if s)
    else:
        raise BadRequest("stop must be a string or a list of strings", "stop")
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=_number(doc, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(doc, "top_p", 1.0, 0.0, 1.0, lo_open=True),
        seed=seed,
        stop=stops,
        ignore_eos=_bool(doc, "ignore_eos"),
    )


def _common(doc: dict) -> tuple[str | None, bool, bool]:
    model = doc.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("model must be a string", "model")
    n = doc.get("n")
    if n is not None and (not _is_int(n) or n != 1):
        raise BadRequest(f"n must be 1 on this server, got {_show(n)}", "n")
    best_of = doc.get("best_of")
    if best_of is not None and (not _is_int(best_of) or best_of != 1):
        raise BadRequest(f"best_of must be 1 on this server, got {_show(best_of)}", "best_of")
    for name in ("logprobs", "top_logprobs", "echo"):
        value = doc.get(name)
        if value not in (None, False, 0):
            raise BadRequest(f"{name} is not supported by this server", name)
    stream = _bool(doc, "stream")
    options = doc.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise BadRequest("stream_options is only allowed with stream=true", "stream_options")
        if not isinstance(options, dict):
            raise BadRequest("stream_options must be an object", "stream_options")
        include_usage = _bool(options, "include_usage")
    return model, stream, include_usage


def parse_completion(body: bytes, bos_id: int | None) -> GenerationRequest:
    """``POST /v1/completions``: ``prompt`` is a string or a list of token ids."""
    doc = _load(body)
    model, stream, include_usage = _common(doc)
    prompt = doc.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, str):
        tokens = list(prompt.encode())
        if bos_id is not None and tokens:
            tokens.insert(0, bos_id)
    elif isinstance(prompt, list) and prompt and all(_is_int(t) for t in prompt):
        tokens = list(prompt)
    elif prompt is None:
        raise BadRequest("prompt is required", "prompt")
    elif isinstance(prompt, list) and len(prompt) > 1 and all(isinstance(p, str) for p in prompt):
        raise BadRequest("one prompt per request on this server; send one request each", "prompt")
    else:
        raise BadRequest("prompt must be a string or a non-empty list of token ids", "prompt")
    if not tokens:
        raise BadRequest("prompt is empty", "prompt")
    # OpenAI's documented default for the legacy completions API is 16 tokens.
    params = _sampling(doc, ("max_tokens",), default_max=16)
    return GenerationRequest("completion", model, tokens, params, stream, include_usage)


def render_chat(messages: list[dict]) -> str:
    """The chat template: one ``<|role|>`` header per message, then the assistant's header."""
    parts = [f"<|{m['role']}|>\n{m['content']}\n" for m in messages]
    return "".join(parts) + "<|assistant|>\n"


def parse_chat(body: bytes, bos_id: int | None) -> GenerationRequest:
    """``POST /v1/chat/completions``: ``messages`` rendered with :func:`render_chat`."""
    doc = _load(body)
    model, stream, include_usage = _common(doc)
    messages = doc.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", "messages")
    flat = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{i}] must be an object", "messages")
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise BadRequest(
                f"messages[{i}].role must be one of {', '.join(CHAT_ROLES)}, got {_show(role)}",
                "messages",
            )
        content = message.get("content")
        if isinstance(content, list):  # content parts: only text ones make sense here
            texts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text":
                    raise BadRequest(
                        f"messages[{i}].content: only text parts are supported", "messages"
                    )
                if not isinstance(part.get("text"), str):
                    raise BadRequest(f"messages[{i}].content: text must be a string", "messages")
                texts.append(part["text"])
            content = "".join(texts)
        elif content is None and role == "assistant":
            content = ""
        elif not isinstance(content, str):
            raise BadRequest(f"messages[{i}].content must be a string", "messages")
        flat.append({"role": role, "content": content})
    tokens: list[int] = list(render_chat(flat).encode())
    if bos_id is not None:
        tokens.insert(0, bos_id)
    params = _sampling(doc, ("max_completion_tokens", "max_tokens"), default_max=None)
    return GenerationRequest("chat", model, tokens, params, stream, include_usage)
