"""The seeds' own inference service, as the seeds give it: a FastAPI app.

``POST /predict`` takes ``{"texts": ["...", ...]}`` and answers
``{"results": [{"label", "score"}, ...], "latency_ms": <float>}``; ``/health``,
``/ready`` and ``/live`` are its probes. The "model" is a deterministic bag of
words (positive minus negative words) so the tests need no weights; what
matters here is the wire shape, which is *not* KServe v2 and has no
``"outputs"`` key: the shape ``inferops bench --protocol predict`` must drive
unchanged.

Run: ``python -m tests.endpoints.seeds_api --port 0`` (prints ``PORT <n>``).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time

from fastapi import FastAPI
from pydantic import BaseModel, Field

POSITIVE = {"good", "great", "fast", "love", "excellent", "happy", "works"}
NEGATIVE = {"bad", "slow", "hate", "broken", "awful", "sad", "fails"}


class PredictRequest(BaseModel):
    texts: list[str] = Field(min_length=1, max_length=256)


class Result(BaseModel):
    label: str
    score: float


class PredictResponse(BaseModel):
    results: list[Result]
    latency_ms: float


def classify(text: str) -> Result:
    words = text.lower().split()
    pos = sum(w in POSITIVE for w in words)
    neg = sum(w in NEGATIVE for w in words)
    score = (pos + 1) / (pos + neg + 2)  # Laplace-smoothed share of positive words
    return Result(label="positive" if score >= 0.5 else "negative", score=round(score, 4))


def create_app(delay_ms: float = 0.0) -> FastAPI:
    app = FastAPI(title="seeds inference API")
    state = {"ready": True}

    @app.post("/predict", response_model=PredictResponse)
    async def predict(req: PredictRequest) -> PredictResponse:
        t0 = time.perf_counter()
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000.0)
        results = [classify(t) for t in req.texts]
        return PredictResponse(results=results, latency_ms=(time.perf_counter() - t0) * 1000.0)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> dict:
        return {"ready": state["ready"]}

    @app.get("/live")
    async def live() -> dict:
        return {"live": True}

    return app


def main() -> None:
    import uvicorn

    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--delay-ms", type=float, default=0.0, help="added per request (asyncio)")
    args = p.parse_args()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(create_app(args.delay_ms), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
