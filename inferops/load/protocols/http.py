"""``http``: any HTTP endpoint, ``--method`` (default POST) and ``--path``.

Bodies from ``--input-file`` (one JSON body a line, sent as it is); a GET or
HEAD sends no body and needs no file. Headers from ``--header 'Name: value'``
(repeatable; their values are never written to the run folder).
Success: HTTP 2xx, plus ``--expect-json-key`` when given.
"""

from __future__ import annotations

from inferops.exitcodes import UsageError
from inferops.load.protocols.base import Protocol

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


class HTTP(Protocol):
    name = "http"
    help = "any endpoint: --method, --path, --header, bodies from --input-file"

    def __init__(self, opts):
        super().__init__(opts)
        if self.method not in METHODS:
            raise UsageError(f"--method: expected one of {', '.join(METHODS)}, got {opts.method!r}")

    def default_path(self) -> str:
        raise UsageError("--protocol http needs --path (e.g. --path /v1/score)")

    def default_bodies(self, target: str) -> list[bytes]:
        if self.method in ("GET", "HEAD"):
            return [b""]
        return super().default_bodies(target)


PROTOCOL = HTTP
