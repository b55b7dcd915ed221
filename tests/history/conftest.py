"""Fixtures for the history tests: synthetic run folders and a real PostgreSQL cluster."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def inferops(*args: str, env: dict | None = None, cwd=None, timeout: float = 120):
    """``python -m inferops ARGS`` as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "inferops", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=cwd or ROOT,
    )


@pytest.fixture(autouse=True)
def no_process_left_behind():
    """Fail a test that leaves a process it started running (and stop that process).

    Nightly end-to-end tests start ``inferops serve`` and ``inferops nightly`` (which
    starts bench, which starts a sampler): a descendant of this process that is new
    since the test began and still alive a few seconds after it ended is a leak. It
    is killed with its process group, then reported.
    """
    import psutil

    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield

    def left() -> list:
        alive = []
        for proc in me.children(recursive=True):
            try:
                if proc.pid not in before and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.NoSuchProcess:
                pass
        return alive

    deadline = time.monotonic() + 5  # a child told to stop may take a moment to exit
    while (leaked := left()) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not leaked:
        return
    names = []
    for proc in leaked:
        try:
            names.append(f"{proc.pid}: {' '.join(proc.cmdline())[:160]}")
            group = os.getpgid(proc.pid)
            if group == os.getpgrp():  # in pytest's own group: that process alone
                proc.kill()
            else:
                os.killpg(group, signal.SIGKILL)
            proc.wait(5)
        except (psutil.Error, ProcessLookupError, PermissionError):
            pass
    pytest.fail("the test left processes running (now killed):\n" + "\n".join(names))


@pytest.fixture
def store_path(tmp_path) -> Path:
    return tmp_path / "history.sqlite"


@pytest.fixture(scope="session")
def folders(tmp_path_factory):
    """Twelve synthetic nights: 0-9 at scale 1.0 (commit a…), 10-11 at +12 % (commit b…)."""
    from inferops.history.synthetic import write_synthetic_run

    root = tmp_path_factory.mktemp("nights")
    out = []
    for n in range(12):
        out.append(
            write_synthetic_run(
                root / f"night{n:02d}",
                seed=n,
                night=n,
                scale=1.12 if n >= 10 else 1.0,
                git_sha=("a" * 40) if n < 10 else ("b" * 40),
            )
        )
    return out


# -- a throwaway PostgreSQL cluster -------------------------------------------------------
def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if not found:
        pytest.fail(
            f"PostgreSQL's {name} not found: install the Debian package postgresql "
            "(scripts/install-system-deps)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server on 127.0.0.1 in a temp dir, as a non-root user; torn down after.

    Yields a function ``url(dbname)`` that creates the database and returns its URL.
    """
    # not under pytest's basetemp: that is 0700 root-owned, and postgres must traverse it
    base = Path(tempfile.mkdtemp(prefix="inferops-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root: use the package's user
        user = "postgres"
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            pytest.fail("running as root and there is no 'postgres' user to run PostgreSQL as")
        for p in (base, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", user, "--"]
    port = _free_port()
    subprocess.run(
        [
            *run_as,
            _pg_bin("initdb"),
            "-D",
            str(data),
            "-U",
            "inferops",
            "-A",
            "trust",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    log = base / "pg.log"
    subprocess.run(
        [
            *run_as,
            _pg_bin("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-t",
            "60",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off",
            "start",
        ],  # fmt: skip
        check=True,
        capture_output=True,
        timeout=90,
    )
    import psycopg

    admin = f"postgresql://inferops@127.0.0.1:{port}/postgres"
    created = []

    def url(dbname: str) -> str:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
            conn.execute(f'CREATE DATABASE "{dbname}"')
        created.append(dbname)
        return f"postgresql://inferops@127.0.0.1:{port}/{dbname}"

    try:
        yield url
    finally:
        subprocess.run(
            [*run_as, _pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        deadline = time.time() + 10
        while (data / "postmaster.pid").exists() and time.time() < deadline:
            time.sleep(0.1)
        shutil.rmtree(base, ignore_errors=True)
