"""When the real-host tier may skip, and what it says is missing (no hosts needed)."""

from __future__ import annotations

import os

from tests.hosts import fleet as fleet_module
from tests.hosts.fleet import missing_prerequisites, prerequisite_verdict


def test_skip_only_when_neither_root_nor_ci():
    problems = ["not root"]
    assert prerequisite_verdict(problems, euid=1000, env={}) == "skip"
    assert prerequisite_verdict(problems, euid=1000, env={"CI": "true"}) == "fail"
    assert prerequisite_verdict(["missing tools: nft"], euid=0, env={}) == "fail"
    assert prerequisite_verdict([], euid=1000, env={"CI": "true"}) == "run"


def test_missing_root_and_tools_are_named(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(fleet_module.shutil, "which", lambda tool: None if tool == "nft" else "/x")
    problems = missing_prerequisites()
    assert any(p.startswith("not root") for p in problems)
    assert "missing tools: nft (run `make system-deps` as root)" in problems
