"""NVIDIA's ``tritonclient[http]`` against a real ``inferops serve``: Triton's own client
reads the model configuration, statistics and repository index, and infers with JSON and
binary tensors, sync, async and asyncio. Counts in the statistics are checked exactly."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from inferops.server.process import ServerProcess

pytestmark = pytest.mark.slow

#: Inference calls the session makes: sync, async and aio, each with JSON and binary tensors.
CALLS = 6
ROWS = 3


@pytest.fixture(scope="module")
def session(model_dir, cache_env):
    with ServerProcess(
        model_dir / "mlp.onnx", max_batch_size=8, max_queue_delay_ms=1.5, env=cache_env
    ) as server:
        host_port = server.url.removeprefix("http://")
        run = subprocess.run(
            [sys.executable, "-m", "tests.server.tritonclient_session", host_port, "mlp"],
            capture_output=True,
            text=True,
            timeout=120,
            env=cache_env,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def test_health_and_metadata(session):
    assert session["live"] and session["ready"]
    extensions = session["server_metadata"]["extensions"]
    for ext in ("binary_tensor_data", "model_configuration", "statistics", "model_repository"):
        assert ext in extensions
    assert session["model_metadata"]["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, 64]}
    ]


def test_model_configuration(session):
    config = session["config"]
    assert config["name"] == "mlp" and config["platform"] == "onnxruntime_onnx"
    assert config["backend"] == "onnxruntime"
    assert config["max_batch_size"] == 8
    # with max_batch_size > 0, Triton's dims leave out the batch dimension
    assert config["input"] == [
        {
            "name": "input",
            "data_type": "TYPE_FP32",
            "dims": [64],
            "format": "FORMAT_NONE",
            "is_shape_tensor": False,
            "allow_ragged_batch": False,
            "optional": False,
        }
    ]
    assert [(o["name"], o["data_type"], o["dims"]) for o in config["output"]] == [
        ("logits", "TYPE_FP32", [10])
    ]
    batching = config["dynamic_batching"]
    assert batching["max_queue_delay_microseconds"] == 1500
    assert batching["default_queue_policy"]["max_queue_size"] == 256
    assert config["instance_group"][0]["kind"] == "KIND_CPU"
    assert session["aio_config"] == config


def test_repository_index(session):
    assert session["index"] == [{"name": "mlp", "version": "1", "state": "READY", "reason": ""}]


def test_every_client_mode_gets_the_engines_answer(session, model_dir):
    reference = ort.InferenceSession(
        str(model_dir / "mlp.onnx"), providers=["CPUExecutionProvider"]
    )
    x = np.asarray(session["input"], np.float32)
    want = reference.run(None, {"input": x})[0]
    for mode in ("sync", "async", "aio"):
        for encoding in ("json", "binary"):
            got = np.asarray(session[f"{mode}_{encoding}"], np.float32)
            np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"{mode} {encoding}")


def test_statistics_count_what_was_sent(session):
    (stat,) = session["stats"]["model_stats"]
    assert stat["name"] == "mlp" and stat["version"] == "1"
    assert stat["inference_count"] == CALLS * ROWS  # rows, as Triton counts them
    assert 1 <= stat["execution_count"] <= CALLS
    stats = stat["inference_stats"]
    assert stats["success"]["count"] == CALLS and stats["fail"]["count"] == 0
    for phase in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert stats[phase]["count"] == CALLS, phase
    # each request's time in the server covers its queue wait and its engine run
    assert stats["success"]["ns"] >= stats["queue"]["ns"] + stats["compute_infer"]["ns"] > 0
    assert sum(b["compute_infer"]["count"] for b in stat["batch_stats"]) == stat["execution_count"]
    assert {b["batch_size"] for b in stat["batch_stats"]} <= {3, 6, 9}  # 3-row requests
    assert stat["last_inference"] > 1.6e12  # ms since the epoch
    assert session["all_stats"]["model_stats"][0]["name"] == "mlp"
    # the aio client read them after its own two calls, the last of the six
    assert session["aio_stats"]["model_stats"][0]["inference_stats"]["success"]["count"] == CALLS


def test_unknown_model_is_a_clear_error(session):
    assert "unknown model 'no-such-model'" in session["unknown_model_error"]
