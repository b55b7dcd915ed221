"""Server-Sent Events, read incrementally from a streaming HTTP reply.

:func:`events` turns a ``readline`` callable into the ``data`` of each event
as it completes (the WHATWG rules that matter for LLM servers: ``data:`` with
or without a space, multi-line data joined by newlines, ``:`` comments and
keep-alives skipped, ``event``/``id``/``retry`` fields accepted). A line that
is none of these (a JSON reply where a stream was expected, garbage) raises
:class:`MalformedStream`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator


class MalformedStream(Exception):
    """The reply is not a well-formed event stream."""


_FIELDS = (b"event", b"id", b"retry")


def events(readline: Callable[[bytes], bytes]) -> Iterator[tuple[bytes, bytes]]:
    """Yield ``(event type, data)`` per event; ends when the reply ends."""
    data: list[bytes] = []
    kind = b"message"
    while True:
        line = readline(b"\n")
        if not line:  # end of the reply: an unterminated event still counts
            if data:
                yield kind, b"\n".join(data)
            return
        line = line.rstrip(b"\r\n")
        if not line:  # blank line: dispatch
            if data:
                yield kind, b"\n".join(data)
            data, kind = [], b"message"
            continue
        if line[:1] == b":":
            continue
        name, colon, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data" and colon:
            data.append(value)
        elif name == b"event":
            kind = value or b"message"
        elif name in _FIELDS:
            continue
        else:
            raise MalformedStream(f"not an SSE line: {line[:60]!r}")
