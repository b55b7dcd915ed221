"""Hosts and SSH settings come from data (fleet file or env vars), never from code."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferops.deploy.fleet import FleetError, from_env, load, load_file, parse_fleet

REPO = Path(__file__).resolve().parents[2]


def test_example_fleet_parses_with_ssh_settings_and_groups():
    groups = load_file(REPO / "fleet.example.toml")
    names = {group: [name for name, _ in hosts] for group, hosts in groups.items()}
    assert names == {
        "gpu_nodes": ["gpu-1"],
        "cpu_nodes": ["cpu-1"],
        "monitoring": ["mon-1"],
        "loadgen": ["load-1"],
        "loadbalancer": ["lb-1"],
    }
    cpu = dict(groups["cpu_nodes"])["cpu-1"]
    assert cpu["ssh_hostname"] == "10.0.0.21"
    assert cpu["ssh_user"] == "deploy"
    assert cpu["_sudo"] is True
    assert cpu["ssh_strict_host_key_checking"] == "yes"
    assert cpu["ssh_known_hosts_file"].endswith("/.ssh/known_hosts")
    assert cpu["server_backend"] == "openvino"
    assert dict(groups["loadgen"])["load-1"]["ssh_port"] == 2222


def test_host_data_overrides_defaults_and_host_may_be_in_two_groups():
    groups = parse_fleet(
        {
            "defaults": {"ssh_user": "ops", "data": {"server_port": 8000}},
            "hosts": [
                {"name": "h1", "groups": ["cpu_nodes", "loadgen"], "ssh_user": "root",
                 "data": {"server_port": 9000}},
            ],
        }
    )  # fmt: skip
    assert (
        groups["cpu_nodes"]
        == groups["loadgen"]
        == [("h1", {"ssh_user": "root", "server_port": 9000})]
    )


def test_env_vars_build_the_fleet():
    groups = from_env(
        {
            "INFEROPS_GPU_NODES": "g1, g2",
            "INFEROPS_CPU_NODES": "c1",
            "INFEROPS_SSH_USER": "deploy",
            "INFEROPS_SSH_PORT": "2200",
            "INFEROPS_SUDO": "1",
        }
    )
    assert [n for n, _ in groups["gpu_nodes"]] == ["g1", "g2"]
    assert groups["cpu_nodes"] == [("c1", {"ssh_user": "deploy", "ssh_port": 2200, "_sudo": True})]
    assert groups["monitoring"] == []


def test_fleet_file_wins_over_env_and_missing_file_is_an_error(tmp_path):
    with pytest.raises(FleetError, match="no such fleet file"):
        load({"INFEROPS_FLEET": str(tmp_path / "nope.toml"), "INFEROPS_CPU_NODES": "c1"})
    assert load({}, default_file=tmp_path / "absent.toml")["cpu_nodes"] == []


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"hosts": [{"name": "h", "groups": ["web"]}]}, "unknown group 'web'"),
        ({"hosts": [{"name": "h", "groups": []}]}, "groups: required list"),
        ({"hosts": [{"groups": ["cpu_nodes"]}]}, "name: required string"),
        ({"hosts": [{"name": "h", "groups": ["cpu_nodes"], "ssh_port": "22"}]},
         "host h: ssh_port: expected an integer"),
        ({"hosts": [{"name": "h", "groups": ["cpu_nodes"], "sudo": "yes"}]},
         "sudo: expected true/false"),
        ({"hosts": [{"name": "h", "groups": ["cpu_nodes"],
                     "ssh_strict_host_key_checking": "maybe"}]}, "unknown value 'maybe'"),
        ({"hosts": [{"name": "h", "groups": ["cpu_nodes"]}, {"name": "h", "groups": ["loadgen"]}]},
         "host h: listed twice"),
        ({"servers": []}, "unknown section(s) ['servers']"),
    ],
)  # fmt: skip
def test_fleet_errors_name_the_place(doc, message):
    with pytest.raises(FleetError) as info:
        parse_fleet(doc, "fleet.toml")
    assert message in str(info.value)
    assert str(info.value).startswith("fleet.toml")


def test_invalid_toml_is_reported(tmp_path):
    bad = tmp_path / "fleet.toml"
    bad.write_text("[[hosts]\nname=")
    with pytest.raises(FleetError, match="not valid TOML"):
        load_file(bad)


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"hosts": [{"name": "h", "groups": ["cpu_nodes"], "data": "x"}]},
         "host h: data: expected a table of knobs, got str 'x'"),
        ({"defaults": {"data": ["x"]}, "hosts": []},
         "defaults: data: expected a table of knobs, got list ['x']"),
        ({"defaults": "x"}, "defaults: expected a table"),
        ({"hosts": "x"}, "hosts: expected an array of tables"),
    ],
)  # fmt: skip
def test_fleet_data_of_the_wrong_type_is_a_config_error(doc, message):
    with pytest.raises(FleetError) as info:
        parse_fleet(doc, "fleet.toml")
    assert message in str(info.value)
