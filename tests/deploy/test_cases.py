"""Data-driven operation-level tests: ``cases/<component>/<case>.json`` (facts + data in,
expected commands out), run on a fake host by ``harness.run`` - no host is contacted.

Case keys:

- ``deploys``: component names, in order; ``distro`` / ``arch`` / ``gpu``: the fact profile;
  ``facts``: extra facts over the profile; ``data``: host data (knobs);
  ``assume_unchanged``: op-name fragments simulated as "nothing to do";
- ``expect``:
  ``commands`` (fragments that must appear in some command), ``no_commands``,
  ``ran`` / ``skipped`` (op-name fragments: produced commands / produced none),
  ``absent_ops``, ``noops`` (fragments of no-op messages), ``env`` ({op fragment:
  {var: value}}), ``no_env`` (op fragments whose env must be empty), ``uploads``
  ({remote path: [fragments of the rendered file]}), ``no_uploads`` ({path: [fragments]}),
  ``order`` (fragments whose first matching commands appear in this order),
  ``error`` (fragment of the PyinfraError raised before any change).

``$MODEL`` / ``$WHEEL`` become the fixture paths, ``$WHEEL_SHA256`` the wheel's digest,
``$TOKEN_SHA256`` the digest of the host's bearer token (generated before the run),
``$REPO`` the checkout; ``$SHA256(<lock>)`` is the sha256 of a shipped requirements lock
and a fact ``{"$PINS": "<lock>"}`` becomes that lock's unconditional pins (a converged env).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from pyinfra.api.exceptions import PyinfraError

from inferops.deploy import locks
from inferops.deploy.accelerators import accelerators
from inferops.deploy.artifacts import ensure_token, sha256_file
from inferops.deploy.base import base
from inferops.deploy.container_toolkit import container_toolkit
from inferops.deploy.cuda import cuda
from inferops.deploy.dcgm_exporter import dcgm_exporter
from inferops.deploy.grafana import grafana
from inferops.deploy.inference_server import inference_server
from inferops.deploy.nightly import nightly
from inferops.deploy.node_exporter import node_exporter
from inferops.deploy.nvidia_driver import nvidia_driver
from inferops.deploy.prometheus import prometheus
from inferops.deploy.python_env import python_env

from .harness import run
from .profiles import merge, profile

COMPONENTS = {
    "base": base,
    "nvidia_driver": nvidia_driver,
    "cuda": cuda,
    "container_toolkit": container_toolkit,
    "python_env": python_env,
    "accelerators": accelerators,
    "inference_server": inference_server,
    "node_exporter": node_exporter,
    "dcgm_exporter": dcgm_exporter,
    "nightly": nightly,
    "prometheus": prometheus,
    # Grafana: fake hosts only (no Grafana package can be had here), named as such.
    "grafana": grafana,
}

REPO = Path(__file__).resolve().parents[2]
CASES = sorted((Path(__file__).parent / "cases").glob("*/*.json"))


def _lock_text(name: str) -> str:
    return (locks.LOCK_DIR / name).read_text()


def _substitute(value, mapping):
    if isinstance(value, str):
        for key, replacement in mapping.items():
            value = value.replace(key, replacement)
        return re.sub(
            r"\$SHA256\(([\w.-]+)\)",
            lambda m: hashlib.sha256(_lock_text(m.group(1)).encode()).hexdigest(),
            value,
        )
    if isinstance(value, list):
        return [_substitute(v, mapping) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$PINS"}:
            return locks.unconditional_pins(_lock_text(value["$PINS"]))
        return {k: _substitute(v, mapping) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case_path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_case(case_path, tiny_model, fake_wheel):
    case = json.loads(case_path.read_text())
    mapping = {
        "$MODEL": str(tiny_model),
        "$WHEEL_SHA256": sha256_file(fake_wheel),
        "$WHEEL": str(fake_wheel),
        "$TOKEN_SHA256": sha256_file(ensure_token("node1")),
        "$REPO": str(REPO),
    }
    data = {"server_model_path": str(tiny_model), "inferops_wheel": str(fake_wheel)}
    data.update(_substitute(case.get("data", {}), mapping))
    facts = merge(
        profile(case["distro"], case.get("arch", "x86_64"), case.get("gpu", False)),
        _substitute(case.get("facts", {}), mapping),
    )
    deploys = [COMPONENTS[name] for name in case["deploys"]]
    expect = _substitute(case["expect"], mapping)

    if "error" in expect:
        with pytest.raises(PyinfraError) as info:
            run(deploys, facts, data, assume_unchanged=tuple(case.get("assume_unchanged", ())))
        assert expect["error"] in str(info.value)
        return

    result = run(deploys, facts, data, assume_unchanged=tuple(case.get("assume_unchanged", ())))
    listing = "\n".join(f"[{op.name}] {c}" for op in result.ops for c in op.commands)

    for fragment in expect.get("commands", []):
        assert result.has_command(fragment), f"missing command {fragment!r} in:\n{listing}"
    for fragment in expect.get("no_commands", []):
        assert not result.has_command(fragment), f"unexpected {fragment!r} in:\n{listing}"
    for fragment in expect.get("ran", []):
        assert result.op(fragment).commands, f"op {fragment!r} did nothing:\n{listing}"
    for fragment in expect.get("skipped", []):
        op = result.op(fragment)
        assert not op.commands, f"op {fragment!r} ran: {op.commands}"
    for fragment in expect.get("absent_ops", []):
        assert not [op for op in result.ops if fragment in op.name], f"op {fragment!r} exists"
    for fragment in expect.get("noops", []):
        assert any(fragment in n for n in result.noops), f"no noop {fragment!r}: {result.noops}"
    for fragment, env in expect.get("env", {}).items():
        op_env = result.op(fragment).env
        for key, value in env.items():
            assert op_env.get(key) == value, f"{fragment}: env {op_env}"
    for fragment in expect.get("no_env", []):
        assert result.op(fragment).env == {}, f"{fragment}: env {result.op(fragment).env}"
    for path, fragments in expect.get("uploads", {}).items():
        assert path in result.uploads, f"{path} not rendered; rendered: {sorted(result.uploads)}"
        for fragment in fragments:
            assert fragment in result.uploads[path], (
                f"{path} lacks {fragment!r}:\n" + (result.uploads[path])
            )
    for path, fragments in expect.get("no_uploads", {}).items():
        for fragment in fragments:
            assert fragment not in result.uploads.get(path, ""), f"{path} has {fragment!r}"
    if "order" in expect:
        positions = []
        for fragment in expect["order"]:
            found = [i for i, c in enumerate(result.commands) if fragment in c]
            assert found, f"missing {fragment!r} in:\n{listing}"
            positions.append(found[0])
        assert positions == sorted(positions), f"order {expect['order']} broken:\n{listing}"


def test_every_case_asserts_something():
    keys = {"commands", "no_commands", "ran", "skipped", "absent_ops", "noops", "env", "no_env",
            "uploads", "no_uploads", "order", "error"}  # fmt: skip
    assert len(CASES) >= 80
    for path in CASES:
        expect = json.loads(path.read_text())["expect"]
        assert expect and set(expect) <= keys, path
        assert any(expect[k] for k in expect), path
