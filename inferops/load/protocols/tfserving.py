"""``tfserving``: TensorFlow Serving's REST predict API (also KServe v1).

``POST /v1/models/{model}:predict`` with a row-format ``{"instances": [...]}``
or columnar ``{"inputs": ...}`` body from ``--input-file`` (one body a line).
A line that is a bare list is not an object, hence rejected: wrap it as
``{"instances": [...]}``.

Success: HTTP 2xx and a JSON reply holding ``"predictions"`` (row format), or
``"outputs"`` when the request was columnar — TF Serving answers in the format
it was asked in.
"""

from __future__ import annotations

from inferops.load.protocols.base import Protocol, ReplyError, json_reply, model_segment


class TFServing(Protocol):
    name = "tfserving"
    help = 'TF Serving / KServe v1: POST /v1/models/MODEL:predict, {"instances": ...}'

    def default_path(self) -> str:
        return f"/v1/models/{model_segment(self.opts.model, self.name)}:predict"

    def check(self, status: int, data: bytes) -> None:
        obj = json_reply(data)
        if not isinstance(obj, dict) or not ("predictions" in obj or "outputs" in obj):
            raise ReplyError("reply has no predictions")


PROTOCOL = TFServing
