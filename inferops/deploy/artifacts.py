"""Files made on the control machine and uploaded: the inferops wheel, the model, the token.

Each is cached under ``.inferops/`` and reused, so a second ``pyinfra`` run
uploads byte-identical files and reports no change.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from pyinfra.api.exceptions import PyinfraError

from inferops.deploy.common import REPO_ROOT, local_state_dir

# What goes into the wheel: the cache key hashes exactly these. README.md is copied
# too (pyproject's readme) but only feeds the wheel's description, so editing it does
# not rebuild the wheel and restart every server.
# package data too (report templates, vendored schemas): what pyproject ships
_SOURCE_GLOBS = (
    "inferops/**/*.py",
    "inferops/**/py.typed",
    "inferops/**/*.j2",
    "inferops/**/*.json",
    "pyproject.toml",
)
_METADATA_ONLY = ("README.md",)


@contextmanager
def _locked(path: Path):
    """Serialise concurrent pyinfra processes building the same artifact."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _source_files(repo: Path) -> list[Path]:
    paths = {p for glob in _SOURCE_GLOBS for p in repo.glob(glob) if p.is_file()}
    return sorted(p for p in paths if "__pycache__" not in p.parts)


def _copy_sources(repo: Path, dest: Path) -> None:
    extra = [repo / name for name in _METADATA_ONLY if (repo / name).is_file()]
    for path in _source_files(repo) + extra:
        target = dest / path.relative_to(repo)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def source_digest(repo: Path = REPO_ROOT) -> str:
    """sha256 over the package sources (paths + contents), ignoring caches."""
    digest = hashlib.sha256()
    for path in _source_files(repo):
        digest.update(str(path.relative_to(repo)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_wheel(repo: Path = REPO_ROOT, cache: Path | None = None) -> Path:
    """Build (once per source digest) and return the inferops wheel.

    ``python -m pip wheel --no-deps`` on the control machine; the result is kept in
    ``.inferops/wheels/<digest>/`` so the same sources always give the same bytes
    (a rebuilt wheel differs in zip timestamps and would look like a change).
    """
    cache = cache or local_state_dir("wheels")
    key = source_digest(repo)[:16]
    target = cache / key
    with _locked(cache / ".lock"):
        wheels = sorted(target.glob("inferops-*.whl")) if target.is_dir() else []
        if wheels:
            return wheels[0]
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
        try:
            command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp)]
            if _has_build_backend():
                # Air-gapped control machines: use the installed setuptools, fetch nothing.
                command.append("--no-build-isolation")
            # Build from a private copy of exactly the digested files: concurrent builds
            # never share setuptools' in-tree build/ dir, and the wheel matches its key.
            source = tmp / "src"
            _copy_sources(repo, source)
            command.append(str(source))
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise PyinfraError(
                    "building the inferops wheel failed: "
                    + (result.stderr.strip().splitlines() or ["(no output)"])[-1]
                )
            built = sorted(tmp.glob("inferops-*.whl"))
            if not built:
                raise PyinfraError(f"pip wheel produced no inferops wheel in {tmp}")
            shutil.rmtree(source)
            os.replace(tmp, target)  # atomic: a half-built dir is never picked up
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return sorted(target.glob("inferops-*.whl"))[0]


def _has_build_backend() -> bool:
    try:
        import setuptools  # noqa: F401
        import wheel  # noqa: F401
    except ImportError:
        return False
    return True


def build_model(name: str, cache: Path | None = None) -> Path:
    """The embedded model ``name`` built once by ``inferops.models.build`` and cached."""
    cache = cache or local_state_dir("models")
    out = cache / f"{name}.onnx"
    with _locked(cache / ".lock"):
        if out.is_file() and out.stat().st_size > 0:
            return out
        try:
            from inferops.models import build
        except ImportError as exc:
            raise PyinfraError(
                f"cannot build embedded model {name!r} ({exc}); set server_model_path to an .onnx"
            ) from exc
        tmp = cache / f".{name}.onnx.tmp"
        produced = Path(build(name, tmp))
        os.replace(produced, out)
        return out


def ensure_token(host_name: str, token_dir: Path | None = None) -> Path:
    """The bearer token for ``host_name``: generated once (mode 0600), then reused."""
    token_dir = token_dir or local_state_dir("tokens")
    token_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(token_dir, 0o700)
    path = token_dir / host_name.replace("/", "_")
    tmp_path = path.parent / (path.name + ".tmp")
    if not path.exists():
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        os.replace(tmp_path, path)
    os.chmod(path, 0o600)
    return path
