"""Atomic file writes: the one helper every writer of results uses.

A file lands with write-to-temp, ``fsync``, ``os.replace``, ``fsync`` of the
folder: a reader (or a crash) sees either the old file or the new one, never
half of one, and a failed write leaves no temporary file behind.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import tempfile
from typing import Any

# mkstemp creates 0600 files; results should get the usual umask-derived mode.
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically.

    The bytes go to a hidden temporary file in the same folder, which is
    fsynced and then renamed over ``path``; the folder is fsynced so the
    rename survives a power cut. On any error the temporary file is removed
    and ``path`` keeps its old content.
    """
    path = pathlib.Path(path)
    folder = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # BaseException too: a Ctrl-C mid-write must not leave temp files behind.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(folder)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with UTF-8 ``text`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically.

    NaN and ±infinity become ``null`` (Python's ``json`` would write ``NaN``,
    which is not JSON); numpy scalars and arrays become plain numbers and
    lists; tuples become lists. Anything else not serialisable raises
    ``TypeError`` before the file is touched.
    """
    atomic_write_text(path, json_text(obj))


def json_text(obj: Any) -> str:
    """``obj`` as indented JSON text (see :func:`atomic_write_json`); TypeError if it cannot be."""
    return json.dumps(_json_safe(obj), indent=2, allow_nan=False, sort_keys=False) + "\n"


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):  # numpy scalar or array, without importing numpy
        return _json_safe(obj.tolist())
    return obj  # json.dumps raises TypeError naming the type


def _fsync_dir(folder: pathlib.Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # some filesystems do not allow opening folders; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
