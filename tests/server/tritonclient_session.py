"""Drive a running server with NVIDIA's own ``tritonclient`` (HTTP, sync, async and aio).

Run as ``python -m tests.server.tritonclient_session HOST:PORT MODEL``; prints one JSON
object with everything the client returned. It runs in its own interpreter because
tritonclient's HTTP client is built on gevent (see tests/server/test_readiness.py).
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
import tritonclient.http as triton
import tritonclient.http.aio as triton_aio

ROWS = 3


def _inputs(module, x: np.ndarray, binary: bool):
    tensor = module.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    return [tensor], [module.InferRequestedOutput("logits", binary_data=binary)]


async def _aio(url: str, model: str, x: np.ndarray) -> dict:
    async with triton_aio.InferenceServerClient(url) as client:
        out = {}
        for binary in (False, True):
            inputs, outputs = _inputs(triton_aio, x, binary)
            result = await client.infer(model, inputs, outputs=outputs)
            out[f"aio_{'binary' if binary else 'json'}"] = result.as_numpy("logits").tolist()
        out["aio_config"] = await client.get_model_config(model)
        out["aio_stats"] = await client.get_inference_statistics(model)
        return out


def main(url: str, model: str) -> dict:
    x = np.random.RandomState(7).uniform(-1, 1, (ROWS, 64)).astype(np.float32)
    client = triton.InferenceServerClient(url)
    out: dict = {
        "input": x.tolist(),
        "live": client.is_server_live(),
        "ready": client.is_server_ready() and client.is_model_ready(model),
        "server_metadata": client.get_server_metadata(),
        "model_metadata": client.get_model_metadata(model),
        "config": client.get_model_config(model),
        "index": client.get_model_repository_index(),
    }
    for binary in (False, True):
        inputs, outputs = _inputs(triton, x, binary)
        result = client.infer(model, inputs, outputs=outputs)
        out[f"sync_{'binary' if binary else 'json'}"] = result.as_numpy("logits").tolist()
        pending = client.async_infer(model, inputs, outputs=outputs)
        out[f"async_{'binary' if binary else 'json'}"] = (
            pending.get_result().as_numpy("logits").tolist()
        )
    out.update(asyncio.run(_aio(url, model, x)))
    out["stats"] = client.get_inference_statistics(model)
    out["all_stats"] = client.get_inference_statistics()
    try:
        client.get_model_config("no-such-model")
        out["unknown_model_error"] = None
    except triton.InferenceServerException as exc:
        out["unknown_model_error"] = exc.message()
    client.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
