"""A KServe (``kserve`` on PyPI) Python model server for the v1 protocol.

KServe's v1 protocol is TF Serving's REST API: ``POST /v1/models/{name}:predict``
with ``{"instances": [...]}`` answered by ``{"predictions": [...]}``. Runs in
KServe's own venv (``.venv-servers/kserve``):
``python tests/endpoints/kserve_v1_model.py --http_port N --grpc_port M``.
The model sums each instance (no weights to download).
"""

from __future__ import annotations

from kserve import Model, ModelServer, model_server
from kserve.errors import InvalidInput


class Summer(Model):
    def __init__(self, name: str):
        super().__init__(name)
        self.ready = True

    async def predict(self, payload: dict, headers=None, response_headers=None) -> dict:
        instances = payload.get("instances") if isinstance(payload, dict) else None
        if not isinstance(instances, list) or not all(isinstance(r, list) for r in instances):
            raise InvalidInput('expected {"instances": [[numbers], ...]}')  # KServe answers 400
        return {"predictions": [float(sum(row)) for row in instances]}


if __name__ == "__main__":
    args = model_server.parser.parse_args()
    ModelServer(workers=1).start([Summer("summer")])
