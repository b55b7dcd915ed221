"""``torchserve``: TorchServe's inference API, ``POST /predictions/{model}``.

Bodies from ``--input-file``, one JSON request a line, sent as they are (the
model's handler decides what they mean). Success: HTTP 2xx.
"""

from __future__ import annotations

from inferops.load.protocols.base import Protocol, model_segment


class TorchServe(Protocol):
    name = "torchserve"
    help = "TorchServe: POST /predictions/MODEL"

    def default_path(self) -> str:
        return f"/predictions/{model_segment(self.opts.model, self.name)}"


PROTOCOL = TorchServe
