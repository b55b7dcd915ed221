"""Versioned model storage: operation-level cases (fake host, facts in -> commands out),
and the fact's and the switch's shell run for real on a local directory tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pyinfra.api.exceptions import PyinfraError

from inferops.deploy import model_store
from inferops.deploy.artifacts import sha256_file
from inferops.deploy.inference_server import inference_server

from .harness import run
from .profiles import profile

STORE = "/opt/inferops/models/tiny"
# converged except for the model: the rest of the component is simulated as unchanged
OTHERS = (
    "Write /etc/systemd/system/inferops-server.service",
    "Write /etc/inferops/server.env",
    "Install the inferops wheel",
    "Upload the bearer token",
    "Enable and start",
)


def _deploy(tiny_model, fake_wheel, versions: dict | None, **data):
    facts = profile("debian12", "x86_64", False)
    if versions is not None:
        facts = {**facts, "ModelVersions": {f"path={STORE}": versions}}
    knobs = {"server_model_path": str(tiny_model), "inferops_wheel": str(fake_wheel), **data}
    return run([inference_server], facts, knobs, assume_unchanged=OTHERS)


def _listing(result) -> str:
    return "\n".join(f"[{op.name}] {c}" for op in result.ops for c in op.commands)


def test_a_new_version_is_stored_verified_then_linked(tiny_model, fake_wheel):
    sha = sha256_file(tiny_model)
    target = f"v2-{sha[:12]}"
    old = {"current": "v1-aaaaaaaaaaaa", "stored": {"v1-aaaaaaaaaaaa": 100}}
    result = _deploy(tiny_model, fake_wheel, old, server_model_version="v2")
    store = result.op("Store model version").commands
    assert store[0] == f"install -d -o root -g inferops -m 750 {STORE}/{target}"
    assert store[1].endswith(f"-> {STORE}/{target}/model.onnx.part")
    # the file becomes model.onnx only once its sha256 matched on the host
    assert f"{sha}  {STORE}/{target}/model.onnx.part" in store[2]
    assert store[2].index("sha256sum -c") < store[2].index(
        f"mv -f {STORE}/{target}/model.onnx.part"
    )
    switch = result.op("Serve model version").commands
    assert switch[-1] == (
        f"ln -sfn {target} {STORE}/.current.tmp && mv -T {STORE}/.current.tmp {STORE}/current"
    )
    assert result.op("Restart inferops-server").commands, _listing(result)
    assert not result.op("Reload systemd").commands  # the unit did not change
    # the store comes before the switch, and the switch before the restart
    order = [op.name for op in result.ops if op.commands]
    assert order.index(next(n for n in order if "Store model" in n)) < order.index(
        next(n for n in order if "Serve model" in n)
    )


def test_already_served_version_changes_nothing(tiny_model, fake_wheel):
    target = model_store.version_dir("v2", sha256_file(tiny_model))
    here = {"current": target, "stored": {target: 200, "v1-aaaaaaaaaaaa": 100}}
    result = _deploy(tiny_model, fake_wheel, here, server_model_version="v2")
    for op in ("Store model version", "Serve model version", "Restart", "Check", "Keep 3"):
        assert not result.op(op).commands, _listing(result)
    assert any(f"{target} already stored" in n for n in result.noops)
    assert any(f"already points at {target}" in n for n in result.noops)


def test_rollback_to_a_stored_version_is_a_flip_and_a_restart(tiny_model, fake_wheel):
    """The inventory's version is still on the host: nothing is uploaded."""
    previous = model_store.version_dir(None, sha256_file(tiny_model))
    after_canary = {"current": "v2-bbbbbbbbbbbb", "stored": {previous: 100, "v2-bbbbbbbbbbbb": 200}}
    result = _deploy(tiny_model, fake_wheel, after_canary)
    assert not result.op("Store model version").commands
    assert not any("upload" in c for c in result.commands if "model" in c), _listing(result)
    assert result.op("Serve model version").commands[-1].startswith(f"ln -sfn {previous} ")
    assert result.op("Restart inferops-server").commands
    assert result.op("Check inferops-server is up").commands


def test_a_version_label_names_one_content(tiny_model, fake_wheel):
    clash = {"current": "v2-cccccccccccc", "stored": {"v2-cccccccccccc": 100}}
    with pytest.raises(PyinfraError, match="'v2' is already stored as v2-cccccccccccc"):
        _deploy(tiny_model, fake_wheel, clash, server_model_version="v2")


