"""How many SSH commands a converged ``cpu_node`` costs, counted in pyinfra's ``--debug``
output (one ``Running command on`` line per SSH exec), never timed.

Runs after ``test_cpu_node.py`` on its converged host 0 (alone, its first run converges
the host). With batching the fact checks of a no-op re-run take one command per stage;
stock pyinfra (``fact_batching = false``) sends one per fact read.
"""

from __future__ import annotations

import pytest

from tests.realhost.deploying import CPU_NODE, assert_no_changes

pytestmark = pytest.mark.realhost


def ssh_commands(output: str) -> int:
    return output.count("Running command on")


def test_a_no_op_re_run_reads_its_facts_in_one_command_per_stage(fleet, deployer):
    host = fleet.hosts[0]
    converge = deployer.run(CPU_NODE, host)
    assert converge.returncode == 0 and converge.total.errors == 0, converge.tail()
    assert_no_changes(deployer.run(CPU_NODE, host))  # records this deploy's reads, if new

    batched = deployer.run(CPU_NODE, host, options=("--debug",))
    assert_no_changes(batched)
    assert ssh_commands(batched.output) <= 3, "a no-op re-run should be ~2 commands"
    assert batched.output.count("answered from this stage's batch") >= 40

    stock = deployer.run(CPU_NODE, host, options=("--debug", "--data", "fact_batching=false"))
    assert_no_changes(stock)
    assert ssh_commands(stock.output) >= 30  # what batching saves: one per fact read


def test_the_fresh_deploy_installed_from_the_shipped_wheelhouse(fleet, deployer):
    """The session's fresh deploys got their wheels from the control machine's wheelhouse
    (built once, under the session's state dir) and left no zip behind on the host."""
    assert list((deployer.state_dir / "wheelhouse").glob("*/wheelhouse.zip"))
    leftover = fleet.ssh(fleet.hosts[0], "ls /opt/inferops/wheelhouse-*.zip 2>/dev/null || true")
    assert leftover.stdout.strip() == ""
