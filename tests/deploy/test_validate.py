"""The data schema: every knob has a default and a check, bad values name host and key."""

from __future__ import annotations

import ast
import re
import runpy
from pathlib import Path

import pytest

from inferops.deploy.catalog import ALL_DEFAULTS, COMPONENTS
from inferops.deploy.validate import SCHEMA, check_fleet, validate_data

REPO = Path(__file__).resolve().parents[2]


def test_schema_and_defaults_cover_the_same_knobs():
    assert set(SCHEMA) == set(ALL_DEFAULTS)
    for component in COMPONENTS:  # no knob declared by two components
        for other in COMPONENTS:
            if other is not component:
                assert not set(component.DEFAULTS) & set(other.DEFAULTS)


def test_defaults_are_valid():
    assert validate_data(dict(ALL_DEFAULTS)) == []


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("server_port", "8000", "expected an integer, got str '8000'"),
        ("server_port", 70000, "must be <= 65535"),
        ("server_port", True, "expected an integer, got bool"),
        ("server_backend", "tensorflow", "unknown value 'tensorflow'; allowed: 'onnxruntime'"),
        ("python_env", "pipenv", "allowed: 'venv', 'conda'"),
        ("nvidia_driver_branch", 570, "expected a branch like 570, got int 570"),
        ("nvidia_driver_branch", "r570", "not a branch like 570"),
        ("cuda_keyring_sha256", "abc", "not a sha256"),
        ("miniforge_sha256", {"x86": "a" * 64}, "unknown arch 'x86'"),
        ("proxy", {"ftp": "x"}, "unknown key 'ftp'"),
        ("proxy", "http://p:3128", "expected None or a mapping"),
        ("base_packages", "curl", "expected a list of strings"),
        ("base_packages", ["curl; rm -rf /"], "bad package name"),
        ("server_requirements", ["numpy>=2"], "bad requirement 'numpy>=2'"),
        ("sysctl", {"net.core.somaxconn": True}, "net.core.somaxconn: expected int/str"),
        ("cuda_repo_url", "mirror.internal/cuda", "not a URL"),
        ("venv_path", "opt/venv", "not an absolute path"),
        ("server_bind", "", "must not be empty"),
        ("server_max_queue_delay_ms", -1, "must be >= 0"),
        ("time_sync", "ntpd", "allowed: 'timesyncd', 'chrony', 'none'"),
    ],
)
def test_bad_value_names_key_and_problem(key, value, problem):
    problems = validate_data({**ALL_DEFAULTS, key: value})
    assert len(problems) == 1, problems
    assert problems[0][0] == key
    assert problem in problems[0][1]


def test_misspelt_knob_suggests_the_real_one():
    problems = validate_data({**ALL_DEFAULTS, "server_bnd": "0.0.0.0"})
    assert problems == [("server_bnd", "unknown knob; did you mean 'server_bind'?")]


def test_unrelated_keys_are_left_to_pyinfra():
    assert validate_data({**ALL_DEFAULTS, "ssh_user": "deploy", "_sudo": True}) == []


@pytest.mark.parametrize(
    "data, key",
    [
        ({"python_env": "conda"}, "miniforge_sha256"),
        ({"server_runtime": "triton"}, "container_toolkit"),
        (
            {"server_runtime": "triton", "container_toolkit": True, "server_backend": "openvino"},
            "server_backend",
        ),
        ({"dcgm_exporter": True}, "container_toolkit"),
        ({"server_backend": "openvino"}, "openvino"),
        ({"dcgm_exporter": True, "dcgm_exporter_mode": "binary"}, "dcgm_exporter_binary_url"),
    ],
)
def test_combinations_that_cannot_work(data, key):
    assert key in [k for k, _ in validate_data({**ALL_DEFAULTS, **data})]


def test_check_fleet_reports_every_host_and_group_value():
    groups = {
        "cpu_nodes": [("cpu-1", {"server_port": "x"}), ("cpu-2", {})],
        "gpu_nodes": [("gpu-1", {})],
    }
    group_data = {"all": {}, "gpu_nodes": {"nvidia_driver_open": "yes"}}
    lines = check_fleet(groups, group_data)
    assert lines == [
        "cpu-1: server_port: expected an integer, got str 'x'",
        "gpu-1: nvidia_driver_open: expected true/false, got str 'yes'",
    ]


def _group_data(name: str) -> dict:
    """Public names of a group_data file (what pyinfra loads; modules excluded)."""
    namespace = runpy.run_path(str(REPO / "group_data" / f"{name}.py"))
    return {k: v for k, v in namespace.items() if not k.startswith("_") and not callable(v)}


@pytest.mark.parametrize("group", ["all", "cpu_nodes", "gpu_nodes", "monitoring", "loadgen"])
def test_shipped_group_data_is_valid(group):
    data = _group_data(group)
    problems = validate_data({**ALL_DEFAULTS, **data})
    if group == "gpu_nodes":
        # conda needs a Miniforge checksum the operator supplies; nothing else may fail.
        assert problems == [("miniforge_sha256", problems[0][1])]
    else:
        assert problems == []


def test_all_py_documents_every_knob_at_its_default():
    text = (REPO / "group_data" / "all.py").read_text()
    documented = {}
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^# (\w+) = (.*)$", line)
        if not match or match.group(1) not in SCHEMA:
            continue
        value = match.group(2)
        for follow in lines[index + 1 :]:
            if not follow.startswith("#     "):
                break
            value += follow[len("#     ") :]
        documented[match.group(1)] = ast.literal_eval(value)
    assert set(documented) == set(SCHEMA)
    for key, value in documented.items():
        assert value == ALL_DEFAULTS[key], key


def test_example_fleet_with_shipped_group_data_is_valid():
    from inferops.deploy.fleet import load_file

    groups = load_file(REPO / "fleet.example.toml")
    names = ["all", "cpu_nodes", "gpu_nodes", "monitoring", "loadgen"]
    assert check_fleet(groups, {name: _group_data(name) for name in names}) == []
