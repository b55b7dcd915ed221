"""Run the real ``pyinfra`` CLI as a subprocess and read its results table.

pyinfra 3.10 has no machine-readable output, so ``parse_results`` reads the
``--> Results:`` table it prints last: one row per operation with the columns
Hosts / Success / Error / No Change, where "Success" counts hosts on which the
operation *changed* something (unchanged hosts land in "No Change").
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYINFRA = Path(sys.executable).parent / "pyinfra"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_COUNT = r"(\d+|-)"
_ROW = re.compile(rf"^\s*(?P<op>.+?)\s+{_COUNT}\s+{_COUNT}\s+{_COUNT}\s+{_COUNT}\s*$")


@dataclass
class OpResult:
    hosts: int
    changed: int
    errors: int
    unchanged: int


@dataclass
class RunResult:
    returncode: int
    output: str
    seconds: float
    ops: dict[str, OpResult] = field(default_factory=dict)

    @property
    def total(self) -> OpResult | None:
        return self.ops.get("Grand total")

    @property
    def changed_ops(self) -> list[str]:
        return [n for n, r in self.ops.items() if r.changed and n != "Grand total"]

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def _count(text: str) -> int:
    return 0 if text == "-" else int(text)


def parse_results(output: str) -> dict[str, OpResult]:
    """Operation name -> counts, from the ``--> Results:`` table (``{}`` if none printed)."""
    text = _ANSI.sub("", output)
    marker = text.rfind("--> Results:")
    if marker < 0:
        return {}
    ops: dict[str, OpResult] = {}
    for line in text[marker:].splitlines()[1:]:
        if line.startswith("-->"):
            break
        match = _ROW.match(line)
        if match:
            hosts, changed, errors, unchanged = (_count(g) for g in match.groups()[1:])
            ops[match["op"].strip()] = OpResult(hosts, changed, errors, unchanged)
    return ops


def command(inventory: Path | str, *operations: str, options: tuple = ()) -> list[str]:
    return [str(PYINFRA), "-y", *options, str(inventory), *map(str, operations)]


def run(
    inventory: Path | str,
    *operations: str,
    options: tuple = (),
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> RunResult:
    """Run ``pyinfra -y [options] INVENTORY OPERATIONS...`` from the repo root; parse its table."""
    start = time.monotonic()
    proc = subprocess.run(
        command(inventory, *operations, options=options),
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = proc.stdout + proc.stderr
    return RunResult(proc.returncode, output, time.monotonic() - start, parse_results(output))


def run_and_kill(
    inventory: Path | str,
    deploy: Path | str,
    *,
    during: str,
    options: tuple = (),
    grace: float = 5.0,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> tuple[str, int]:
    """Start a deploy and SIGKILL its whole process group in the middle of an operation.

    The kill comes ``grace`` seconds after pyinfra announces the first operation
    whose name contains ``during`` (pick a long one, e.g. a package install), so
    the host is left half-changed, as when a control machine dies. Returns the
    output up to the kill and how many changed operations it reported. Raises if
    the deploy ended before it could be killed.
    """
    proc = subprocess.Popen(
        command(inventory, deploy, options=options),
        cwd=REPO,
        env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    changes = 0
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            clean = _ANSI.sub("", line)
            if re.search(r"\]\s+Success\s*$", clean):
                changes += 1
            if "--> Starting operation" in clean and during in clean:
                time.sleep(grace)
                break
            if time.monotonic() > deadline:
                break
        if proc.poll() is not None:
            raise RuntimeError(
                f"deploy ended (rc={proc.returncode}) before an operation matching {during!r} "
                "could be interrupted:\n" + "".join(lines[-30:])
            )
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()
    return "".join(lines), changes
