"""`inferops bench --prometheus URL --instance HOST...`, every part real, on 127.0.0.1:

a real Prometheus (Debian package) behind basic auth scrapes two real node_exporters
(two "hosts under test", labelled sut-a and sut-b as the rendered configs label hosts)
while a real bench loads the real reference server; the run folder then holds the hosts'
series and the report draws and judges them. Bad URLs, unknown instances and credentials
are checked against the same Prometheus.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from inferops.server.process import ServerProcess, free_port
from tests.monitoring.conftest import ROOT
from tests.monitoring.test_live import Process, tool, wait_for

pytestmark = pytest.mark.slow

SECRET = "pr0m-s3cret-never-written"
HOSTS = ("sut-a", "sut-b")


def _bench(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inferops", "bench", "--quiet", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """Prometheus with basic auth, scraping two node_exporters every second."""
    import bcrypt

    tmp = tmp_path_factory.mktemp("prom")
    started: list[Process] = []
    try:
        targets = []
        for name in HOSTS:
            port = free_port()
            started.append(
                Process(
                    [
                        tool("prometheus-node-exporter"),
                        f"--web.listen-address=127.0.0.1:{port}",
                        "--collector.disable-defaults",
                        "--collector.cpu",
                        "--collector.meminfo",
                        "--collector.netdev",
                        "--collector.diskstats",
                    ],
                    tmp / f"node-{name}.log",
                )
            )
            targets.append(f"  - targets: ['127.0.0.1:{port}']\n    labels: {{instance: {name}}}\n")
        (tmp / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n- job_name: node\n  static_configs:\n" + "".join(targets)
        )
        digest = bcrypt.hashpw(SECRET.encode(), bcrypt.gensalt(rounds=4)).decode()
        (tmp / "web.yml").write_text(f"basic_auth_users:\n  inferops: {digest}\n")
        port = free_port()
        started.append(
            Process(
                [
                    tool("prometheus"),
                    f"--config.file={tmp / 'prometheus.yml'}",
                    f"--web.config.file={tmp / 'web.yml'}",
                    f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                tmp / "prometheus.log",
            )
        )
        base = f"http://127.0.0.1:{port}"
        url = f"http://inferops:{SECRET}@127.0.0.1:{port}"

        def scraped_a_few_times():
            request = urllib.request.Request(
                f"{base}/api/v1/query?query=count_over_time(up[1m])",
                headers={"Authorization": _basic("inferops", SECRET)},
            )
            with urllib.request.urlopen(request, timeout=2) as resp:
                result = json.loads(resp.read())["data"]["result"]
            return len(result) == 2 and all(float(r["value"][1]) >= 3 for r in result)

        wait_for(scraped_a_few_times, 60, f"both node_exporters scraped ({started[-1].tail()})")
        yield type("Prom", (), {"url": url, "base": base, "port": port, "dir": tmp})
    finally:
        for proc in reversed(started):
            proc.stop()


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def server():
    server = ServerProcess("mlp", max_batch_size=8, max_queue_delay_ms=1)
    try:
        server.start(timeout=120)
        yield server
    finally:
        server.stop(timeout=10)


def test_bench_reads_both_hosts_series_back_and_judges_the_worst(prometheus, server, tmp_path):
    run = tmp_path / "run"
    limits = tmp_path / "thresholds.toml"
    limits.write_text("p99_latency_ms = 5000\nmax_cpu_percent = 100\nmax_memory_percent = 100\n")
    result = _bench(
        f"--target={server.url}",
        "--model=mlp",
        "--rate=20",
        "--duration=6s",
        "--warmup=1s",
        f"--thresholds={limits}",
        f"--prometheus={prometheus.url}",
        *(f"--instance={h}" for h in HOSTS),
        f"--out={run}",
    )
    # 0 passed; 3 if the noisy shared box made the generator late: the hosts are recorded anyway
    assert result.returncode in (0, 3), result.stderr
    assert SECRET not in result.stdout + result.stderr

    # the hosts' series, per host and worst-of, on the run's per-second rows
    with (run / "timeseries.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    measured = [r for r in rows if r["cpu_pct"]]
    assert len(measured) >= len(rows) - 2 >= 5, rows
    memory_now = psutil.virtual_memory().percent  # both "hosts" are this machine
    for r in measured:
        cpu = [float(r[f"host{n}_cpu_pct"]) for n in range(2)]
        mem = [float(r[f"host{n}_mem_pct"]) for n in range(2)]
        assert all(0 <= c <= 100 for c in cpu), r
        assert float(r["cpu_pct"]) == max(cpu) and float(r["mem_pct"]) == max(mem)
        assert abs(mem[0] - memory_now) < 20, (mem, memory_now)
    assert any(float(r["cpu_pct"]) > 0 for r in measured)  # a loaded box is never idle
    assert any(r["gen_cpu_pct"] for r in rows)  # the generator's own CPU is still measured here

    summary = json.loads((run / "summary.json").read_text())
    host = summary["host"]
    assert set(host["instances"]) == set(HOSTS)
    assert host["source"]["step_s"] == 1 and host["source"]["scrape_interval_s"]["sut-a"] == 1
    worst = max(HOSTS, key=lambda h: host["instances"][h]["cpu_pct_max"])
    assert host["cpu_pct_max"] == host["instances"][worst]["cpu_pct_max"]
    checks = {c["name"]: c for c in summary["thresholds"]}
    assert checks["max_cpu_percent"]["value"] == host["cpu_pct_max"]
    assert checks["max_cpu_percent"]["ok"] is True
    assert checks["max_cpu_percent"]["note"].startswith(f"worst host {worst} (others: ")
    assert checks["max_memory_percent"]["ok"] is True

    manifest = json.loads((run / "manifest.json").read_text())
    source = manifest["load"]["host_metrics_from"]
    assert source.startswith("prometheus http://inferops:***@127.0.0.1:") and "sut-b" in source
    for path in run.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path

    # the report draws the hosts' chart and names the judged host
    report = tmp_path / "report.html"
    rendered = subprocess.run(
        [sys.executable, "-m", "inferops", "report", str(run), "--target-qps=10"]
        + ["--out", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rendered.returncode == 0, rendered.stderr
    html = report.read_text()
    section = html[html.index('id="resources"') :]
    assert "<svg" in section[: section.index("</section>")]
    assert "Hosts under test: sut-a, sut-b" in html
    assert f"worst host {worst}" in html
    assert SECRET not in html


def _one_line_usage_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert SECRET not in result.stdout + result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("instances", "expected"),
    [
        (["sut-a", "sut-c"], "--instance sut-c: Prometheus at http://inferops:***@"),
        (["sut"], "has no `up` series for it (instances it scrapes: sut-a, sut-b)"),
    ],
)
def test_an_unknown_instance_stops_before_any_load(prometheus, tmp_path, instances, expected):
    run = tmp_path / "run"
    result = _bench(
        "--target=http://127.0.0.1:9",  # never reached: the check comes first
        "--model=mlp",
        "--rate=5",
        f"--prometheus={prometheus.url}",
        *(f"--instance={h}" for h in instances),
        f"--out={run}",
    )
    assert expected in _one_line_usage_error(result)
    assert not run.exists()


def test_wrong_or_missing_credentials_and_unreachable_prometheus(prometheus, tmp_path):
    wrong = tmp_path / "password"
    wrong.write_text("not-the-password\n")
    common = ("--target=http://127.0.0.1:9", "--model=mlp", "--rate=5", "--instance=sut-a")
    cases = {
        "refused the credentials (401)": (
            f"--prometheus={prometheus.base}",
            f"--prometheus-password-file={wrong}",
        ),
        "refused the credentials": (f"--prometheus={prometheus.base}",),
        "cannot reach Prometheus at http://u:***@127.0.0.1:": (
            f"--prometheus=http://u:{SECRET}@127.0.0.1:{free_port()}",
        ),
    }
    for expected, flags in cases.items():
        line = _one_line_usage_error(_bench(*common, *flags, f"--out={tmp_path / 'run'}"))
        assert line.startswith("inferops: --prometheus: ") or "--prometheus" in line, line
        assert expected in line, line
    assert not (tmp_path / "run").exists()


def test_prometheus_going_away_after_the_start_check_leaves_host_metrics_empty(tmp_path):
    """A unit of the sampler's failure path: no crash, no load-generator numbers passed
    off as the hosts'. (A real Prometheus stopping mid-run gives the same PrometheusError.)"""
    from inferops.measure.promsource import PrometheusError
    from inferops.measure.sampler_process import ProcessSampler

    class Gone:
        instances = ("sut-a",)

        def fetch(self, start, end):
            raise PrometheusError("cannot reach Prometheus at http://x:***@mon:9090: refused")

    sampler = ProcessSampler(os.getpid(), interval=0.2, prometheus=Gone()).start()
    time.sleep(0.7)
    sampler.stop()
    samples = sampler.samples()
    assert samples and all(set(s) == {"t", "gen_cpu_pct"} for s in samples)
    assert sampler.remote_error.startswith("cannot reach")
    assert Path(sampler._path).exists() is False
