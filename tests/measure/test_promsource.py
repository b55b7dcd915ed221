"""PrometheusSource without a server: step and window choice, PromQL, parsing, credentials.

The live path (a real Prometheus scraping real node_exporters during a real bench) is
tests/monitoring/test_bench_prometheus.py.
"""

from __future__ import annotations

import math

import pytest

from inferops.exitcodes import UsageError
from inferops.measure import promsource
from inferops.measure.promsource import PrometheusSource


@pytest.mark.parametrize(
    ("duration", "step"),
    [(0, 1.0), (30, 1.0), (9_999, 1.0), (10_000, 2.0), (3 * 3600, 2.0), (7 * 86400, 61.0)],
)
def test_step_is_one_second_until_the_point_limit_forces_more(duration, step):
    assert promsource.choose_step(duration) == step
    points = math.floor(duration / step) + 1
    assert points <= promsource.MAX_POINTS < 11_000  # Prometheus refuses more than 11,000


def test_rate_window_is_grafanas_rate_interval():
    assert promsource.rate_window(1, 1) == 4  # 4 scrapes
    assert promsource.rate_window(1, 15) == 60
    assert promsource.rate_window(120, 15) == 135  # step + one scrape


def test_instance_matcher_takes_the_label_with_or_without_a_port():
    import re

    matcher = promsource.instance_matcher("gpu-1.example")
    assert matcher == r'instance=~"gpu\\-1\\.example(:[0-9]+)?"'
    # what RE2 sees once PromQL unescapes the string (RE2 anchors the regex)
    regex = matcher.split('"')[1].replace("\\\\", "\\")
    for label, hit in [
        ("gpu-1.example", True),
        ("gpu-1.example:9400", True),
        ("gpu-1xexample", False),
        ("gpu-1.example2", False),
        ("xgpu-1.example", False),
    ]:
        assert bool(re.fullmatch(regex, label)) is hit, label


def test_queries_cover_every_sample_field():
    q = promsource.queries('instance=~"a"', 4)
    assert set(q) >= {"cpu_pct", "mem_pct", "net_rx_bytes_s", "disk_write_bytes_s"}
    assert "[4000ms]" in q["cpu_pct"] and 'mode=~"idle|iowait"' in q["cpu_pct"]
    assert 'device!="lo"' in q["net_rx_bytes_s"]  # loopback is not a link (as locally)
    assert "DCGM_FI_DEV_GPU_UTIL" in q["gpu{gpu}_util_pct"]


def _series(values, **labels):
    return {"metric": labels, "values": [[t, str(v)] for t, v in values]}


def test_rows_of_numbers_cores_and_gpus_and_takes_the_gpu_max():
    rows = promsource.rows_of(
        {
            "cpu_pct": [_series([(10, 50.123), (11, "NaN")])],
            "cpu{cpu}_pct": [_series([(10, 20)], cpu="10"), _series([(10, 80)], cpu="2")],
            "gpu{gpu}_util_pct": [_series([(10, 30)], gpu="1"), _series([(10, 90)], gpu="0")],
        }
    )
    assert rows[10.0]["cpu_pct"] == 50.12
    assert 11.0 not in rows  # NaN is a gap, not a number
    assert rows[10.0]["cpu0_pct"] == 80 and rows[10.0]["cpu1_pct"] == 20  # cpu 2 before 10
    assert rows[10.0]["gpu0_util_pct"] == 90 and rows[10.0]["gpu_util_pct"] == 90


def test_several_hosts_get_host_columns_and_the_worst_in_the_documented_ones():
    samples = promsource.combine(
        {
            "a": {10.0: {"cpu_pct": 20.0, "mem_pct": 70.0}, 11.0: {"cpu_pct": 95.0}},
            "b": {10.0: {"cpu_pct": 60.0, "mem_pct": 30.0}},
        }
    )
    assert [s["t"] for s in samples] == [10.0, 11.0]
    assert samples[0]["host0_cpu_pct"] == 20 and samples[0]["host1_cpu_pct"] == 60
    assert samples[0]["cpu_pct"] == 60 and samples[0]["mem_pct"] == 70
    assert samples[1]["cpu_pct"] == 95 and samples[1]["mem_pct"] is None
    peaks = promsource.peaks_by_instance(samples, ["a", "b"], 10, 11)
    assert peaks["a"]["cpu_pct_max"] == 95 and peaks["b"]["cpu_pct_max"] == 60
    assert peaks["b"]["gpu_util_pct_max"] is None


def test_one_host_keeps_the_local_samplers_keys():
    samples = promsource.combine({"a": {10.0: {"cpu_pct": 20.0, "cpu0_pct": 25.0}}})
    assert samples == [{"t": 10.0, "cpu_pct": 20.0, "cpu0_pct": 25.0, **_nones()}]


def _nones():
    return {k: None for k in promsource.HOST_FIELDS if k != "cpu_pct"}


def test_a_long_steps_value_fills_each_second_until_the_next():
    filled = promsource.fill_seconds([{"t": 10.0, "x": 1}, {"t": 13.0, "x": 2}], 3.0)
    assert [(s["t"], s["x"]) for s in filled] == [
        (10, 1),
        (11, 1),
        (12, 1),
        (13, 2),
        (14, 2),
        (15, 2),
    ]
    one = [{"t": 1.0}]
    assert promsource.fill_seconds(one, 1.0) is one


def test_credentials_in_the_url_become_a_header_never_a_shown_url():
    source = PrometheusSource.from_options("http://ops:s3cr%40t@mon:9090/prom/", ["a", "a", "b"])
    assert source.url == "http://mon:9090/prom"
    assert (source.username, source.password) == ("ops", "s3cr@t")
    assert source.display_url == "http://ops:***@mon:9090/prom"
    assert "s3cr" not in source.describe() and "s3cr" not in repr(source)
    assert source.instances == ("a", "b") and source.secrets == ["s3cr@t"]


def test_password_file_with_the_deploys_user(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("generated-secret\n")
    source = PrometheusSource.from_options("http://mon:9090", ["a"], str(secret))
    assert (source.username, source.password) == ("inferops", "generated-secret")
    assert source.display_url == "http://inferops:***@mon:9090"


@pytest.mark.parametrize(
    ("url", "instances", "password_file", "message"),
    [
        ("http://mon:9090", [], None, "needs at least one --instance"),
        ("http://mon:9090?x=1", ["a"], None, "without"),
        ("http://mon:9090", ['a"}'], None, "not an instance label"),
        ("http://mon:9090", ["a"], "/nonexistent/pw", "cannot read /nonexistent/pw"),
        ("http://u:p@mon:9090", ["a"], __file__, "has a password already"),
    ],
)
def test_bad_options_are_usage_errors(url, instances, password_file, message):
    with pytest.raises(UsageError, match=message):
        PrometheusSource.from_options(url, instances, password_file)
