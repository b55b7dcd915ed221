"""Files made on the control machine and uploaded: the inferops wheel, the wheelhouse of
the locked dependencies, the model, the token.

Each is cached under ``.inferops/`` and reused, so a second ``pyinfra`` run
uploads byte-identical files and reports no change, and a fleet downloads its
dependencies once (on the control machine) instead of once per host.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
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


_in_process: dict[str, threading.Lock] = {}


@contextmanager
def _locked(path: Path):
    """Serialise concurrent builders of the same artifact: greenlets of this process (pyinfra
    runs hosts as gevent greenlets and patches ``threading``), then other processes (flock).

    The in-process lock comes first: a greenlet blocked in ``flock`` would block the whole
    process, including the greenlet holding the file lock.
    """
    lock = _in_process.setdefault(str(path), threading.Lock())
    path.parent.mkdir(parents=True, exist_ok=True)
    with lock, open(path, "w") as handle:
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


# Environment markers of the host's interpreter, from the PythonPlatform fact.
def marker_environment(target: dict) -> dict[str, str]:
    version = target["version"]
    return {
        "python_version": ".".join(version.split(".")[:2]),
        "python_full_version": version,
        "implementation_name": target["implementation"].lower(),
        "platform_python_implementation": target["implementation"],
        "platform_machine": target["machine"],
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
    }


def wheelhouse_requirements(lock_text: str, target: dict) -> list[str]:
    """The lock's entries that apply on ``target``, markers evaluated, hashes kept."""
    from packaging.requirements import Requirement

    env = marker_environment(target)
    found = []
    for line in re.sub(r"\\\n\s*", " ", lock_text).splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        head, _, hashes = line.partition(" --hash=")
        requirement = Requirement(head)
        if requirement.marker and not requirement.marker.evaluate(env):
            continue
        found.append(f"{requirement.name}{requirement.specifier} --hash={hashes.strip()}")
    return found


def wheel_platforms(target: dict) -> list[str] | None:
    """pip ``--platform`` tags a glibc Linux host accepts (manylinux down to 2.5), or None
    when the wheelhouse cannot be built for it (musl, not CPython)."""
    match = re.match(r"^2\.(\d+)", target.get("libc_version") or "")
    if target.get("libc") != "glibc" or not match or target.get("implementation") != "CPython":
        return None
    arch = target["machine"]
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(int(match.group(1)), 4, -1)]
    return tags + [f"manylinux{alias}_{arch}" for alias in ("2014", "2010", "1")]


def wheelhouse_tag(target: dict) -> str:
    major, minor = target["version"].split(".")[:2]
    return f"cp{major}{minor}-{target['libc']}{target['libc_version']}-{target['machine']}"


def build_wheelhouse(
    lock_text: str, target: dict, pip_options: list[str] | None = None, cache: Path | None = None
) -> Path:
    """Download (once per lock and host platform) the lock's wheels for ``target`` into one
    zip and return it: ``pip download --require-hashes --only-binary=:all:`` on the control
    machine, so every file is checked against the lock's sha256 before it ships.

    ``pip_options``: index options (``--index-url``...). Raises PyinfraError when pip
    cannot get every wheel (an sdist-only package, no index reachable).
    """
    platforms = wheel_platforms(target)
    if platforms is None:
        raise PyinfraError(f"no wheelhouse for {target}: only CPython on glibc Linux")
    cache = cache or local_state_dir("wheelhouse")
    key = hashlib.sha256(lock_text.encode()).hexdigest()[:16]
    target_dir = cache / f"{key}-{wheelhouse_tag(target)}"
    archive = target_dir / "wheelhouse.zip"
    with _locked(cache / ".lock"):
        if archive.is_file():
            return archive
        tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=cache))
        try:
            requirements = tmp / "requirements.txt"
            requirements.write_text("\n".join(wheelhouse_requirements(lock_text, target)) + "\n")
            major, minor = target["version"].split(".")[:2]
            command = [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--require-hashes", "--only-binary=:all:", "--implementation", "cp",
                "--python-version", f"{major}.{minor}", "--abi", f"cp{major}{minor}",
                *[arg for tag in platforms for arg in ("--platform", tag)],
                *(pip_options or []), "-d", str(tmp / "wheels"), "-r", str(requirements),
            ]  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                errors = [ln for ln in result.stderr.splitlines() if ln.startswith("ERROR")]
                raise PyinfraError(
                    "downloading the wheelhouse failed: "
                    + (errors or result.stderr.strip().splitlines() or ["(no output)"])[-1]
                )
            with zipfile.ZipFile(tmp / "wheelhouse.zip", "w", zipfile.ZIP_STORED) as bundle:
                for wheel in sorted((tmp / "wheels").glob("*.whl")):
                    bundle.write(wheel, wheel.name)  # wheels are zips already: store
            shutil.rmtree(tmp / "wheels")
            os.replace(tmp, target_dir)  # atomic: a half-downloaded dir is never picked up
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return archive


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
