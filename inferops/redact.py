"""Secrets never reach an artefact: command lines, URLs and texts are redacted before writing.

What counts as a secret here:

* the value of a secret flag (``--token X``, ``--token=X``); of ``--header 'Name: value'``
  the value (the name is kept);
* an ``Authorization:`` header value, and a password in a URL (``user:pass@host``);
* the value of any environment variable whose name says it holds one
  (``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``, ``*API_KEY*``, ``*CREDENTIAL*``).

:func:`redact_argv` and :func:`redact_url` clean what is recorded on purpose
(the manifest's command line, the target); :func:`scrub` is the last guard
every run-folder write goes through: it replaces any known secret value
wherever it appears.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
SECRET_FLAGS = ("--token", "--header")
_SECRET_ENV = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|CREDENTIAL", re.IGNORECASE)
_AUTH_HEADER = re.compile(r"(?i)(authorization\s*[:=]\s*)(\S+(?:\s+\S+)?)")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s:]*):([^/@\s]*)@")
#: values shorter than this are not scrubbed from texts (they would match by chance)
MIN_SECRET_LEN = 4


def redact_url(url: str | None) -> str | None:
    """``http://user:pass@host`` -> ``http://user:***@host``; other URLs unchanged."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return _URL_USERINFO.sub(rf"\1\2:{MASK}@", url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username}:{MASK}@{host}" if parts.username else f"{MASK}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def redact_text(text: str) -> str:
    """Passwords in URLs and ``Authorization:`` header values in free text."""
    text = _URL_USERINFO.sub(rf"\1\2:{MASK}@", text)
    return _AUTH_HEADER.sub(rf"\1{MASK}", text)


def redact_argv(argv: Iterable[str]) -> list[str]:
    """A command line safe to record: secret flag values masked, URLs and headers cleaned."""
    out: list[str] = []
    pending = None  # the secret flag whose value comes next
    for arg in map(str, argv):
        if pending:
            out.append(_mask(pending, arg))
            pending = None
            continue
        flag, eq, value = arg.partition("=")
        if flag in SECRET_FLAGS:
            if eq:
                out.append(f"{flag}={_mask(flag, value)}")
            else:
                out.append(arg)
                pending = flag
            continue
        out.append(redact_text(arg))
    return out


def _mask(flag: str, value: str) -> str:
    """A secret flag's value masked; a header keeps its name (``X-Api-Key: ***``)."""
    name, colon, _ = value.partition(":")
    if flag == "--header" and colon and name.strip() and " " not in name.strip():
        return f"{name.strip()}: {MASK}"
    return MASK


def env_secrets(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they hold a secret."""
    environ = os.environ if environ is None else environ
    return [v for k, v in environ.items() if _SECRET_ENV.search(k) and len(v) >= MIN_SECRET_LEN]


def secrets_of(
    *, token: str | None = None, urls: Iterable[str | None] = (), values: Iterable[str] = ()
) -> list[str]:
    """Every secret value a run knows: its token, other secret ``values`` (header
    values), URL passwords, secret env variables."""
    found = [token] if token else []
    found += [v for v in values if v]
    for url in urls:
        try:
            password = urlsplit(url).password if url else None
        except ValueError:
            password = None
        if password:
            found.append(password)
    found += env_secrets()
    return sorted({s for s in found if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)


def scrub(data: bytes, secrets: Iterable[str]) -> bytes:
    """``data`` with every occurrence of every secret replaced by the mask."""
    for secret in secrets:
        data = data.replace(secret.encode("utf-8"), MASK.encode("ascii"))
    return data
