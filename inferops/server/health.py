"""Health and metrics routes shared by both servers (tensor models and LLM decoders).

``/v2/health/live``, ``/v2/health/ready`` (KServe v2: 200 or 400), ``/ready`` and
``/health`` for load balancers (200 or 503 + Retry-After) and ``/metrics``. A server
class mixes this in and provides ``ready`` (an Event set once the model is warm) and
``metrics.registry``.
"""

from __future__ import annotations

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

RETRY_AFTER_S = "1"


def json_response(doc, status: int = 200, headers: dict | None = None) -> Response:
    return Response(
        orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY),
        status,
        headers=headers,
        media_type="application/json",
    )


class HealthRoutes:
    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def v2_ready(self, request: Request) -> Response:
        # The v2 spec: 200 means ready, a 4xx means not (yet).
        ready = self.ready.is_set()
        return json_response({"ready": ready}, 200 if ready else 400)

    async def simple_ready(self, request: Request) -> Response:
        ready = self.ready.is_set()
        return json_response(
            {"ready": ready},
            200 if ready else 503,
            None if ready else {"Retry-After": RETRY_AFTER_S},
        )

    async def prometheus(self, request: Request) -> Response:
        return Response(
            generate_latest(self.metrics.registry), headers={"content-type": CONTENT_TYPE_LATEST}
        )
