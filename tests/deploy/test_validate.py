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
        ("server_runtime", "tgi", "allowed: 'inferops', 'triton', 'vllm'"),
        ("vllm_args", ["--max-model-len", "4096\nExecStartPre=/bin/id"], "control character"),
        ("vllm_args", ["--api-key=abc"], "set by the deploy"),
        ("vllm_args", "--max-model-len 4096", "expected a list of strings"),
        ("vllm_version", "latest", "not a version"),
        ("server_port", 70000, "must be 0-65535, got 70000"),  # the server's words
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
        ("python_packages", ["numpy>=2"], "bad requirement 'numpy>=2'"),
        ("sysctl", {"net.core.somaxconn": True}, "net.core.somaxconn: expected int/str"),
        ("cuda_repo_url", "mirror.internal/cuda", "not a URL"),
        ("venv_path", "opt/venv", "not an absolute path"),
        ("server_bind", "", "not an IP address or 'localhost': ''"),
        ("server_max_queue_delay_ms", -1, "must be 0-60000 ms, got -1"),
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


# ---- issue 8: every knob is validated with the rules of the program that consumes it ----


@pytest.mark.parametrize("bind", ["localhost", "0.0.0.0", "127.0.0.1", "::", "::1", "10.1.2.3"])
def test_server_bind_accepts_what_the_server_can_bind(bind):
    assert validate_data({**ALL_DEFAULTS, "server_bind": bind}) == []


@pytest.mark.parametrize("bind", ["dead", "300.1.1.1", "10.0.0", "0.0.0.0:8000", "[::1]", ""])
def test_server_bind_refuses_what_the_server_cannot_bind(bind):
    problems = validate_data({**ALL_DEFAULTS, "server_bind": bind})
    assert [key for key, _ in problems] == ["server_bind"], problems


@pytest.mark.parametrize("delay", [1e9, float("nan"), float("inf"), 60_001, -1])
def test_queue_delay_refused_where_inferops_serve_refuses_it(delay):
    problems = validate_data({**ALL_DEFAULTS, "server_max_queue_delay_ms": delay})
    assert [key for key, _ in problems] == ["server_max_queue_delay_ms"], problems


def test_queue_delay_and_batch_checks_are_the_servers_own():
    """Same verdict as `inferops serve`'s argument parser, value by value."""
    import argparse

    from inferops.server import cli as server_cli

    parser = argparse.ArgumentParser()
    server_cli.add_arguments(parser)
    for value in (0, 0.5, 2.0, 60_000, 60_000.5, 1e9, float("nan"), -0.1):
        try:
            parser.parse_args(["--model", "mlp", "--max-queue-delay-ms", repr(value)])
            server_ok = True
        except SystemExit:
            server_ok = False
        deploy_ok = not validate_data({**ALL_DEFAULTS, "server_max_queue_delay_ms": value})
        assert deploy_ok == server_ok, value


@pytest.mark.parametrize(
    "key, suggestion",
    [
        ("sever_port", "server_port"),
        ("nvida_driver_branch", "nvidia_driver_branch"),
        ("servr_bind", "server_bind"),
        ("cuda_verison", "cuda_version"),
        ("openvno", "openvino"),
    ],
)
def test_any_misspelt_knob_is_named_with_a_suggestion(key, suggestion):
    problems = validate_data({**ALL_DEFAULTS, key: 1})
    assert problems == [(key, f"unknown knob; did you mean {suggestion!r}?")]


def test_unknown_knob_without_a_close_match_is_still_refused():
    assert validate_data({**ALL_DEFAULTS, "colour": "red"}) == [("colour", "unknown knob")]


def test_pyinfra_connector_data_and_global_arguments_are_not_knobs():
    data = {"ssh_user": "deploy", "ssh_port": 22, "_sudo": True, "fake_delay": 0}
    assert validate_data({**ALL_DEFAULTS, **data}) == []


@pytest.mark.parametrize(
    "env",
    [
        {"A": "x\nINFEROPS_BIND=0.0.0.0"},
        {"A": "x\rB"},
        {"A\nB": "x"},
        {"1BAD": "x"},
        {"A B": "x"},
        {"A": "nul\x00"},
    ],
)
def test_server_extra_env_cannot_inject_lines(env):
    problems = validate_data({**ALL_DEFAULTS, "server_extra_env": env})
    assert [key for key, _ in problems] == ["server_extra_env"], problems


def test_server_extra_env_plain_values_pass():
    env = {"OMP_NUM_THREADS": "4", "HTTPS_PROXY": "http://p:3128", "X": 'quote " and \\ ok'}
    assert validate_data({**ALL_DEFAULTS, "server_extra_env": env}) == []


# ---- issue 8: Triton is not published unauthenticated, and its image is pinned ----

TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.08-py3@sha256:" + "ab" * 32
TRITON = {"server_runtime": "triton", "container_toolkit": True, "triton_image": TRITON_IMAGE}


def test_triton_on_a_public_address_needs_an_explicit_opt_in():
    problems = validate_data({**ALL_DEFAULTS, **TRITON, "server_bind": "0.0.0.0"})
    assert [key for key, _ in problems] == ["server_bind"]
    assert "Triton has no authentication" in problems[0][1]
    opted_in = {**ALL_DEFAULTS, **TRITON, "server_bind": "0.0.0.0", "triton_insecure": True}
    assert validate_data(opted_in) == []
    assert validate_data({**ALL_DEFAULTS, **TRITON, "server_bind": "127.0.0.1"}) == []


@pytest.mark.parametrize(
    "image",
    [
        "nvcr.io/nvidia/tritonserver:24.08-py3",  # a tag can be moved
        "nvcr.io/nvidia/tritonserver@sha256:abc",
        "nvcr.io/nvidia/tritonserver:24.08-py3@sha256:" + "AB" * 32,
    ],
)
def test_triton_image_must_be_pinned_by_digest(image):
    data = {**ALL_DEFAULTS, **TRITON, "server_bind": "127.0.0.1", "triton_image": image}
    assert [key for key, _ in validate_data(data)] == ["triton_image"]


def test_triton_without_an_image_is_refused():
    data = {**ALL_DEFAULTS, **TRITON, "server_bind": "127.0.0.1", "triton_image": None}
    assert [key for key, _ in validate_data(data)] == ["triton_image"]
