"""Parsing of the custom facts' raw command output."""

from __future__ import annotations

from inferops.deploy.facts import (
    ContainerVirt,
    NvidiaLibraryVersion,
    parse_nvrm_version,
    parse_pci_devices,
    parse_pip_freeze,
)
from inferops.deploy.ops import unsatisfied


def test_pci_devices_keep_only_nvidia_display_class():
    lines = [
        "0000:00:02.0 0x8086 0x030000",  # Intel iGPU
        "0000:01:00.0 0x10de 0x030200",  # NVIDIA 3D controller
        "0000:01:00.1 0x10de 0x040300",  # NVIDIA HDMI audio: not a GPU
        "0000:41:00.0 0x10DE 0x030000",  # upper-case hex
        "garbage",
    ]
    assert parse_pci_devices(lines) == ["0000:01:00.0", "0000:41:00.0"]


def test_loaded_module_version_from_proc():
    text = (
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\n"
        "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)"
    )
    assert parse_nvrm_version(text) == "550.54.15"
    open_text = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build"
    assert parse_nvrm_version(open_text) == "570.86.15"
    assert parse_nvrm_version("") is None


def test_library_version_from_file_name():
    fact = NvidiaLibraryVersion()
    assert fact.process(["/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.570.124.06"]) == "570.124.06"
    assert fact.process(["/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"]) is None


def test_container_detection():
    assert ContainerVirt().process(["systemd-nspawn"]) == "systemd-nspawn"
    assert ContainerVirt().process(["none"]) == ""


def test_pip_freeze_normalises_names_and_keeps_any_version():
    installed = parse_pip_freeze(
        [
            "prometheus_client==0.21.0",
            "torch==2.5.1+cpu",
            "inferops @ file:///opt/inferops/wheels/inferops-0.1.0-py3-none-any.whl",
            "# comment",
        ]
    )
    assert installed["prometheus-client"] == "0.21.0"
    assert installed["torch"] == "2.5.1+cpu"
    assert "inferops" in installed
    assert unsatisfied(
        ["Prometheus.Client", "torch==2.5.1+cpu", "uvicorn[standard]"], installed
    ) == ["uvicorn[standard]"]
    assert unsatisfied(["torch==2.6.0"], installed) == ["torch==2.6.0"]
