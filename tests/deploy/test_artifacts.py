"""Control-machine artifacts are cached so a second run uploads identical bytes."""

from __future__ import annotations

import stat

from inferops.deploy import artifacts


def test_token_is_generated_once_and_private(tmp_path):
    first = artifacts.ensure_token("10.0.0.1", tmp_path / "tokens")
    second = artifacts.ensure_token("10.0.0.1", tmp_path / "tokens")
    other = artifacts.ensure_token("10.0.0.2", tmp_path / "tokens")
    assert first == second
    assert first.read_text() == second.read_text()
    assert first.read_text() != other.read_text()
    assert len(first.read_text().strip()) >= 40
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tokens").stat().st_mode) == 0o700


def test_state_dir_keeps_secrets_out_of_git(tmp_path, monkeypatch):
    monkeypatch.setenv("INFEROPS_STATE_DIR", str(tmp_path / "st"))
    path = artifacts.ensure_token("h")
    assert path.parent == tmp_path / "st" / "tokens"
    assert (tmp_path / "st" / ".gitignore").read_text() == "*\n"


def test_source_digest_follows_content(tmp_path):
    (tmp_path / "inferops").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    module = tmp_path / "inferops" / "a.py"
    module.write_text("x = 1\n")
    before = artifacts.source_digest(tmp_path)
    assert artifacts.source_digest(tmp_path) == before
    module.write_text("x = 2\n")
    assert artifacts.source_digest(tmp_path) != before


def test_wheel_is_built_once_per_source(tmp_path):
    """A real ``pip wheel`` of this checkout; the second call reuses the same file."""
    cache = tmp_path / "wheels"
    cache.mkdir()
    wheel = artifacts.build_wheel(cache=cache)
    assert wheel.name.startswith("inferops-") and wheel.suffix == ".whl"
    mtime, digest = wheel.stat().st_mtime_ns, artifacts.sha256_file(wheel)
    again = artifacts.build_wheel(cache=cache)
    assert again == wheel
    assert again.stat().st_mtime_ns == mtime and artifacts.sha256_file(again) == digest
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "inferops/deploy/validate.py" in names


def test_embedded_model_is_built_once(tmp_path):
    cache = tmp_path / "models"
    cache.mkdir()
    model = artifacts.build_model("mlp", cache=cache)
    import onnx

    onnx.checker.check_model(onnx.load(model))
    mtime = model.stat().st_mtime_ns
    assert artifacts.build_model("mlp", cache=cache).stat().st_mtime_ns == mtime


def test_readme_edits_do_not_change_the_digest(tmp_path):
    (tmp_path / "inferops").mkdir()
    (tmp_path / "inferops" / "a.py").write_text("x = 1\n")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "README.md").write_text("one\n")
    before = artifacts.source_digest(tmp_path)
    (tmp_path / "README.md").write_text("two\n")
    assert artifacts.source_digest(tmp_path) == before
