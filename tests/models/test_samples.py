"""Sample files for calibration and comparison: every format read the same, every bad file exits 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inferops.exitcodes import UsageError
from inferops.models import samples

SPECS = [samples.InputSpec("input", np.dtype(np.float32), (-1, 4))]


def test_formats_agree(tmp_path):
    data = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    np.save(tmp_path / "s.npy", data)
    np.savez(tmp_path / "s.npz", input=data)
    lines = [
        json.dumps({"input": data[0].tolist()}),  # one sample, no batch dim
        json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "data": data[1].tolist()}]}),
        json.dumps({"inputs": [data[2].tolist()]}),  # predict body with a batch of 1
    ]
    (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n\n")
    read = [samples.read(tmp_path / f"s.{ext}", SPECS) for ext in ("npy", "npz", "jsonl")]
    for got in read:
        np.testing.assert_array_equal(got["input"], data)
    assert len({samples.digest(r) for r in read}) == 1


def test_digest_changes_with_data():
    a = {"input": np.zeros((2, 4), np.float32)}
    b = {"input": np.zeros((2, 4), np.float32)}
    assert samples.digest(a) == samples.digest(b)
    b["input"][1, 3] = 1e-6
    assert samples.digest(a) != samples.digest(b)


def test_generated_samples_are_seeded_and_bounded():
    a = samples.generate(SPECS, 50, seed=1)
    assert a["input"].shape == (50, 4) and a["input"].dtype == np.float32
    assert np.abs(a["input"]).max() <= 1.0
    np.testing.assert_array_equal(a["input"], samples.generate(SPECS, 50, seed=1)["input"])
    assert samples.CALIBRATION_SEED != samples.EVALUATION_SEED


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda p: np.save(p / "x.npy", np.zeros((5, 3), np.float32)), "the model expects N x 4"),
        (lambda p: np.save(p / "x.npy", np.zeros((4,), np.float32)), "the model expects N x 4"),
        (lambda p: np.save(p / "x.npy", np.zeros((0, 4), np.float32)), "holds no samples"),
        (lambda p: np.save(p / "x.npy", np.full((2, 4), np.nan, np.float32)), "NaN"),
        (lambda p: np.save(p / "x.npy", np.array([["a"] * 4])), "not numbers"),
        (lambda p: np.savez(p / "x.npz", other=np.zeros((2, 4))), "no array for input 'input'"),
        (lambda p: (p / "x.jsonl").write_text('{"input": [1, 2]}\n'), "the model expects N x 4"),
        (lambda p: (p / "x.jsonl").write_text("{not json\n"), "line 1: not JSON"),
        (lambda p: (p / "x.jsonl").write_text('{"nope": [1, 2, 3, 4]}\n'), "no input 'nope'"),
        (
            lambda p: (p / "x.jsonl").write_text('{"input": ["a", "b", "c", "d"]}\n'),
            "not a numeric",
        ),
        (lambda p: (p / "x.csv").write_text("1,2,3,4\n"), "unknown format"),
        (lambda p: (p / "x.npy").write_bytes(b"garbage"), "unreadable"),
    ],
)
def test_bad_files_are_usage_errors(tmp_path, write, message):
    write(tmp_path)
    (path,) = tmp_path.iterdir()
    with pytest.raises(UsageError, match=message) as err:
        samples.read(path, SPECS, "calibration")
    assert str(err.value).startswith(f"calibration file {path}")
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        samples.read(tmp_path / "none.npy", SPECS)


def test_npy_for_a_two_input_model_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 4), np.float32))
    two = [*SPECS, samples.InputSpec("mask", np.dtype(np.int64), (-1, 4))]
    with pytest.raises(UsageError, match="feeds one input"):
        samples.read(tmp_path / "x.npy", two)


def test_generated_sample_sets_are_bounded():
    big = [samples.InputSpec("input", np.dtype(np.float32), (-1, 4096))]
    with pytest.raises(UsageError, match="MiB: ask for fewer"):
        samples.generate(big, 10**6, seed=1)
