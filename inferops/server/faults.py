"""Test-only fault injection: a model version that degrades after serving N requests.

A canary check of a few seconds cannot see a version that breaks only under sustained
traffic (a leak, a cache or queue that grows with every request). Rollout tests need such
a version, and ONNX models are stateless, so the degradation is declared in the model's
own metadata::

    inferops.fault.delay_after_requests = "1500"   # the first 1500 inference requests are normal
    inferops.fault.delay_ms = "800"                # every later one waits 800 ms more

The server honours it only when started with ``--allow-fault-injection`` (or
``INFEROPS_ALLOW_FAULT_INJECTION=1``, which the deploy writes for the knob
``server_allow_fault_injection``).
Any other server ignores the metadata and says so on stderr, so a file with it can never
slow a production server by accident. The delay is an ``asyncio`` sleep on the request
path: the response is late, the CPU and the batcher are untouched.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

from inferops import validators
from inferops.exitcodes import UsageError

AFTER_KEY = "inferops.fault.delay_after_requests"
DELAY_KEY = "inferops.fault.delay_ms"
ENV_SWITCH = "INFEROPS_ALLOW_FAULT_INJECTION"


@dataclass
class DelayAfterRequests:
    after_requests: int
    delay_ms: float
    served: int = 0

    async def on_request(self) -> None:
        """Count one inference request; once past the limit, answer it late."""
        self.served += 1
        if self.served > self.after_requests:
            await asyncio.sleep(self.delay_ms / 1000.0)

    def describe(self) -> str:
        return f"every inference request after the first {self.after_requests} waits " \
               f"{self.delay_ms:g} ms more"  # fmt: skip


def allowed_by_env(env=None) -> bool:
    return validators.env_switch(ENV_SWITCH, env)


def model_metadata(backend, path: Path) -> dict[str, str]:
    """The ONNX file's ``metadata_props``: from the backend when it already read them (ONNX
    Runtime's session), else parsed from ``path`` (empty for files that are not ONNX)."""
    metadata = getattr(backend, "metadata", None)
    if metadata is not None:
        return metadata
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # the backend reports unloadable files with its own message
        return {}
    return {p.key: p.value for p in model.metadata_props}


def from_metadata(metadata: dict[str, str], allowed: bool, log=None):
    """The declared fault when ``allowed``; None otherwise (with a line on stderr if one
    was declared). UsageError for a declaration that is not two numbers."""
    log = log or (lambda line: print(line, file=sys.stderr))
    if AFTER_KEY not in metadata and DELAY_KEY not in metadata:
        return None
    try:
        after = int(metadata.get(AFTER_KEY, ""))
        delay = float(metadata.get(DELAY_KEY, ""))
    except ValueError:
        raise UsageError(
            f"model metadata {AFTER_KEY}={metadata.get(AFTER_KEY)!r}, "
            f"{DELAY_KEY}={metadata.get(DELAY_KEY)!r}: need an integer and milliseconds"
        ) from None
    if after < 0 or not 0 < delay <= 60_000:
        raise UsageError(
            f"model metadata {AFTER_KEY}={after}, {DELAY_KEY}={delay:g}: need requests >= 0 "
            "and 0 < ms <= 60000"
        )
    fault = DelayAfterRequests(after, delay)
    if not allowed:
        log("inferops serve: the model declares a test fault (" + fault.describe() + "); "
            "ignored: this server was not started with --allow-fault-injection")  # fmt: skip
        return None
    log("inferops serve: FAULT INJECTION ON: " + fault.describe())
    return fault
