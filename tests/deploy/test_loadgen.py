"""deploys/loadgen.py's component at operation level: facts in, commands out (fake hosts)."""

from __future__ import annotations

import pytest
from pyinfra.api.exceptions import PyinfraError

from inferops.deploy.loadgen import loadgen
from inferops.deploy.validate import validate_data

from .harness import run
from .profiles import merge, profile

UNIT = "/etc/systemd/system/inferops-loadgen-worker@.service"


def _run(fake_wheel, cpus=4, extra_facts=None, **data):
    facts = merge(profile("debian12"), {"Cpus": cpus, **(extra_facts or {})})
    data = {"inferops_wheel": str(fake_wheel), "loadgen_master_host": "10.0.0.5", **data}
    return run([loadgen], facts, data)


def test_one_pinned_worker_per_cpu_pointed_at_the_master(fake_wheel):
    result = _run(fake_wheel, cpus=4)
    unit = result.uploads[UNIT]
    assert "bench --worker --master-host 10.0.0.5 --master-port 5557" in unit
    assert "Restart=always" in unit and "User=inferops" in unit
    for n in range(1, 5):
        dropin = result.uploads[
            f"/etc/systemd/system/inferops-loadgen-worker@{n}.service.d/cpu.conf"
        ]
        assert f"CPUAffinity={n - 1}\n" in dropin
        assert result.has_command(f"systemctl start inferops-loadgen-worker@{n}.service")
        assert result.has_command(f"systemctl enable inferops-loadgen-worker@{n}.service")
    assert not result.has_command("inferops-loadgen-worker@5.service")
    assert result.op("Install the load-generation stack").commands
    assert result.has_command("systemctl is-active --quiet inferops-loadgen-worker@1.service")


def test_pinning_off_removes_the_dropins_and_allows_more_workers_than_cpus(fake_wheel):
    result = _run(fake_wheel, cpus=2, loadgen_workers=3, loadgen_cpu_pinning=False)
    assert not [p for p in result.uploads if p.endswith("cpu.conf")]
    assert all("cpu.conf" not in c or c.startswith("rm") for c in result.commands)
    assert result.has_command("systemctl start inferops-loadgen-worker@3.service")


def test_pinned_workers_beyond_the_cpus_are_refused_before_any_change(fake_wheel):
    with pytest.raises(PyinfraError, match="loadgen_workers: 3 workers pinned one per CPU"):
        _run(fake_wheel, cpus=2, loadgen_workers=3)


def test_master_host_is_required(fake_wheel):
    with pytest.raises(PyinfraError, match="loadgen_master_host: required"):
        _run(fake_wheel, loadgen_master_host=None)


def _unit_key(unit: str) -> str:
    return f"machine=null,services={unit},user_mode=false,user_name=null"


def test_instances_above_the_count_are_stopped_and_disabled(fake_wheel):
    units = [f"inferops-loadgen-worker@{n}.service" for n in (1, 2, 3)]
    status = {"services=inferops-loadgen-worker@*": dict.fromkeys(units, True)}
    status.update({_unit_key(u): {u: True} for u in units})  # what systemd.service asks
    enabled = {_unit_key(u): {u: True} for u in units}
    result = _run(
        fake_wheel,
        cpus=4,
        loadgen_workers=1,
        extra_facts={"SystemdStatus": status, "SystemdEnabled": enabled},
    )
    for n in (2, 3):
        op = result.op(f"Stop and disable inferops-loadgen-worker@{n}.service")
        assert any("systemctl stop" in c for c in op.commands), op.commands
        assert any("systemctl disable" in c for c in op.commands), op.commands
    assert not [op for op in result.ops if "Stop and disable inferops-loadgen-worker@1" in op.name]
    assert not result.has_command("systemctl stop inferops-loadgen-worker@1.service")


@pytest.mark.parametrize(
    "key, value",
    [
        ("loadgen_master_host", "10.0.0.5\nExecStartPre=/bin/sh"),
        ("loadgen_master_host", "-oProxyCommand=x"),
        ("loadgen_master_port", 70000),
        ("loadgen_workers", 0),
        ("loadgen_cpu_pinning", "yes"),
    ],
)
def test_bad_knobs_are_refused_by_validation(key, value):
    problems = dict(validate_data({key: value}))
    assert key in problems and problems[key] != "unknown knob"
