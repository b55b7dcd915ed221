"""LLM serving: OpenAI-compatible routes and continuous batching for a decoder ONNX model.

``inferops serve --model tinylm`` (or any decoder following docs/llm.md) lands here:
``model`` (the decoder and its KV caches), ``engine`` (the iteration-level
scheduler), ``sampling``, ``protocol`` (request checks, OpenAI shapes), ``metrics``,
``app`` (routes).
"""

from inferops.server.llm.model import is_decoder

__all__ = ["is_decoder"]
