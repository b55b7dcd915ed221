"""Fixtures for the real-host tier: a booted nspawn fleet shared by the whole session.

The fleet (first free slot from 1, i.e. 10.231.1.0/24) is booted once per session and torn down by
a finalizer. Hosts 0 and 1 are the single-host tests' (``fleet.hosts[0..1]``); hosts 2-4
are the inference hosts and host 5 the nginx host of ``lb_fleet`` (deployed on first use),
so neither set of tests changes what the other runs on. Missing prerequisites (root, debootstrap, nspawn, nft) fail the
tests with the reason; they skip only on a developer box that is neither root
nor CI, where they could not run anyway.
"""

from __future__ import annotations

import os

import pytest

from tests.hosts.fleet import claim_free_fleet, missing_prerequisites, prerequisite_verdict

# `make hosts` uses slot 0; concurrent pytest sessions each claim their own slot.
PYTEST_SLOTS = range(1, 7)
FLEET_SIZE = 6
#: ``lb_fleet``: three inference hosts and the nginx host, after the single-host tests' two
LB_NODES = slice(2, 5)
LB_HOST = 5


@pytest.fixture(scope="session")
def fleet(tmp_path_factory):
    """Six booted Debian 12 hosts reachable as ``deploy`` (sudo) over SSH (no CPU cap yet)."""
    problems = missing_prerequisites()
    verdict = prerequisite_verdict(problems, os.geteuid(), dict(os.environ))
    reason = "real-host tests need: " + "; ".join(problems)
    if verdict == "skip":
        pytest.skip(reason + " (skipped: not root and not CI)")
    if verdict == "fail":
        pytest.fail(reason, pytrace=False)
    fleet = claim_free_fleet(
        "t", PYTEST_SLOTS, tmp_path_factory.mktemp("fleet"), size=FLEET_SIZE, log=lambda _: None
    )
    fleet.up()
    try:
        yield fleet
    finally:
        fleet.down()


@pytest.fixture(scope="session")
def deployer(fleet, tmp_path_factory):
    """Runs the repo's deploys on ``fleet`` (wheel and control-side state pinned per session)."""
    from tests.realhost.deploying import Deployer

    return Deployer(fleet, tmp_path_factory.mktemp("deploy"))


@pytest.fixture(scope="session")
def lb_fleet(fleet, deployer):
    """Three CPU inference nodes (mlp) behind nginx, deployed by the project's deploys
    (``cpu_node`` on the three in one parallel pyinfra run, ``loadbalancer`` beside it),
    then capped: 25 % of a core per node, 50 % for nginx. See ``tests/realhost/lbfleet.py``:
    ``.url`` (nginx), ``.nodes``, ``.lb``, ``.token``, ``.redeploy_lb(weights=...)``,
    ``.use_nodes(n)``, ``.env`` (to run pyinfra against it)."""
    from tests.realhost.lbfleet import LbFleet

    lb = LbFleet(fleet, deployer, nodes=fleet.hosts[LB_NODES], lb=fleet.hosts[LB_HOST])
    lb.deploy()
    lb.apply_quotas()
    return lb
