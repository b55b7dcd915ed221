"""Deploy knobs: each declared once, as ``Knob(name, default, check, doc)``, in the module
that reads it.

A module lists its knobs in ``KNOBS`` and gets its pyinfra ``DEFAULTS`` from
``declare(__name__, KNOBS)``. Everything else is derived from those declarations:
the validation schema (``inferops.deploy.validate``), the merged defaults and the
documented ``group_data/all.py`` (``inferops.deploy.catalog``).

``knob(key)`` reads a value for the current host: host/group/override data first,
else the declared default. A module only reads knobs it declares itself or that a
module it imports declares (``tests/deploy`` checks this), so the declaration is
always registered by the time it is read, without a central import of every
component.

The check builders below return ``check(value) -> problem or None``; ``choice``
also carries its allowed values so the docs can list them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pyinfra import host

SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A pip requirement we can check for presence without resolving: name or name==version.
PIP_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?(==[A-Za-z0-9.+!_-]+)?$")
DEB_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+:~-]+)?$")
ARCHES = ("x86_64", "aarch64")

Problem = str | None


@dataclass(frozen=True)
class Check:
    """A value check: ``check(value)`` returns a problem string or None."""

    test: Callable[[Any], Problem]
    choices: tuple = ()

    def __call__(self, value: Any) -> Problem:
        return self.test(value)


@dataclass(frozen=True)
class Knob:
    """One data key a deploy reads: its default, its check and its one-line doc."""

    name: str
    default: Any
    check: Callable[[Any], Problem]
    doc: str

    @property
    def choices(self) -> tuple:
        return getattr(self.check, "choices", ())


_DECLARED: dict[str, tuple[str, Knob]] = {}
_MISSING = object()


def declare(owner: str, knobs: Iterable[Knob]) -> dict[str, Any]:
    """Register ``owner``'s knobs and return their defaults (the pyinfra ``DEFAULTS``).

    A name declared by two modules is a programming error, caught at import.
    """
    defaults = {}
    for item in knobs:
        prior = _DECLARED.get(item.name)
        if prior is not None and prior[0] != owner:
            raise ValueError(f"knob {item.name!r} declared by both {prior[0]} and {owner}")
        _DECLARED[item.name] = (owner, item)
        defaults[item.name] = item.default
    return defaults


def declared(key: str) -> Knob:
    try:
        return _DECLARED[key][1]
    except KeyError:
        raise KeyError(
            f"knob {key!r} is not declared by any imported module "
            "(declare it in the module that reads it, or import that module)"
        ) from None


def declared_defaults() -> dict[str, Any]:
    """Every knob declared so far (by the modules imported), at its default."""
    return {name: item.default for name, (_, item) in _DECLARED.items()}


def knob(key: str) -> Any:
    """The current host's value of ``key``: its data, else the declared default."""
    value = host.data.get(key, _MISSING)
    if value is _MISSING:
        return declared(key).default
    return value


# ---- check builders ----------------------------------------------------------------


def _type(*types, none=False, desc=""):
    def check(value):
        if value is None and none:
            return None
        if isinstance(value, bool) and bool not in types:
            return f"expected {desc}, got bool {value!r}"
        if not isinstance(value, types):
            return f"expected {desc}, got {type(value).__name__} {value!r}"
        return None

    return check


def boolean() -> Check:
    return Check(_type(bool, desc="true/false"))


def integer(minimum=None, maximum=None) -> Check:
    base = _type(int, desc="an integer")

    def check(value):
        problem = base(value)
        if problem:
            return problem
        if minimum is not None and value < minimum:
            return f"must be >= {minimum}, got {value}"
        if maximum is not None and value > maximum:
            return f"must be <= {maximum}, got {value}"
        return None

    return Check(check)


def number(minimum=0) -> Check:
    base = _type(int, float, desc="a number")

    def check(value):
        problem = base(value)
        if problem:
            return problem
        if value < minimum:
            return f"must be >= {minimum}, got {value}"
        return None

    return Check(check)


def string(none=False, pattern=None, what="a string") -> Check:
    base = _type(str, none=none, desc=what + (" or None" if none else ""))

    def check(value):
        problem = base(value)
        if problem or value is None:
            return problem
        if not value.strip():
            return "must not be empty"
        if pattern is not None and not re.search(pattern, value):
            return f"not {what}: {value!r}"
        return None

    return Check(check)


def choice(*choices) -> Check:
    def check(value):
        if value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            return f"unknown value {value!r}; allowed: {allowed}"
        return None

    return Check(check, choices=tuple(choices))


def url(none=False) -> Check:
    return string(none=none, pattern=r"^(https?|file|ftp)://\S+$", what="a URL")


def absolute_path() -> Check:
    return string(pattern=r"^/", what="an absolute path")


def local_file() -> Check:
    """A path on the control machine; existence is checked where it is used."""
    return string(none=True, what="a local path")


def str_list(pattern: re.Pattern | None = None, what="item") -> Check:
    def check(value):
        if not isinstance(value, (list, tuple)):
            return f"expected a list of strings, got {type(value).__name__} {value!r}"
        for item in value:
            if not isinstance(item, str) or not item.strip():
                return f"expected a list of strings, found {item!r}"
            if pattern is not None and not pattern.match(item):
                return f"bad {what} {item!r}"
        return None

    return Check(check)


def sha256() -> Check:
    def check(value):
        if value is None:
            return None
        if not isinstance(value, str) or not SHA256.match(value):
            return f"not a sha256 (64 lowercase hex): {value!r}"
        return None

    return Check(check)


def sha256_by_arch() -> Check:
    def check(value):
        if not isinstance(value, dict):
            return f"expected a mapping arch -> sha256, got {type(value).__name__} {value!r}"
        for arch, digest in value.items():
            if arch not in ARCHES:
                return f"unknown arch {arch!r}; allowed: {', '.join(ARCHES)}"
            if not isinstance(digest, str) or not SHA256.match(digest):
                return f"{arch}: not a sha256 (64 lowercase hex): {digest!r}"
        return None

    return Check(check)


def str_map(values=(str,)) -> Check:
    def check(value):
        if not isinstance(value, dict):
            return f"expected a mapping, got {type(value).__name__} {value!r}"
        for key, item in value.items():
            if not isinstance(key, str):
                return f"keys must be strings, found {key!r}"
            if isinstance(item, bool) or not isinstance(item, values):
                return f"{key}: expected {'/'.join(t.__name__ for t in values)}, got {item!r}"
        return None

    return Check(check)


def listen_address(example: str) -> Check:
    return string(pattern=r"^\S*:\d+$", what=f"an address like {example}")


def image_tag() -> Check:
    return string(pattern=r"^\S+:\S+$", what="an image:tag")


def image_digest(none=False) -> Check:
    """An image pinned by content: ``repo[:tag]@sha256:<64 hex>`` (a tag can be moved)."""
    return string(
        none=none,
        pattern=r"^[^\s@]+@sha256:[0-9a-f]{64}$",
        what="an image pinned by digest (repo[:tag]@sha256:<64 hex>)",
    )


def proxy_map() -> Check:
    allowed = ("http", "https", "no_proxy")

    def check(value):
        if value is None:
            return None
        if not isinstance(value, dict):
            return f"expected None or a mapping with keys {allowed}, got {value!r}"
        for key, item in value.items():
            if key not in allowed:
                return f"unknown key {key!r}; allowed: {', '.join(allowed)}"
            if not isinstance(item, str):
                return f"{key}: expected a string, got {item!r}"
        return None

    return Check(check)