def test_rollout_source_overrides_the_file_and_keeps_the_served_name(
    tiny_model, fake_wheel, tmp_path
):
    new = tmp_path / "new-model.onnx"
    new.write_bytes(tiny_model.read_bytes() + b"\n")  # other bytes, other sha
    result = _deploy(
        tiny_model, fake_wheel, None, server_model_version="v9", server_model_source=str(new)
    )
    target = model_store.version_dir("v9", sha256_file(new))
    assert result.op("Store model version").commands[1] == (
        f"upload {new} -> {STORE}/{target}/model.onnx.part"
    )


def test_old_versions_pruned_beyond_keep_never_the_served_one(tiny_model, fake_wheel):
    target = model_store.version_dir(None, sha256_file(tiny_model))
    stored = {"a-111111111111": 10, "b-222222222222": 20, "c-333333333333": 30, target: 5}
    here = {"current": "c-333333333333", "stored": stored}
    result = _deploy(tiny_model, fake_wheel, here, server_model_keep=3)
    prune = result.op("Keep 3 model versions").commands
    # target (switched to now) + the two most recently served stay; the oldest goes
    assert prune == [f"rm -rf -- {STORE}/a-111111111111"]
    assert result.op("Serve model version").commands  # it is the served one from now on


def test_versions_to_remove_keeps_the_most_recent():
    stored = {"a": 1, "b": 2, "c": 3, "d": 4}
    assert model_store.versions_to_remove(stored, 2, {"a"}) == ["b", "c"]
    assert model_store.versions_to_remove(stored, 4, set()) == []
    assert model_store.versions_to_remove(stored, 2, {"d"}) == ["a", "b"]


def test_keep_below_two_is_refused():
    from inferops.deploy.knobs import declared

    assert declared("server_model_keep").check(1)
    assert declared("server_model_version").check("v1/../x")
    assert not declared("server_model_version").check("2024.06.1+rc1")


def test_parse_version_dir():
    assert model_store.parse_version_dir("v2-0123456789ab") == ("v2", "0123456789ab")
    assert model_store.parse_version_dir("0123456789ab") == (None, "0123456789ab")
    assert model_store.parse_version_dir("current") is None
    assert model_store.parse_version_dir("v2-0123") is None


# -- the shell itself, run on a real directory tree ------------------------------------


@pytest.fixture()
def tree(tmp_path) -> Path:
    store = tmp_path / "store"
    for name in ("v1-aaaaaaaaaaaa", "v2-bbbbbbbbbbbb"):
        (store / name).mkdir(parents=True)
        (store / name / "model.onnx").write_bytes(b"x")
    (store / "v3-cccccccccccc").mkdir()  # interrupted upload: only the .part file
    (store / "v3-cccccccccccc" / "model.onnx.part").write_bytes(b"partial")
    return store


def _fact(store: Path) -> dict:
    fact = model_store.ModelVersions()
    out = subprocess.run(
        ["sh", "-c", fact.command(str(store))], capture_output=True, text=True, check=True
    )
    return fact.process(out.stdout.splitlines())


def test_fact_on_a_real_tree_ignores_incomplete_versions(tree):
    found = _fact(tree)
    assert found["current"] is None
    assert set(found["stored"]) == {"v1-aaaaaaaaaaaa", "v2-bbbbbbbbbbbb"}
    assert _fact(tree.parent / "absent") == {"current": None, "stored": {}}


def test_switch_commands_on_a_real_tree_replace_the_link(tree, tiny_model, fake_wheel):
    """The operation's own commands, pointed at a local tree, flip ``current`` back and forth."""
    target = model_store.version_dir(None, sha256_file(tiny_model))
    (tree / target).mkdir()
    (tree / target / "model.onnx").write_bytes(b"y")
    for current in (None, "v1-aaaaaaaaaaaa", "v2-bbbbbbbbbbbb"):
        if current:  # some other version is live: the deploy must take current back
            subprocess.run(["ln", "-sfn", current, str(tree / "current")], check=True)
        versions = {"current": current, "stored": {target: 1, "v1-aaaaaaaaaaaa": 1}}
        commands = _deploy(tiny_model, fake_wheel, versions).op("Serve model version").commands
        for command in commands:
            subprocess.run(["sh", "-c", command.replace(STORE, str(tree))], check=True)
        assert (tree / "current").is_symlink()
        assert (tree / "current").resolve() == (tree / target).resolve()
        assert _fact(tree)["current"] == target
        # no link left inside a version, no temporary name left behind
        assert [p.name for p in tree.rglob("*") if p.is_symlink()] == ["current"]
        assert not (tree / ".current.tmp").exists()
