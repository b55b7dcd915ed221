"""TorchServe handler (module-level ``handle``): sums ``x`` of each JSON request.

A custom handler, as TorchServe users write them; it needs no torch. An
invalid body raises TorchServe's PredictionException with 400, which
TorchServe answers with HTTP 400.
"""

import json

from ts.utils.util import PredictionException


def handle(data, context):
    if data is None:  # TorchServe's warm-up call at load time
        return None
    out = []
    for row in data:
        body = row.get("body") if row.get("body") is not None else row.get("data")
        try:
            if isinstance(body, (bytes, bytearray)):
                body = json.loads(body)
        except ValueError:
            raise PredictionException("body is not JSON", 400) from None
        if not isinstance(body, dict) or not isinstance(body.get("x"), list):
            raise PredictionException('expected {"x": [numbers]}', 400)
        out.append({"sum": float(sum(body["x"]))})
    return out
