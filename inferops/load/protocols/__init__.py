"""Wire protocols, one module each: adding a protocol is adding a file here.

Every module of this package that defines ``PROTOCOL`` (a
:class:`~inferops.load.protocols.base.Protocol` subclass) is a protocol named
``PROTOCOL.name``; :func:`names` lists them for ``--protocol`` and
:func:`create` builds one from the load options.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from inferops.exitcodes import UsageError


@cache
def registry() -> dict:
    """``{name: Protocol subclass}`` for every module that defines ``PROTOCOL``."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        cls = getattr(importlib.import_module(f"{__name__}.{info.name}"), "PROTOCOL", None)
        if cls is not None:
            found[cls.name] = cls
    return found


def names() -> tuple[str, ...]:
    order = ("v2", "predict", "tfserving", "torchserve", "http", "openai")
    reg = registry()
    return tuple(n for n in order if n in reg) + tuple(sorted(set(reg) - set(order)))


def create(name: str, opts):
    cls = registry().get(name)
    if cls is None:
        raise UsageError(f"--protocol: expected one of {', '.join(names())}, got {name!r}")
    return cls(opts)
