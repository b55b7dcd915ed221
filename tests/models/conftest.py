"""Fixtures for the profile tests: embedded models and their profiles, built once per package run."""

from __future__ import annotations

import os

import pytest

from inferops.models import resolve
from inferops.models.optimize import optimize, suffix_for


@pytest.fixture(scope="package", autouse=True)
def _model_cache(tmp_path_factory):
    """Embedded models resolve into a fresh cache (never the user's ~/.cache), also for subprocesses."""
    old = os.environ.get("INFEROPS_CACHE")
    os.environ["INFEROPS_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("INFEROPS_CACHE", None)
    else:
        os.environ["INFEROPS_CACHE"] = old


@pytest.fixture(scope="package")
def fp32(_model_cache):
    """``fp32(name)`` -> path of the embedded FP32 model in this package's cache (built once)."""
    return lambda name: resolve(name)


@pytest.fixture(scope="package")
def profile(tmp_path_factory):
    """``profile(model, to, **options)`` -> the sidecar record of that profile, built once."""
    root = tmp_path_factory.mktemp("profiles")
    made: dict[tuple, dict] = {}

    def get(model: str, to: str, **options) -> dict:
        key = (model, to, tuple(sorted(options.items())))
        if key not in made:
            out = root / f"{model}-{to}-{len(made)}{suffix_for(to)}"
            made[key] = optimize(model, to, out, **options)
        return made[key]

    return get
