"""``v2``: KServe v2 / Open Inference Protocol (Triton, MLServer, inferops serve).

``POST /v2/models/{model}/infer``. Bodies are generated from the model's
metadata (``GET /v2/models/{model}``: seeded random values for every input,
dynamic batch dimension 1) unless ``--input-file`` gives them:

* ``.jsonl``: a complete request body (it has ``"inputs"``) or a shorthand
  ``{"<input name>": <nested list>}`` turned into v2 tensors;
* ``.npy``: samples on axis 0, each the single input with batch dimension 1.

Success: HTTP 2xx and an ``"outputs"`` key in the JSON reply.
"""

from __future__ import annotations

import orjson

from inferops.exitcodes import UsageError
from inferops.load.protocols.base import Protocol, ReplyError, json_reply, model_segment, read_jsonl
from inferops.load.protocols.tensors import (
    fetch_metadata,
    npy_samples,
    random_tensors,
    tensor,
)


class V2(Protocol):
    name = "v2"
    help = "KServe v2 / Open Inference Protocol: POST /v2/models/MODEL/infer"

    def default_path(self) -> str:
        return f"/v2/models/{model_segment(self.opts.model, self.name)}/infer"

    def default_bodies(self, target: str) -> list[bytes]:
        if not self.opts.model:
            raise UsageError("--model (for its metadata) or --input-file is required")
        meta = fetch_metadata(target, self.opts.model, headers=self.headers())
        return [orjson.dumps({"inputs": random_tensors(meta, seed=self.opts.seed or 0)})]

    def bodies_from_file(self, path: str, target: str) -> list[bytes]:
        if path.endswith(".npy"):
            samples = npy_samples(path)  # a bad file is a usage error before any request
            name = "input"
            if self.opts.model:  # the model's own input name
                meta = fetch_metadata(target, self.opts.model, headers=self.headers())
                name = (meta.get("inputs") or [{"name": name}])[0].get("name", name)
            return [orjson.dumps({"inputs": [tensor(name, s)]}) for s in samples]
        bodies = []
        for lineno, obj in read_jsonl(path, numbered=True):
            if "inputs" not in obj:  # {"input name": nested list}
                where = f"--input-file: {path}:{lineno}"
                obj = {"inputs": [tensor(k, v, where) for k, v in obj.items()]}
            bodies.append(orjson.dumps(obj))
        return bodies

    def check(self, status: int, data: bytes) -> None:
        obj = json_reply(data)
        if not isinstance(obj, dict) or "outputs" not in obj:
            raise ReplyError("reply has no outputs")


PROTOCOL = V2
