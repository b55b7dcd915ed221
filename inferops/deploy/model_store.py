"""Model versions stored side by side on a node, and the ``current`` link the server reads.

Layout, per served model name::

    /opt/inferops/models/<name>/
        v2-0123456789ab/model.onnx     <version>-<first 12 hex of its sha256>
        v1-ba9876543210/model.onnx
        current -> v2-0123456789ab     what the server loads (server.env never changes)

A version directory appears complete or not at all: the file is uploaded as
``model.onnx.part``, checked against its sha256 on the host, then renamed.
Switching versions is ``ln -sfn`` to a temporary name and ``mv -T`` over
``current``: a rename, so a reader sees the old target or the new one, never none.
The previous versions stay (``server_model_keep`` of them, most recently served
first), so a rollback is a flip and a restart, with nothing to upload.

A version label names one content: storing a label again with other bytes is refused
(give the new model a new version) rather than silently serving the old file.
"""

from __future__ import annotations

import re
import shlex

from pyinfra import host
from pyinfra.api import (
    FactBase,
    FileUploadCommand,
    OperationError,
    QuoteString,
    StringCommand,
    operation,
)

CURRENT = "current"
MODEL_FILE = "model.onnx"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,62}$"
_DIR = re.compile(r"^(?:(?P<version>[A-Za-z0-9][A-Za-z0-9_.+-]*)-)?(?P<sha12>[0-9a-f]{12})$")


def version_dir(version: str | None, sha256: str) -> str:
    """Directory name of a version: ``<version>-<sha12>``, or ``<sha12>`` when unlabelled."""
    sha12 = sha256[:12]
    return f"{version}-{sha12}" if version else sha12


def parse_version_dir(name: str) -> tuple[str | None, str] | None:
    """``"v2-0123456789ab"`` -> ``("v2", "0123456789ab")``; None for anything else."""
    match = _DIR.match(name)
    return (match.group("version"), match.group("sha12")) if match else None


class ModelVersions(FactBase):
    """The versions stored under a model directory and the one ``current`` points at.

    ``{"current": "v2-0123456789ab" | None, "stored": {"v2-0123456789ab": mtime, ...}}``;
    a directory counts as stored only once its ``model.onnx`` is complete.
    """

    @staticmethod
    def default() -> dict:
        return {"current": None, "stored": {}}

    def command(self, path: str) -> str:
        return (
            f'd={shlex.quote(path)}; test -d "$d" || exit 0; '
            f'echo "current $(readlink "$d/{CURRENT}" 2>/dev/null)"; '
            f'for v in "$d"/*/; do v="${{v%/}}"; n="${{v##*/}}"; '
            f'[ "$n" != {CURRENT} ] && [ -f "$v/{MODEL_FILE}" ] && '
            'echo "stored $(stat -c %Y "$v") $n"; done; true'
        )

    def process(self, output) -> dict:
        return parse_versions(output)


def parse_versions(lines) -> dict:
    found: dict = {"current": None, "stored": {}}
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0] == "current":
            found["current"] = parts[1].rstrip("/").rsplit("/", 1)[-1]
        elif len(parts) == 3 and parts[0] == "stored" and parts[1].isdigit():
            if parse_version_dir(parts[2]):
                found["stored"][parts[2]] = int(parts[1])
    return found


def stored_with_label(stored, version: str) -> list[str]:
    """Stored directories carrying ``version`` as their label."""
    return sorted(n for n in stored if (parse_version_dir(n) or (None, ""))[0] == version)


@operation()
def store_version(store: str, version: str, src: str, sha256: str, group: str):
    """Upload a model version into ``<store>/<name>/model.onnx`` unless it is stored already.

    + store: the model's directory (``/opt/inferops/models/<model>``)
    + version: the version directory, ``version_dir(label, sha256)``
    + src: the .onnx on the control machine
    + sha256: its digest, checked on the host before the file becomes visible
    + group: the service's group (read access; the files stay root-owned)
    """
    stored = host.get_fact(ModelVersions, path=store)["stored"]
    if version in stored:
        host.noop(f"model version {version} already stored")
        return
    label = (parse_version_dir(version) or (None, ""))[0]
    clash = [n for n in stored_with_label(stored, label) if n != version] if label else []
    if clash:
        raise OperationError(
            f"model version {label!r} is already stored as {clash[0]} with other content "
            f"(sha256 {sha256[:12]}...): give this model a new server_model_version"
        )
    target = f"{store}/{version}"
    part = f"{target}/{MODEL_FILE}.part"
    yield StringCommand("install", "-d", "-o", "root", "-g", group, "-m", "750", target)
    yield FileUploadCommand(src, part, remote_temp_filename=host.get_temp_filename(part))
    yield StringCommand(
        "echo", QuoteString(f"{sha256}  {part}"), "|", "sha256sum", "-c", "--quiet", "&&",
        "chown", f"root:{group}", part, "&&", "chmod", "640", part, "&&",
        "mv", "-f", part, f"{target}/{MODEL_FILE}",
    )  # fmt: skip


@operation()
def switch_version(store: str, version: str):
    """Point ``<store>/current`` at ``version`` (atomic), unless it already does.

    The target directory's mtime is refreshed, so "most recently served" orders the
    versions that ``prune_versions`` keeps.

    + store: the model's directory
    + version: the version directory to serve
    """
    if host.get_fact(ModelVersions, path=store)["current"] == version:
        host.noop(f"{store}/{CURRENT} already points at {version}")
        return
    temp = f"{store}/.{CURRENT}.tmp"
    yield StringCommand("test", "-f", f"{store}/{version}/{MODEL_FILE}")
    yield StringCommand("touch", f"{store}/{version}")
    yield StringCommand("ln", "-sfn", version, temp, "&&", "mv", "-T", temp, f"{store}/{CURRENT}")


def versions_to_remove(stored: dict[str, int], keep: int, protect: set[str]) -> list[str]:
    """The stored versions beyond the ``keep`` most recently served, never a protected one."""
    newest_first = sorted(stored, key=lambda n: (stored[n], n), reverse=True)
    kept = [n for n in newest_first if n in protect]
    for n in newest_first:
        if len(kept) >= keep:
            break
        if n not in kept:
            kept.append(n)
    return sorted(n for n in stored if n not in kept)


@operation()
def prune_versions(store: str, keep: int, protect: list[str]):
    """Remove the versions beyond the ``keep`` most recently served ones.

    + store: the model's directory
    + keep: how many versions stay (the one served included)
    + protect: versions never removed (the one being served, the one switched to)
    """
    stored = host.get_fact(ModelVersions, path=store)["stored"]
    doomed = versions_to_remove(stored, keep, set(protect))
    if not doomed:
        host.noop(f"{len(stored)} model versions stored, keeping up to {keep}")
        return
    yield StringCommand("rm", "-rf", "--", *[f"{store}/{n}" for n in doomed])
