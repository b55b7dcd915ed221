"""``inferops model optimize|compare`` as a user runs them: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def inferops(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "inferops", "model", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd,
    )


def assert_usage_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, never a traceback
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_optimize_and_compare_end_to_end(tmp_path):
    out = tmp_path / "mlp-int8.onnx"
    made = inferops("optimize", "mlp", "--to", "int8-static", "--out", out)
    assert made.returncode == 0, made.stderr
    last = made.stdout.strip().splitlines()[-1]
    assert last.endswith(f"written to {out}, recipe in {tmp_path / 'mlp-int8.profile.json'}")
    assert "avx" in made.stdout.splitlines()[0] or "no AVX" in made.stdout.splitlines()[0]
    assert (tmp_path / "mlp-int8.profile.json").is_file()
    record_path = tmp_path / "accuracy.json"
    cmp = inferops("compare", "mlp", out, "--samples", "200", "--json", "--out", record_path)
    assert cmp.returncode == 0, cmp.stderr
    assert cmp.stdout.strip().splitlines()[-1] == f"accuracy record written to {record_path}"
    record = json.loads(record_path.read_text())
    assert record["samples"]["count"] == 200 and record["agreement"]["metric"] == "top1"
    printed = json.loads(cmp.stdout[: cmp.stdout.rindex("}") + 1])
    assert printed == record
    human = inferops("compare", "mlp", out, "--samples", "50")
    assert (
        human.returncode == 0
        and "top-1 agreement" in human.stdout
        and "lowest SQNR" in human.stdout
    )


def test_compare_reads_a_samples_file(tmp_path):
    np.save(
        tmp_path / "s.npy", np.random.RandomState(3).uniform(-1, 1, (40, 64)).astype(np.float32)
    )
    ov = inferops("optimize", "mlp", "--to", "openvino", "--out", tmp_path)
    assert ov.returncode == 0, ov.stderr
    cmp = inferops(
        "compare", "mlp", tmp_path / "mlp-openvino.xml", "--samples", tmp_path / "s.npy", "--json"
    )
    assert cmp.returncode == 0, cmp.stderr
    record = json.loads(cmp.stdout)
    assert record["samples"] == {
        **record["samples"],
        "count": 40,
        "source": str(tmp_path / "s.npy"),
    }
    assert record["candidate"]["engine"] == "openvino"
    assert record["outputs"]["logits"]["max_abs_error"] < 1e-4


def test_bad_source_model_exits_2(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not a protobuf")
    assert_usage_error(
        inferops("optimize", bad, "--to", "int8-dynamic", "--out", tmp_path / "o.onnx"),
        "not a valid ONNX model",
    )
    assert_usage_error(
        inferops("optimize", tmp_path / "none.onnx", "--to", "openvino"), "no such file"
    )
    assert not (tmp_path / "o.onnx").exists()
    assert_usage_error(inferops("compare", bad, "mlp", "--samples", "4"), "not an ONNX model")
    (tmp_path / "broken.xml").write_text("<net>")
    assert_usage_error(
        inferops("compare", "mlp", tmp_path / "broken.xml", "--samples", "4"), "not an OpenVINO IR"
    )


def test_wrong_shape_calibration_exits_2_and_writes_nothing(tmp_path):
    np.save(tmp_path / "cal.npy", np.zeros((16, 32), np.float32))  # mlp takes 64 features
    out = tmp_path / "mlp-int8.onnx"
    out.write_bytes(b"previous profile")
    result = inferops(
        "optimize",
        "mlp",
        "--to",
        "int8-static",
        "--calibration",
        tmp_path / "cal.npy",
        "--out",
        out,
    )
    assert_usage_error(result, "samples have shape 32 (array 16x32), the model expects N x 64")
    assert out.read_bytes() == b"previous profile"  # nothing lost
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cal.npy",
        "mlp-int8.onnx",
    ]  # no leftovers


@pytest.mark.parametrize(
    "args, message",
    [
        (["optimize", "mlp", "--to", "tensorrt"], "needs an NVIDIA GPU with TensorRT"),
        (["optimize", "mlp", "--to", "int8-static", "--out", "x.xml"], "written as a .onnx file"),
        (["optimize", "mlp", "--to", "openvino", "--out", "x.onnx"], "written as a .xml file"),
        (
            ["optimize", "mlp", "--to", "int8-dynamic", "--calibration-method", "Entropy"],
            "int8-static only",
        ),
        (
            ["optimize", "mlp", "--to", "openvino", "--calibration", "c.npy"],
            "applies to int8-static",
        ),
        (
            ["optimize", "mlp", "--to", "int8-dynamic", "--activation-type", "int8"],
            "int8-static only",
        ),
        (["optimize", "mlp", "--to", "openvino", "--per-channel", "on"], "int8-static only"),
        (["optimize", "mlp", "--to", "openvino-int8", "--op-types", "Conv"], "not openvino-int8"),
        (
            [
                "optimize",
                "mlp",
                "--to",
                "int8-static",
                "--calibration",
                "c.npy",
                "--calibration-samples",
                "9",
            ],
            "cannot go with --calibration",
        ),
        (["optimize", "mlp", "--to", "int8-fancy"], "invalid choice"),
        (["optimize", "mlp", "--to", "int8-static", "--calibration-samples", "0"], "at least 1"),
        (["compare", "mlp", "nowhere.onnx", "--samples", "10"], "no such file"),
        (
            ["compare", "mlp", "cnn", "--samples", "10"],
            "'input' is ?x64 in the reference, ?x3x64x64",
        ),
        (["compare", "mlp", "mlp", "--samples", "0"], "at least 1"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, args, message):
    assert_usage_error(inferops(*args, cwd=tmp_path), message)
    assert list(tmp_path.iterdir()) == []


def test_user_model_needs_a_calibration_file(tmp_path):
    built = inferops("build", "mlp", "--out", tmp_path / "user.onnx")
    assert built.returncode == 0
    assert_usage_error(
        inferops(
            "optimize", tmp_path / "user.onnx", "--to", "int8-static", "--out", tmp_path / "q.onnx"
        ),
        "needs --calibration FILE",
    )


def test_compare_samples_file_of_wrong_shape_exits_2(tmp_path):
    (tmp_path / "s.jsonl").write_text(json.dumps({"input": [0.5] * 10}) + "\n")
    assert_usage_error(
        inferops("compare", "mlp", "mlp", "--samples", tmp_path / "s.jsonl"),
        "the model expects N x 64",
    )
