"""The reference inference server behind ``inferops serve`` (see docs/server.md).

Modules: ``cli`` (flags, start-up, drain on SIGTERM), ``app`` (routes),
``codec`` (v2 JSON / binary tensors / ``/predict``), ``batcher`` (dynamic
batching with a bounded queue), ``backends`` (ONNX Runtime, OpenVINO),
``metrics`` (Prometheus), ``tensors`` (specs and v2 datatypes) and ``process``
(``ServerProcess``: run the server as a child, for demos, benchmarks and tests).
"""
