"""The run manifest: everything needed to tell later where a result came from.

:func:`collect` returns the ``manifest.json`` dict of docs/run-format.md —
inferops version and git commit, the command line, Python and package
versions, host facts (OS, kernel, CPU, memory, GPUs), the thresholds the run
was judged by and a free ``profile`` label. Write it with
``RunFolder.write_json(MANIFEST, manifest)``. Nothing here raises for a fact
that cannot be found: that fact is ``None``.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import pathlib
import platform
import socket
import subprocess
from typing import Any

import inferops
from inferops.measure.runformat import MANIFEST, SCHEMA
from inferops.redact import redact_argv, redact_url

__all__ = ["MANIFEST", "collect", "collect_for"]

#: distributions whose versions change results (missing ones are recorded as None)
PACKAGES = (
    "locust",
    "onnxruntime",
    "openvino",
    "onnx",
    "numpy",
    "hdrhistogram",
    "pyinfra",
    "psutil",
    "nvidia-ml-py",
    "fastapi",
    "uvicorn",
    "scipy",
    "pandas",
    "prometheus-client",
)


def collect(
    command: list[str],
    *,
    thresholds: dict,
    profile: str | None = None,
    extra: dict | None = None,
) -> dict:
    """Return the manifest for a run started with ``command`` (usually ``sys.argv``).

    ``thresholds`` is recorded as given (the dict from ``inferops.thresholds``);
    ``extra`` is merged in last, so it may add keys or override collected ones.
    """
    git_sha, git_dirty = git_state()
    manifest: dict[str, Any] = {
        "schema": SCHEMA,
        "inferops_version": inferops.__version__,
        "git_sha": git_sha,
        "git_dirty": git_dirty,
        "command": redact_argv(command),  # never a --token value or a URL password
        "python": platform.python_version(),
        "packages": package_versions(),
        "host": host_facts(),
        "thresholds": dict(thresholds),
        "profile": profile,
        "created_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if extra:
        manifest.update(extra)
    return manifest


def collect_for(config, command: list[str]) -> dict:
    """The manifest of a load run (``config``: its LoadConfig), with a ``load`` block."""
    return collect(
        command,
        thresholds=config.limits,
        profile=config.profile,
        extra={
            "load": {
                "target": redact_url(config.target),
                "protocol": config.protocol,
                "model": config.model,
                "rate": config.rate,
                "users": config.users,
                "arrivals": config.arrivals,
                "scenario": config.scenario.name,
                "duration_s": config.duration_s,
                "warmup_s": config.warmup_s,
                "slo_p99_ms": config.bound_ms,
                "max_inflight": config.max_inflight,
                "input_file": config.input_file,
                "host_metrics_from": _host_metrics_from(config),
                "nodes": getattr(config, "nodes", 1),
            },
        },
    )


def _host_metrics_from(config) -> str:
    """Where summary.host came from: the local machine, a node_exporter or Prometheus."""
    if getattr(config, "prometheus", None) is not None:
        return config.prometheus.describe()  # credentials masked
    return redact_url(config.node_exporter) or "load generator host"


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution, None when it is not installed."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state(package_dir: str | os.PathLike | None = None) -> tuple[str | None, bool | None]:
    """``(commit sha, has uncommitted changes)`` of the inferops checkout in use.

    ``(None, None)`` when inferops does not run from a git checkout that tracks
    it (an installed wheel, a copied tree, or a venv inside someone else's
    repository), or git is missing. Never raises.
    """
    pkg = pathlib.Path(package_dir or pathlib.Path(inferops.__file__).parent)
    # The package file must be tracked: being merely inside some repo is not enough.
    if _git(pkg, "ls-files", "--error-unmatch", "__init__.py") is None:
        return None, None
    sha = _git(pkg, "rev-parse", "HEAD")
    if not sha:
        return None, None
    status = _git(pkg, "status", "--porcelain", "--untracked-files=no", "--", ".")
    return sha, (bool(status) if status is not None else None)


def _git(cwd: pathlib.Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # never take index.lock
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def host_facts() -> dict:
    """hostname, os, kernel, cpu_model, cpu_count, memory_bytes, gpus of this machine."""
    from inferops.measure.hostmetrics import gpu_inventory

    try:
        import psutil

        memory = int(psutil.virtual_memory().total)
    except Exception:
        memory = None
    return {
        "hostname": socket.gethostname(),
        "os": os_pretty_name(),
        "kernel": platform.release() or None,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": memory,
        "gpus": gpu_inventory(),
    }


def os_pretty_name(path: str | os.PathLike = "/etc/os-release") -> str | None:
    """``PRETTY_NAME`` from os-release, e.g. ``Debian GNU/Linux 12 (bookworm)``."""
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key == "PRETTY_NAME":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            return value or None
    return None


def cpu_model(path: str | os.PathLike = "/proc/cpuinfo") -> str | None:
    """The CPU model name (``model name`` in /proc/cpuinfo; falls back to platform)."""
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        # x86: "model name"; some ARM kernels: "Model" / "Hardware"
        if sep and key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or None
