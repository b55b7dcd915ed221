"""The rollout's alert gate against a real Prometheus (Debian package) on 127.0.0.1, behind
basic auth: an alert that fired and resolved *during* a step's load still stops the step
(Prometheus' ``ALERTS`` series over the load window), one firing while the step is watched
stops it too, other jobs' alerts do not, and the password never shows in an error."""

from __future__ import annotations

import time

import pytest

from inferops.exitcodes import InferopsError
from inferops.release.actions import PrometheusAlerts
from inferops.server.process import free_port
from tests.monitoring.test_live import Process, tool, wait_for

pytestmark = pytest.mark.slow

SECRET = "al3rts-s3cret-never-shown"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    import bcrypt

    tmp = tmp_path_factory.mktemp("alerts")
    # BriefOutage fires for the first seconds after Prometheus starts, then resolves
    # by itself: "an alert during the step's load that is gone when the load ends"
    until = int(time.time()) + 6
    (tmp / "rules.yml").write_text(
        "groups:\n- name: fleet\n  interval: 1s\n  rules:\n"
        "  - alert: AlwaysFiring\n    expr: vector(1)\n    labels: {job: inferops}\n"
        f"  - alert: BriefOutage\n    expr: vector(time()) < {until}\n    labels: {{job: inferops}}\n"
        "  - alert: SomebodyElses\n    expr: vector(1)\n    labels: {job: other}\n"
    )
    (tmp / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\nrule_files: [rules.yml]\n"
    )
    digest = bcrypt.hashpw(SECRET.encode(), bcrypt.gensalt(rounds=4)).decode()
    (tmp / "web.yml").write_text(f"basic_auth_users:\n  inferops: {digest}\n")
    port = free_port()
    proc = Process(
        [
            tool("prometheus"),
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--web.config.file={tmp / 'web.yml'}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        tmp / "prometheus.log",
    )
    try:
        url = f"http://inferops:{SECRET}@127.0.0.1:{port}"
        gate = PrometheusAlerts(url, match={"job": "inferops"}, poll_s=0.5)
        wait_for(lambda: "AlwaysFiring" in _quietly(gate), 60, "the rules evaluated")
        yield type("Prom", (), {"url": url, "port": port, "until": until})
    finally:
        proc.stop()


def _quietly(gate: PrometheusAlerts) -> list[str]:
    try:
        return gate.firing_alerts(0)
    except InferopsError:
        return []


def test_an_alert_that_fired_and_resolved_during_the_load_stops_the_step(prometheus):
    gate = PrometheusAlerts(prometheus.url, match={"job": "inferops"}, poll_s=0.5)
    # wait until BriefOutage has fired and resolved: the load window is over
    wait_for(lambda: time.time() > prometheus.until + 3, 30, "BriefOutage resolved")
    watched_only = gate.firing_alerts(1)
    assert watched_only == ["AlwaysFiring"]  # what /api/v1/alerts still shows
    whole_step = gate.firing_alerts(1, lookback_s=time.time() - prometheus.until + 10)
    assert whole_step == ["AlwaysFiring", "BriefOutage"]
    assert "SomebodyElses" not in whole_step  # another job's alert is not the fleet's


def test_a_wrong_password_is_one_clear_error_without_the_password(prometheus):
    wrong = prometheus.url.replace(SECRET, "not-the-password")
    with pytest.raises(InferopsError) as err:
        PrometheusAlerts(wrong).firing_alerts(0)
    assert "refused the credentials" in str(err.value)
    assert "not-the-password" not in str(err.value) and SECRET not in str(err.value)


def test_a_password_file_is_used(prometheus, tmp_path):
    secret_file = tmp_path / "pw"
    secret_file.write_text(SECRET + "\n")
    bare = f"http://127.0.0.1:{prometheus.port}"
    gate = PrometheusAlerts(bare, match={"job": "inferops"}, password_file=str(secret_file))
    assert "AlwaysFiring" in gate.firing_alerts(0)
