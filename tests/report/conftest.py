"""Fixtures for the report tests: synthetic run folders (FAKE data, known shapes)."""

from __future__ import annotations

import pytest

from inferops.report import synthetic

#: two profiles swept against the same SLO; numbers chosen so no step's P99
#: sits within a few % of the SLO (histogram quantisation cannot flip a verdict)
SLO_MS = 50.0
PROFILES = {
    "cpu-batching": {"capacity_qps": 300.0, "base_ms": 3.0},
    "cpu-batch-1": {"capacity_qps": 120.0, "base_ms": 5.0},
}


@pytest.fixture(scope="session")
def sweeps(tmp_path_factory):
    """{profile: path} of synthetic sweep folders, written once per test session."""
    root = tmp_path_factory.mktemp("sweeps")
    return {
        name: synthetic.write_sweep(root / name, profile=name, slo_p99_ms=SLO_MS, **params)
        for name, params in PROFILES.items()
    }


@pytest.fixture
def make_sweep(tmp_path):
    """Write a synthetic sweep under tmp_path: ``make_sweep("name", **write_sweep kwargs)``."""

    def make(name: str, **kwargs):
        kwargs.setdefault("profile", name)
        return synthetic.write_sweep(tmp_path / name, **kwargs)

    return make
