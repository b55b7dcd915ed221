"""Engines: provider selection, ORT/OpenVINO agreement, fp32 on OpenVINO, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from inferops.exitcodes import UsageError
from inferops.server import backends


@pytest.mark.parametrize(
    ("available", "expected"),
    [
        (["CPUExecutionProvider"], ["CPUExecutionProvider"]),
        (
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        (
            ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"],
            ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        (["AzureExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
        ([], ["CPUExecutionProvider"]),
    ],
)
def test_provider_selection_prefers_tensorrt_then_cuda_then_cpu(available, expected):
    assert backends.select_providers(available) == expected


@pytest.mark.parametrize(("name", "shape"), [("mlp", (64,)), ("cnn", (3, 64, 64))])
def test_onnxruntime_and_openvino_agree(name, shape, model_dir):
    ort_backend = backends.load(model_dir / f"{name}.onnx", "onnxruntime", threads=1)
    ov_backend = backends.load(model_dir / f"{name}.onnx", "openvino", threads=1)
    assert ort_backend.inputs == ov_backend.inputs
    assert ort_backend.outputs == ov_backend.outputs
    x = np.random.RandomState(7).uniform(-1, 1, (4, *shape)).astype(np.float32)
    a = ort_backend.run({"input": x})["logits"]
    b = ov_backend.run({"input": x})["logits"]
    assert a.shape == b.shape == (4, 10)
    assert np.abs(a).max() > 0.01  # the comparison is not between two zero tensors
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)


def test_openvino_runs_in_fp32(model_dir):
    import openvino as ov

    ov_backend = backends.load(model_dir / "mlp.onnx", "openvino", threads=1)
    hint = ov_backend.compiled.get_property("INFERENCE_PRECISION_HINT")
    assert hint == ov.Type.f32


@pytest.mark.parametrize("kind", backends.BACKENDS)
def test_corrupt_file_is_a_usage_error(kind, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07 this is not a protobuf")
    with pytest.raises(UsageError, match="not a loadable ONNX model"):
        backends.load(bad, kind)


@pytest.mark.parametrize("spinning", [False, True])
def test_onnxruntime_threads_spin_only_when_asked(model_dir, spinning):
    """Idle ORT workers spin by default in ORT; the server turns it off unless asked
    (benchmarks/ort_spinning.py measures what it costs)."""
    backend = backends.load(model_dir / "mlp.onnx", "onnxruntime", threads=2, spinning=spinning)
    options = backend.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == (
        "1" if spinning else "0"
    )


def _cgroups(tmp_path, proc: str, files: dict[str, str]):
    (tmp_path / "proc").write_text(proc)
    for rel, text in files.items():
        path = tmp_path / "sys" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "sys").mkdir(exist_ok=True)
    return backends.cgroup_cpu_limit(str(tmp_path / "proc"), str(tmp_path / "sys"))


def test_cgroup_v2_quota_is_the_tightest_of_the_cgroup_and_its_ancestors(tmp_path):
    limit = _cgroups(tmp_path, "0::/system.slice/inferops-server.service\n", {
        "cpu.max": "max 100000\n",
        "system.slice/cpu.max": "50000 100000\n",
        "system.slice/inferops-server.service/cpu.max": "max 100000\n",
    })  # fmt: skip
    assert limit == 0.5


def test_cgroup_v2_without_a_quota_is_unlimited(tmp_path):
    assert _cgroups(tmp_path, "0::/a\n", {"a/cpu.max": "max 100000\n"}) is None


def test_cgroup_v1_quota_seen_from_inside_a_container(tmp_path):
    """nspawn on cgroup v1: /proc/self/cgroup names the host's path, the container sees only
    its own subtree mounted at the root, which carries the host's quota for it."""
    limit = _cgroups(tmp_path, "4:cpu,cpuacct:/inferops-fleets/slot30/f30n0/system.slice\n"
                     "1:name=systemd:/system.slice\n", {
        "cpu,cpuacct/cpu.cfs_quota_us": "2500\n",
        "cpu,cpuacct/cpu.cfs_period_us": "10000\n",
    })  # fmt: skip
    assert limit == 0.25


def test_no_readable_cgroup_means_no_limit(tmp_path):
    assert backends.cgroup_cpu_limit(str(tmp_path / "absent"), str(tmp_path)) is None
    assert _cgroups(tmp_path, "4:cpu:/x\n", {"cpu/x/cpu.cfs_quota_us": "-1\n",
                                           "cpu/x/cpu.cfs_period_us": "100000\n"}) is None  # fmt: skip


@pytest.mark.parametrize(("quota", "threads"), [(None, 2), (0.25, 1), (1.5, 2), (8.0, 2)])
def test_default_threads_respect_a_cpu_quota(monkeypatch, quota, threads):
    monkeypatch.setattr(backends.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(backends, "cgroup_cpu_limit", lambda: quota)
    assert backends.default_threads() == threads


@pytest.mark.parametrize(
    ("value", "on"),
    [("1", True), ("true", True), ("yes", True), ("0", False), ("", False), ("on?", False)],
)
def test_the_spinning_switch_reads_the_environment_like_the_fault_switch(monkeypatch, value, on):
    import argparse

    from inferops.server import cli, faults

    monkeypatch.setenv(cli.SPINNING_ENV, value)
    monkeypatch.setenv(faults.ENV_SWITCH, value)
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--model", "mlp"])
    assert args.allow_spinning is on and args.allow_fault_injection is on
