"""The reference server's own argument rules, as knob checks: one source for what
``inferops serve`` accepts and what the deploy lets through into ``server.env``.

Every import from the server is in this module, so re-pointing it (for example to
shared validators) is a one-place change.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
from collections.abc import Callable

from inferops import validators
from inferops.deploy.knobs import Check
from inferops.server.backends import BACKENDS
from inferops.server.cli import is_loopback as server_is_loopback
from inferops.server.cli import queue_delay_ms as _delay_ms

__all__ = ["BACKENDS", "bind_address", "env_map", "env_quote", "is_loopback", "server_arg"]

is_loopback = server_is_loopback


def server_arg(parse: Callable[[str], object], types: tuple[type, ...], what: str) -> Check:
    """A knob check that gives the server's parser the value as it would get it from
    ``server.env`` and reports the server's own complaint."""

    def check(value):
        if isinstance(value, bool) or not isinstance(value, types):
            return f"expected {what}, got {type(value).__name__} {value!r}"
        try:
            parse(repr(value) if isinstance(value, float) else str(value))
        except argparse.ArgumentTypeError as exc:
            return str(exc)
        return None

    return Check(check)


def port() -> Check:
    """``inferops serve --port``, minus 0 ("any"): a deployed server needs a fixed port."""
    base = server_arg(validators.port, (int,), "an integer")

    def check(value):
        return base(value) or (f"must be 1-65535, got {value}" if value == 0 else None)

    return Check(check)


def positive_int() -> Check:
    return server_arg(validators.positive_int, (int,), "an integer")


def delay_ms() -> Check:
    return server_arg(_delay_ms, (int, float), "a number")


def bind_address() -> Check:
    """An address the server can bind on any host: an IP literal or ``localhost``.

    uvicorn resolves anything else on the node at start-up, so a name like
    ``dead`` (or ``300.1.1.1``) would only fail there, as a crash-looping unit.
    """

    def check(value):
        if not isinstance(value, str):
            return f"expected an IP address or 'localhost', got {type(value).__name__} {value!r}"
        if value == "localhost":
            return None
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return f"not an IP address or 'localhost': {value!r}"
        return None

    return Check(check)


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def env_map() -> Check:
    """Extra environment for ``server.env``: names a shell would accept, values on one line."""

    def check(value):
        if not isinstance(value, dict):
            return f"expected a mapping, got {type(value).__name__} {value!r}"
        for key, item in value.items():
            if not isinstance(key, str) or not _ENV_NAME.match(key):
                return f"not an environment variable name: {key!r}"
            if isinstance(item, bool) or not isinstance(item, str):
                return f"{key}: expected a string, got {item!r}"
            if key.startswith("INFEROPS_"):
                return f"{key}: INFEROPS_* is reserved (set from the server_* knobs)"
            if not item.isprintable():
                return f"{key}: value must be one line of printable text, got {item!r}"
        return None

    return Check(check)


def env_quote(value: str) -> str:
    """A value for a systemd ``EnvironmentFile=``: double-quoted, ``\\ " $ ` `` escaped."""
    return '"' + re.sub(r'([\\"$`])', r"\\\1", value) + '"'
