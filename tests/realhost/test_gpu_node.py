"""``deploys/gpu_node.py`` on a host without a GPU: the GPU parts step aside, the rest installs.

Runs on host 1 (after the cpu_node tests it is the "same host after" case; run
alone it is a fresh host). The host joins ``gpu_nodes`` with one override:
``python_env = "venv"``, because the group's default conda env needs Miniforge
from GitHub, which this machine cannot reach.
"""

from __future__ import annotations

import pytest

from tests.realhost.deploying import GPU_NODE, assert_no_changes, verify_cpu_node

pytestmark = pytest.mark.realhost

SKIPPED_GPU_PARTS = (
    "the NVIDIA driver",
    "the CUDA toolkit",
    "the NVIDIA container toolkit",
    "TensorRT",
    "dcgm-exporter",
)


@pytest.fixture(scope="module")
def gpu_fleet(fleet, deployer):
    host = fleet.hosts[1]
    path = deployer.write_fleet(
        "gpu.toml",
        host_groups={host.name: ("gpu_nodes",)},
        host_data={host.name: {"python_env": "venv"}},
    )
    return host, path


def test_gpu_node_without_a_gpu_skips_gpu_parts_and_serves(fleet, deployer, gpu_fleet):
    host, path = gpu_fleet
    result = deployer.run(GPU_NODE, host, fleet_file=path)
    assert result.returncode == 0, result.tail()
    assert result.total.errors == 0
    for part in SKIPPED_GPU_PARTS:
        assert f"[{host.name}] no NVIDIA GPU detected" in result.output
        assert f"skipping {part};" in result.output, part
    t = fleet.testinfra_host(host)
    packages = t.check_output("dpkg-query -W -f='${Package}\\n'").split()
    assert packages and not [
        p for p in packages if p.startswith(("nvidia", "cuda", "docker", "datacenter-gpu"))
    ]
    assert not t.exists("nvidia-smi")
    freeze = t.check_output("/opt/inferops/venv/bin/pip freeze")
    assert "onnxruntime-gpu==" in freeze  # the GPU group's runtime, CPU fallback here
    assert "\nonnxruntime==" not in "\n" + freeze  # the conflicting CPU flavour is gone
    verify_cpu_node(fleet, host, deployer.token(host))


def test_gpu_node_second_run_changes_nothing(fleet, deployer, gpu_fleet):
    host, path = gpu_fleet
    assert_no_changes(deployer.run(GPU_NODE, host, fleet_file=path))
