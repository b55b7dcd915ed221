"""What changed in the environment between two runs, from their ``manifest.json``.

Answers "why did it move?" with the facts that usually explain it: the commit,
the GPU driver and CUDA, package versions, and the hardware (CPU/GPU model,
cores, memory, host), plus OS, kernel and Python.
"""

from __future__ import annotations

from typing import Any


def _host(manifest: dict) -> dict:
    host = manifest.get("host")
    return host if isinstance(host, dict) else {}


def _gpus(manifest: dict) -> list[dict]:
    return [g for g in _host(manifest).get("gpus") or [] if isinstance(g, dict)]


#: (what, kind, getter): kind groups them in the report
FACTS: list[tuple[str, str, Any]] = [
    ("git_sha", "commit", lambda m: m.get("git_sha")),
    ("git_dirty", "commit", lambda m: m.get("git_dirty")),
    ("inferops_version", "commit", lambda m: m.get("inferops_version")),
    (
        "gpu driver",
        "driver",
        lambda m: next((g.get("driver_version") for g in _gpus(m)), None),
    ),
    (
        "cuda",
        "driver",
        lambda m: m.get("cuda_version") or next((g.get("cuda_version") for g in _gpus(m)), None),
    ),
    ("cpu_model", "hardware", lambda m: _host(m).get("cpu_model")),
    ("cpu_count", "hardware", lambda m: _host(m).get("cpu_count")),
    ("memory_bytes", "hardware", lambda m: _host(m).get("memory_bytes")),
    ("gpus", "hardware", lambda m: sorted(str(g.get("name")) for g in _gpus(m)) or None),
    ("hostname", "hardware", lambda m: _host(m).get("hostname")),
    ("os", "system", lambda m: _host(m).get("os")),
    ("kernel", "system", lambda m: _host(m).get("kernel")),
    ("python", "system", lambda m: m.get("python")),
]


def diff(before: dict, after: dict) -> list[dict]:
    """Each fact that differs: ``{"what", "kind", "before", "after"}``, in FACTS order, then packages."""
    changes = []
    for what, kind, get in FACTS:
        a, b = get(before or {}), get(after or {})
        if a != b:
            changes.append({"what": what, "kind": kind, "before": a, "after": b})
    pa = (before or {}).get("packages") or {}
    pb = (after or {}).get("packages") or {}
    for name in sorted(set(pa) | set(pb)):
        if pa.get(name) != pb.get(name):
            changes.append(
                {"what": name, "kind": "package", "before": pa.get(name), "after": pb.get(name)}
            )
    return changes


def describe(changes: list[dict]) -> str:
    """One line: ``git_sha 1a2b3c4 -> 5d6e7f8; onnxruntime 1.17.0 -> 1.18.0``."""
    if not changes:
        return "nothing recorded in the manifest changed"

    def short(v: Any) -> str:
        if v is None:
            return "none"
        text = ", ".join(map(str, v)) if isinstance(v, list) else str(v)
        return text[:12] if len(text) == 40 and text.isalnum() else text  # a git sha

    return "; ".join(f"{c['what']} {short(c['before'])} -> {short(c['after'])}" for c in changes)
