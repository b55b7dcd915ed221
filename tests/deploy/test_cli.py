"""The real ``pyinfra`` CLI with this repo's ``inventory.py`` and deploy files.

Bad data must stop the run with ``host: key: problem`` and exit 2 before pyinfra
connects (fleet/group data) or before any operation (``--data`` overrides). The
dry-run test uses pyinfra's own ``@fake`` connector with scripted fact outputs:
a fake host, nothing is contacted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYINFRA = Path(sys.executable).parent / "pyinfra"


def _pyinfra(fleet: Path, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "INFEROPS_FLEET": str(fleet),
        "INFEROPS_STATE_DIR": str(tmp_path / "state"),
        "PYINFRA_FAKE_DELAY": "0",
        "PYINFRA_FAKE_DELAY_JITTER": "0",
    }
    return subprocess.run(
        [str(PYINFRA), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bad_fleet_data_stops_before_connecting(tmp_path):
    fleet = tmp_path / "fleet.toml"
    # TEST-NET-1 address: had pyinfra tried to connect, it would say so (and fail).
    fleet.write_text(
        '[[hosts]]\nname = "cpu-bad"\naddress = "192.0.2.1"\ngroups = ["cpu_nodes"]\n'
        '[hosts.data]\nserver_port = "eighty"\nserver_backend = "tensorflow"\n'
    )
    result = _pyinfra(fleet, "-y", "inventory.py", "deploys/cpu_node.py", tmp_path=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "cpu-bad: server_port: expected an integer, got str 'eighty'" in result.stderr
    assert "cpu-bad: server_backend: unknown value 'tensorflow'" in result.stderr
    assert "Connecting to hosts" not in output
    assert "Starting operation" not in output


def test_bad_fleet_structure_is_a_config_error(tmp_path):
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[[hosts]]\nname = "x"\ngroups = ["cpu_nodes"]\nssh_usr = "root"\n')
    result = _pyinfra(fleet, "inventory.py", "deploys/cpu_node.py", "--dry", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "hosts[0]: unknown field(s) ['ssh_usr']" in result.stderr
    assert "Connecting to hosts" not in result.stdout + result.stderr


DEBIAN12_FACTS = """
[hosts.data.fake_responses]
"*-release" = ["/etc/os-release", "ID=debian", "VERSION_ID=\\"12\\"", "VERSION_CODENAME=bookworm", "---"]
"uname -m" = "x86_64"
"uname -s" = "Linux"
"command -v curl" = "/usr/bin/curl"
"command -v useradd" = "/usr/sbin/useradd"
"command -v groupadd" = "/usr/sbin/groupadd"
"""


def _fake_fleet(tmp_path, tiny_model, fake_wheel) -> Path:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        '[[hosts]]\nname = "@fake/cpu1"\ngroups = ["cpu_nodes"]\n[hosts.data]\n'
        f'server_model_path = "{tiny_model}"\ninferops_wheel = "{fake_wheel}"\n'
        "fake_delay = 0\nfake_delay_jitter = 0\n" + DEBIAN12_FACTS
    )
    return fleet


def test_data_override_is_validated_before_any_operation(tmp_path, tiny_model, fake_wheel):
    fleet = _fake_fleet(tmp_path, tiny_model, fake_wheel)
    result = _pyinfra(
        fleet, "inventory.py", "deploys/cpu_node.py", "--dry",
        "--data", "server_max_batch_size=0", tmp_path=tmp_path,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "@fake/cpu1: server_max_batch_size: must be >= 1, got 0" in result.stderr
    assert "Detected changes" not in output and "Starting operation" not in output


def test_dry_run_plans_the_cpu_node_and_changes_nothing(tmp_path, tiny_model, fake_wheel):
    fleet = _fake_fleet(tmp_path, tiny_model, fake_wheel)
    result = _pyinfra(fleet, "inventory.py", "deploys/cpu_node.py", "--dry", tmp_path=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for planned in (
        "inferops base | Install base packages",
        "inferops python environment | Create venv /opt/inferops/venv",
        "inferops inference server | Write /etc/systemd/system/inferops-server.service",
        "node_exporter | Install prometheus-node-exporter",
    ):
        assert planned in output
    assert "Detected changes" in output
    assert "Starting operation" not in output  # --dry: nothing executed


def test_dry_run_plans_the_gpu_node_from_pci_facts(tmp_path, tiny_model, fake_wheel):
    """A fake Debian 12 host whose PCI scan shows an NVIDIA GPU: the driver is planned
    from Debian's non-free archive (no checksums configured), nothing executes."""
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        '[[hosts]]\nname = "@fake/gpu1"\ngroups = ["gpu_nodes"]\n[hosts.data]\n'
        f'server_model_path = "{tiny_model}"\ninferops_wheel = "{fake_wheel}"\n'
        'python_env = "venv"\nfake_delay = 0\nfake_delay_jitter = 0\n'
        f'container_toolkit_key_sha256 = "{"ab" * 32}"\n'
        + DEBIAN12_FACTS
        + '"/sys/bus/pci/devices" = ["0000:00:02.0 0x8086 0x030000", "0000:01:00.0 0x10de 0x030200"]\n'
    )
    result = _pyinfra(fleet, "inventory.py", "deploys/gpu_node.py", "--dry", tmp_path=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "no NVIDIA GPU detected" not in output
    for planned in (
        "NVIDIA driver | Enable Debian contrib, non-free, non-free-firmware",
        "NVIDIA driver | Install NVIDIA driver (distro: linux-headers-amd64, nvidia-kernel-dkms",
        "CUDA toolkit | Install nvidia-cuda-toolkit (distro)",
        "inferops accelerators | Install tensorrt-cu12",
        "NVIDIA container toolkit | Register the NVIDIA runtime with docker (nvidia-ctk)",
        "dcgm-exporter | Write inferops-dcgm-exporter.service",
    ):
        assert planned in output, planned
    assert "Starting operation" not in output


def test_no_hosts_is_a_config_error(tmp_path):
    empty = tmp_path / "fleet.toml"
    empty.write_text("hosts = []\n")
    result = _pyinfra(empty, "inventory.py", "deploys/cpu_node.py", "--dry", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "no hosts: set INFEROPS_FLEET=fleet.toml" in result.stderr


def test_fleet_data_not_a_table_is_one_line_exit_2(tmp_path):
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[[hosts]]\nname = "x"\ngroups = ["cpu_nodes"]\ndata = "x"\n')
    result = _pyinfra(fleet, "inventory.py", "deploys/cpu_node.py", "--dry", tmp_path=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "host x: data: expected a table of knobs, got str 'x'" in result.stderr


def test_misspelt_knob_in_fleet_or_group_data_is_named_before_connecting(tmp_path):
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        '[[hosts]]\nname = "cpu-typo"\naddress = "192.0.2.1"\ngroups = ["cpu_nodes"]\n'
        "[hosts.data]\nsever_port = 9000\n"
    )
    result = _pyinfra(fleet, "-y", "inventory.py", "deploys/cpu_node.py", tmp_path=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "cpu-typo: sever_port: unknown knob; did you mean 'server_port'?" in result.stderr
    assert "Connecting to hosts" not in output
