"""What every wire protocol provides, and the pieces they share.

A protocol module (one file in this package) defines one subclass of
:class:`Protocol` and names it ``PROTOCOL``. The engine only ever calls:

* :meth:`Protocol.prepare` once per run (fetch metadata, read the input file,
  build the request bodies; every problem is a :class:`UsageError`, exit 2);
* :meth:`Protocol.call` once per request, inside a greenlet: send one body and
  judge the reply, returning an :class:`Outcome`.

Plain request/response protocols only override :attr:`default_path`,
:meth:`default_bodies` and :meth:`check`; streaming ones (``openai``)
override :meth:`call` and :meth:`prepare`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import orjson

from inferops.exitcodes import UsageError


class ReplyError(Exception):
    """The reply failed the protocol's success check (the message says why)."""


@dataclass
class Outcome:
    """One request's result: ``error`` is None on success."""

    error: Exception | None = None
    length: int = 0
    #: streaming protocols: per-request measurements (see protocols/openai.py)
    llm: dict | None = None


@dataclass
class ProtocolOptions:
    """The protocol-related load options (declared in load/options.py)."""

    model: str | None = None
    input_file: str | None = None
    token: str | None = None
    method: str | None = None
    path: str | None = None
    headers: list[str] = field(default_factory=list)  # "Name: value", as given
    expect_json_key: str | None = None
    seed: int | None = None
    # openai
    openai_endpoint: str = "chat"
    prompt_tokens: int = 128
    max_tokens: int = 128
    ignore_eos: bool = True


def parse_headers(items: list[str]) -> dict[str, str]:
    """``["K: V", "K2:V2"]`` -> dict; a malformed item is a usage error."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition(":")
        name = name.strip()
        if not sep or not name or any(c in name for c in " \t\r\n") or "\n" in value:
            raise UsageError(f"--header: expected 'Name: value', got {redact_header(item)!r}")
        out[name] = value.strip()
    return out


def redact_header(item: str) -> str:
    """``"Authorization: Bearer x"`` -> ``"Authorization: ***"`` (names are kept)."""
    from inferops.redact import MASK

    name, sep, _ = item.partition(":")
    return f"{name.strip()}: {MASK}" if sep else MASK


def read_jsonl(path: str | Path, *, numbered: bool = False) -> list:
    """Every non-blank line of a ``.jsonl`` file as a JSON object (``numbered``:
    ``(line number, object)`` pairs).

    A line that is not UTF-8, not JSON, or JSON that is not an object is a
    usage error naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--input-file: no such file: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"--input-file: {path}: cannot read: {exc.strerror or exc}") from None
    objs = []
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"--input-file: {path}:{lineno}: not UTF-8 text") from None
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--input-file: {path}:{lineno}: not JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise UsageError(
                f"--input-file: {path}:{lineno}: expected a JSON object, got {type(obj).__name__}"
            )
        objs.append((lineno, obj) if numbered else obj)
    if not objs:
        raise UsageError(f"--input-file: {path}: no request bodies")
    return objs


def model_segment(model: str | None, protocol: str) -> str:
    if not model:
        raise UsageError(f"--model is required with --protocol {protocol}")
    return quote(model, safe="")


def json_reply(data: bytes):
    """The reply parsed as JSON, or ReplyError."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ReplyError("reply is not JSON") from None


class Protocol:
    """A request/response protocol over HTTP/1.1 with JSON bodies."""

    name: ClassVar[str]
    help: ClassVar[str]  # one line for --help
    default_method: ClassVar[str] = "POST"
    #: True when replies are LLM token streams (TTFT, ITL, TPOT, tokens are recorded)
    streaming: ClassVar[bool] = False

    def __init__(self, opts: ProtocolOptions):
        self.opts = opts
        self.bodies: list[bytes] | None = None
        self.method = (opts.method or self.default_method).upper()
        self.path = opts.path or self.default_path()
        if not self.path.startswith("/"):
            raise UsageError(f"--path must start with '/', got {self.path!r}")
        self.extra_headers = parse_headers(opts.headers)

    # -- what a protocol defines ------------------------------------------
    def default_path(self) -> str:
        raise NotImplementedError

    def default_bodies(self, target: str) -> list[bytes]:
        """Bodies when no --input-file is given."""
        raise UsageError(f"--protocol {self.name} needs --input-file (one request body a line)")

    def bodies_from_file(self, path: str, target: str) -> list[bytes]:
        """Each .jsonl line is a complete request body, sent as it is."""
        return [orjson.dumps(obj) for obj in read_jsonl(path)]

    def check(self, status: int, data: bytes) -> None:
        """Raise ReplyError when a 2xx reply is not a success (default: any 2xx is)."""

    # -- used by the engine ------------------------------------------------
    def prepare(self, target: str) -> list[bytes]:
        """The request bodies for the run (cached)."""
        if self.bodies is None:
            if self.opts.input_file:
                self.bodies = self.bodies_from_file(self.opts.input_file, target)
            else:
                self.bodies = self.default_bodies(target)
        return self.bodies

    def headers(self) -> dict:
        h = {"Content-Type": "application/json"} if self.method not in ("GET", "HEAD") else {}
        if self.opts.token:
            h["Authorization"] = f"Bearer {self.opts.token}"
        h.update(self.extra_headers)  # an explicit --header wins
        return h

    def _check(self, status: int, data: bytes) -> None:
        if status >= 400 or status < 200:
            raise ReplyError(f"HTTP {status}")
        self.check(status, data)
        key = self.opts.expect_json_key
        if key is not None:
            obj = json_reply(data)
            if not isinstance(obj, dict) or key not in obj:
                raise ReplyError(f"reply has no {key!r} key")

    def call(self, client, body: bytes) -> Outcome:
        """Send ``body``, read the whole reply and judge it."""
        resp = client.request(
            self.method, self.path, body=body if self.method not in ("GET", "HEAD") else None
        )
        data = resp.read()
        try:
            self._check(resp.status_code, data)
        except ReplyError as exc:
            return Outcome(exc, len(data))
        return Outcome(None, len(data))
