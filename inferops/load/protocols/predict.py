"""``predict``: a plain JSON ``POST /predict`` (FastAPI/Flask services, BentoML…).

Each ``--input-file`` line is sent as it is (``{"texts": [...]}``,
``{"inputs": ...}``, anything); a ``.npy`` file's samples are sent as
``{"inputs": <nested list>}``. Without a file, ``--model`` names a v2 model
whose metadata shapes one ``{"inputs": <nested list>}`` body.

Success: HTTP 2xx and a JSON reply (``--expect-json-key`` adds a key check).
"""

from __future__ import annotations

import orjson

from inferops.exitcodes import UsageError
from inferops.load.protocols.base import Protocol, json_reply
from inferops.load.protocols.tensors import fetch_metadata, nested, npy_samples, random_tensors


class Predict(Protocol):
    name = "predict"
    help = "POST /predict with any JSON body (--input-file lines), any JSON reply"

    def default_path(self) -> str:
        return "/predict"

    def default_bodies(self, target: str) -> list[bytes]:
        if not self.opts.model:
            raise UsageError(
                "--protocol predict needs --input-file (one request body a line), "
                'or --model to shape {"inputs": ...} from v2 metadata'
            )
        tensors = random_tensors(
            fetch_metadata(target, self.opts.model, headers=self.headers()),
            seed=self.opts.seed or 0,
        )
        if len(tensors) != 1:
            raise UsageError("--protocol predict supports single-input models only")
        return [orjson.dumps({"inputs": nested(tensors[0])})]

    def bodies_from_file(self, path: str, target: str) -> list[bytes]:
        if path.endswith(".npy"):
            return [orjson.dumps({"inputs": s.tolist()}) for s in npy_samples(path)]
        return super().bodies_from_file(path, target)

    def check(self, status: int, data: bytes) -> None:
        json_reply(data)


PROTOCOL = Predict
