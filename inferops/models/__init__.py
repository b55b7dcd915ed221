"""Embedded ONNX models (built locally, never downloaded) and model-path resolution.

``build(name, out)`` writes one of :data:`EMBEDDED` deterministically;
``resolve(model)`` turns a path or an embedded name into an ``.onnx`` path,
building embedded models into the cache (``$INFEROPS_CACHE`` or
``~/.cache/inferops/models``) the first time they are asked for.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from inferops.exitcodes import UsageError

#: Names accepted by ``inferops model build`` and by ``inferops serve --model``.
EMBEDDED: tuple[str, ...] = ("mlp", "cnn", "dense", "tinylm")


def cache_dir() -> Path:
    """Where embedded models are cached: ``$INFEROPS_CACHE`` or ``~/.cache/inferops/models``."""
    from inferops.models.builders import BUILD_VERSION

    root = os.environ.get("INFEROPS_CACHE") or Path.home() / ".cache" / "inferops" / "models"
    # One folder per builder version: a changed builder never reuses a stale file.
    return Path(root) / f"v{BUILD_VERSION}"


def build(name: str, out: Path) -> Path:
    """Write embedded model ``name`` to ``out`` (atomically) and return ``out``.

    The bytes are identical on every call and every machine. Raises
    :class:`UsageError` for an unknown name or an unwritable destination.
    """
    if name not in EMBEDDED:
        raise UsageError(f"unknown model {name!r}; embedded models are: {', '.join(EMBEDDED)}")
    import onnx

    from inferops.models.builders import BUILDERS
    from inferops.models.tinylm import tinylm

    model = {**BUILDERS, "tinylm": tinylm}[name]()
    onnx.checker.check_model(model, full_check=True)
    return write_atomic(model.SerializeToString(), Path(out))


def write_atomic(data: bytes, out: Path) -> Path:
    """Write ``data`` to ``out`` through a temp file + rename, so readers never see half a file."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def resolve(model: str) -> Path:
    """Return the ``.onnx`` path for a file path or an embedded model name.

    An existing file wins over an embedded name. Embedded models are built into
    :func:`cache_dir` if missing. Raises :class:`UsageError` when ``model`` is
    neither an existing file nor an embedded name.
    """
    path = Path(model).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise UsageError(f"model {model}: is not a file")
    if model in EMBEDDED:
        cached = cache_dir() / f"{model}.onnx"
        if not cached.is_file():
            build(model, cached)
        return cached
    raise UsageError(
        f"model {model}: no such file, and not an embedded model ({', '.join(EMBEDDED)})"
    )
