"""The wheelhouse: the lock's wheels downloaded once on the control machine and shipped.

``build_wheelhouse`` runs the real ``pip download`` against a local find-links
directory (no network) holding hand-made wheels; the operation-level tests use the
deploy harness with a FAKE ``build_wheelhouse`` (no download) to show what a host
gets: one zip upload and an install with ``--no-index``, only when the lock is not
installed yet.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
from pyinfra.api.exceptions import PyinfraError

from inferops.deploy import artifacts, locks
from inferops.deploy.python_env import python_env
from tests.deploy.harness import run
from tests.deploy.profiles import merge, profile

DEBIAN12 = {
    "version": "3.11.2",
    "implementation": "CPython",
    "machine": "x86_64",
    "libc": "glibc",
    "libc_version": "2.36",
}
VENV_PYTHON = "python=/opt/inferops/venv/bin/python"


def test_lock_entries_are_chosen_for_the_host_interpreter():
    text = locks.lock_path("onnxruntime", True).read_text()
    for version, numpy in (("3.10.12", "2.2.6"), ("3.11.2", "2.4.6"), ("3.12.3", "2.5.5")):
        found = artifacts.wheelhouse_requirements(text, {**DEBIAN12, "version": version})
        assert f"numpy=={numpy} --hash=sha256:" in "\n".join(found), version
        assert all(";" not in entry for entry in found)  # markers evaluated, not passed on
        assert all("--hash=sha256:" in entry for entry in found)
        assert not [e for e in found if e.startswith("pyreadline3")]  # win32 only


def test_platform_tags_cover_older_manylinux_and_refuse_the_rest():
    tags = artifacts.wheel_platforms(DEBIAN12)
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_28_x86_64" in tags
    assert {"manylinux_2_5_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert artifacts.wheel_platforms({**DEBIAN12, "libc": "", "libc_version": ""}) is None
    assert artifacts.wheel_platforms({**DEBIAN12, "implementation": "PyPy"}) is None


def _wheel(directory: Path, name: str, version: str) -> Path:
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        info = f"{name}-{version}.dist-info"
        whl.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        whl.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        whl.writestr(f"{info}/RECORD", "")
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def index(tmp_path):
    links = tmp_path / "links"
    links.mkdir()
    return links, _wheel(links, "tinypkg", "1.0"), _wheel(links, "oldonly", "2.0")


def test_build_downloads_the_applying_wheels_hash_checked_and_caches(index, tmp_path):
    links, tiny, old = index
    lock = (
        f"tinypkg==1.0 \\\n    --hash=sha256:{_sha(tiny)}\n"
        f"oldonly==2.0 ; python_full_version < '3.0' \\\n    --hash=sha256:{_sha(old)}\n"
    )
    options = ["--no-index", "--find-links", str(links)]
    archive = artifacts.build_wheelhouse(lock, DEBIAN12, options, cache=tmp_path / "cache")
    with zipfile.ZipFile(archive) as bundle:
        assert bundle.namelist() == [tiny.name]
        assert hashlib.sha256(bundle.read(tiny.name)).hexdigest() == _sha(tiny)
    tiny.unlink()  # a second build for the same lock and platform never downloads
    assert artifacts.build_wheelhouse(lock, DEBIAN12, options, tmp_path / "cache") == archive


def test_a_wheel_that_does_not_match_the_lock_is_refused(index, tmp_path):
    links, tiny, _ = index
    lock = f"tinypkg==1.0 \\\n    --hash=sha256:{'0' * 64}\n"
    options = ["--no-index", "--find-links", str(links)]
    with pytest.raises(PyinfraError, match="downloading the wheelhouse failed"):
        artifacts.build_wheelhouse(lock, DEBIAN12, options, cache=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*/wheelhouse.zip"))  # nothing half-made kept


@pytest.fixture
def fake_build(monkeypatch, tmp_path):
    """FAKE build_wheelhouse: records its calls, returns a local zip, downloads nothing."""
    calls = []
    archive = tmp_path / "wheelhouse.zip"
    archive.write_bytes(b"not downloaded")

    def build(lock_text, target, pip_options=None, cache=None):
        calls.append((target, pip_options))
        return archive

    monkeypatch.setattr(artifacts, "build_wheelhouse", build)
    return calls, archive


def _python_env(facts: dict, data: dict | None = None):
    return run([python_env], merge(profile("debian12"), facts), data or {})


def test_a_fresh_host_gets_one_zip_and_installs_without_an_index(fake_build):
    calls, archive = fake_build
    result = _python_env(
        {"PythonPlatform": {VENV_PYTHON: DEBIAN12}},
        {"pip_index_url": "https://mirror.example/simple"},
    )
    install = result.op("Install server requirements")
    remote = install.commands[0].split(" -> ")[1]
    assert install.commands[0] == f"upload {archive} -> {remote}"
    assert remote.startswith("/opt/inferops/wheelhouse-") and remote.endswith(".zip")
    assert "-m zipfile -e" in install.commands[1]
    assert "install --no-index --find-links" in install.commands[1]
    assert "--require-hashes -r /opt/inferops/requirements.lock.txt" in install.commands[1]
    assert f'rm -rf "$d" {remote}' in install.commands[1]  # nothing left on the host
    # pyinfra may evaluate an operation more than once (prepare, execute): the build is cached.
    assert calls and set(map(repr, calls)) == {
        repr((DEBIAN12, ["--index-url", "https://mirror.example/simple"]))
    }


def test_a_converged_host_never_builds_or_uploads_the_wheelhouse(fake_build):
    calls, _ = fake_build
    text = locks.lock_path("onnxruntime", True).read_text()
    pins = locks.unconditional_pins(text)
    result = _python_env(
        {
            "PythonPlatform": {VENV_PYTHON: DEBIAN12},
            "PipFreeze": {"pip=/opt/inferops/venv/bin/pip": pins},
            "FileText": {
                "path=/opt/inferops/venv/.inferops-requirements.sha256": hashlib.sha256(
                    text.encode()
                ).hexdigest()
            },
        },
        {"openvino": True},
    )
    assert not result.op("Install server requirements").commands
    assert calls == []


@pytest.mark.parametrize(
    "facts",
    [{}, {"PythonPlatform": {VENV_PYTHON: {**DEBIAN12, "libc": "", "libc_version": ""}}}],
    ids=["interpreter-not-there-yet", "musl"],
)
def test_without_a_wheelhouse_the_host_installs_from_its_index(fake_build, facts):
    calls, _ = fake_build
    result = _python_env(facts)
    install = result.op("Install server requirements")
    assert install.commands == [
        install.commands[0]  # the plain index install, exactly as before the wheelhouse
    ] and install.commands[0].startswith(
        "/opt/inferops/venv/bin/pip install --require-hashes -r /opt/inferops/requirements.lock.txt"
    )
    assert calls == []


def test_pip_wheelhouse_false_keeps_the_index_install(fake_build):
    calls, _ = fake_build
    result = _python_env({"PythonPlatform": {VENV_PYTHON: DEBIAN12}}, {"pip_wheelhouse": False})
    assert not result.ops_with("--no-index") and calls == []
