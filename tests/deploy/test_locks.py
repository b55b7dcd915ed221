"""The Python requirements installed on hosts are pinned with hashes, and the locks are
current with ``pyproject.toml`` (regenerate: ``python -m inferops.deploy.locks``)."""

from __future__ import annotations

import re

import pytest
from packaging.requirements import Requirement

from inferops.deploy import locks

COMBINATIONS = locks.combinations()


def _entries(text: str) -> list[str]:
    """One string per requirement entry (its line plus its --hash continuation lines)."""
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return [e for e in re.split(r"\n(?=[A-Za-z0-9])", body.strip()) if e.strip()]


def test_shipped_locks_are_current_with_pyproject():
    assert locks.stale_locks() == [], "run: python -m inferops.deploy.locks"
    assert locks.main(["--check"]) == 0


def test_a_changed_pyproject_makes_every_lock_stale(tmp_path):
    changed = tmp_path / "pyproject.toml"
    changed.write_text(re.sub(r'"numpy[^"]*"', '"numpy>=1.0,<99"', locks.PYPROJECT.read_text()))
    assert changed.read_text() != locks.PYPROJECT.read_text()
    assert len(locks.stale_locks(changed)) == len(COMBINATIONS)


@pytest.mark.parametrize("flavour, openvino", COMBINATIONS)
def test_every_entry_is_pinned_with_hashes(flavour, openvino):
    text = locks.lock_path(flavour, openvino).read_text()
    entries = _entries(text)
    assert len(entries) > 20
    for entry in entries:
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+", entry), entry.splitlines()[0]
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), entry.splitlines()[0]


@pytest.mark.parametrize("flavour, openvino", COMBINATIONS)
def test_every_pyproject_requirement_is_locked_within_its_bounds(flavour, openvino):
    pins = locks.all_pins(locks.lock_path(flavour, openvino).read_text())
    for spec in locks.lock_inputs(flavour, openvino):
        requirement = Requirement(spec)
        versions = pins.get(locks.normalize(requirement.name))
        assert versions, f"{requirement.name} not in the lock"
        for version in versions:
            assert requirement.specifier.contains(version, prereleases=True), (spec, version)
    other = "onnxruntime" if flavour == "onnxruntime-gpu" else "onnxruntime-gpu"
    assert other not in pins  # the conflicting flavour is never locked alongside
    assert ("openvino" in pins) == openvino
