"""TorchServe handler (module-level ``handle``): sums ``x`` of each JSON request.

A custom handler, as TorchServe users write them; it needs no torch. An
invalid body raises, which TorchServe answers with an HTTP error.
"""

import json


def handle(data, context):
    if data is None:  # TorchServe's warm-up call at load time
        return None
    out = []
    for row in data:
        body = row.get("body") if row.get("body") is not None else row.get("data")
        if isinstance(body, (bytes, bytearray)):
            body = json.loads(body)
        if not isinstance(body, dict) or not isinstance(body.get("x"), list):
            raise ValueError('expected {"x": [numbers]}')
        out.append({"sum": float(sum(body["x"]))})
    return out
