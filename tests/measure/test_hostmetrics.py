"""Host/GPU sampler: real psutil and node_exporter, FAKE NVML (no GPU on this machine)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from inferops.exitcodes import UsageError
from inferops.measure.hostmetrics import (
    GPU_FIELDS,
    HostSampler,
    NodeExporterSampler,
    gpu_inventory,
)

from . import fake_pynvml

BASE_KEYS = {
    "t",
    "cpu_pct",
    "mem_pct",
    "net_rx_bytes_s",
    "net_tx_bytes_s",
    "disk_read_bytes_s",
    "disk_write_bytes_s",
    "gen_cpu_pct",
    *GPU_FIELDS,
}
BURN = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end: pass\n"


def _gpu(**over):
    gpu = {
        "name": "NVIDIA L4",
        "uuid": "GPU-0000",
        "mem_total": 24 * 2**30,
        "mem_used": 6 * 2**30,
        "util": 40,
        "power_mw": 52_300,
        "power_limit_mw": 72_000,
        "temp": 51,
        "sm_clock": 1_800,
        "mem_clock": 6_250,
    }
    gpu.update(over)
    return gpu


def _sample_for(sampler, seconds):
    with sampler:
        time.sleep(seconds)
    return sampler.samples()


def _real_nvml_works() -> bool:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


# --- real host, real pynvml -----------------------------------------------------------


def test_host_sampler_samples_at_interval_with_real_no_gpu_path():
    sampler = HostSampler(interval=0.5)  # gpu=True: the real pynvml is tried
    rows = _sample_for(sampler, 2.5)
    assert 2 <= len(rows) <= 8  # ~5 at 0.5 s; loose, behaviour not speed
    ts = [r["t"] for r in rows]
    assert ts == sorted(ts) and abs(ts[0] - time.time()) < 60
    ncpu = psutil.cpu_count()
    for row in rows:
        assert BASE_KEYS <= row.keys()
        assert 0 <= row["cpu_pct"] <= 100
        assert [row[f"cpu{i}_pct"] is not None for i in range(ncpu)] == [True] * ncpu
        assert f"cpu{ncpu}_pct" not in row
        assert 0 < row["mem_pct"] <= 100
        assert row["net_rx_bytes_s"] >= 0 and row["net_tx_bytes_s"] >= 0
        assert row["gen_cpu_pct"] >= 0
    if not _real_nvml_works():  # this machine: no GPU, the real pynvml raises
        assert sampler.gpus == []
        assert all(row[f] is None for row in rows for f in GPU_FIELDS)
        assert not any(k.startswith("gpu0_") for row in rows for k in row)
        assert sampler.peaks()["gpu_util_pct_max"] is None
    else:  # run where a GPU exists: the real values come through
        assert sampler.gpus and rows[-1]["gpu0_mem_pct"] is not None
    peaks = sampler.peaks()
    assert peaks["cpu_pct_max"] == max(r["cpu_pct"] for r in rows)
    assert peaks["memory_pct_max"] == max(r["mem_pct"] for r in rows)
    assert sampler.errors == 0


def test_real_gpu_inventory_matches_nvml_presence():
    inventory = gpu_inventory()
    if _real_nvml_works():
        assert inventory and all(g["name"] for g in inventory)
    else:
        assert inventory == []


def test_gen_cpu_pct_rises_when_a_child_burns_cpu():
    ncpu = psutil.cpu_count()
    sampler = HostSampler(interval=0.5, gpu=False)
    with sampler:
        time.sleep(1.1)
        idle = [r["gen_cpu_pct"] for r in sampler.samples()]
        child = subprocess.Popen([sys.executable, "-c", BURN.format(s=2.0)])
        child.wait(timeout=30)
        time.sleep(0.6)  # a sample after the child was reaped
    rows = sampler.samples()
    during = [r["gen_cpu_pct"] for r in rows[len(idle) :]]
    assert idle and max(idle) < 25
    assert max(during) >= 35  # one busy core is 100; the shared 2-core box may halve it
    # the reaped child's time moves to children_user; it must not be counted twice
    assert max(r["gen_cpu_pct"] for r in rows) <= 100 * ncpu * 1.15
    assert sampler.peaks()["gen_cpu_pct_max"] == max(during)


def test_watching_a_missing_process_is_usage_error():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(UsageError, match=f"process {proc.pid}"):
        HostSampler(gpu=False, process_pid=proc.pid).start()


def test_interval_must_be_positive():
    with pytest.raises(UsageError, match="interval"):
        HostSampler(interval=0)


def test_peaks_without_samples_are_none():
    assert set(HostSampler(gpu=False).peaks().values()) == {None}


# --- FAKE NVML (no GPU here) ------------------------------------------------------------


def test_two_fake_gpus_per_gpu_and_aggregate_values():
    nvml = fake_pynvml.make(
        [
            _gpu(name=b"NVIDIA L4", uuid="GPU-aaa"),  # old pynvml returns bytes
            _gpu(
                name="NVIDIA A10",
                uuid="GPU-bbb",
                util=90,
                mem_used=12 * 2**30,
                power_mw=140_500,
                temp=47,
                sm_clock=1_695,
                mem_clock=6_251,
            ),
        ],
        driver=b"550.54.15",
    )
    sampler = HostSampler(interval=0.2, nvml=nvml)
    assert [g["name"] for g in sampler.gpus] == ["NVIDIA L4", "NVIDIA A10"]
    assert sampler.gpus[1] == {
        "index": 1,
        "name": "NVIDIA A10",
        "uuid": "GPU-bbb",
        "driver_version": "550.54.15",
        "memory_total_bytes": 24 * 2**30,
        "power_limit_w": 72.0,
    }
    rows = _sample_for(sampler, 0.7)
    assert rows
    row = rows[-1]
    assert (row["gpu0_util_pct"], row["gpu0_mem_pct"], row["gpu0_power_w"]) == (40.0, 25.0, 52.3)
    assert (row["gpu0_temp_c"], row["gpu0_sm_clock_mhz"], row["gpu0_mem_clock_mhz"]) == (
        51,
        1_800,
        6_250,
    )
    assert (row["gpu1_util_pct"], row["gpu1_mem_pct"], row["gpu1_power_w"]) == (90.0, 50.0, 140.5)
    # aggregate = max across GPUs
    assert (row["gpu_util_pct"], row["gpu_mem_pct"], row["gpu_power_w"], row["gpu_temp_c"]) == (
        90.0,
        50.0,
        140.5,
        51,
    )
    assert "gpu2_util_pct" not in row
    peaks = sampler.peaks()
    assert (peaks["gpu_util_pct_max"], peaks["gpu_mem_pct_max"]) == (90.0, 50.0)
    assert (peaks["gpu_power_w_max"], peaks["gpu_temp_c_max"]) == (140.5, 51)
    assert peaks["cpu_pct_max"] is not None and peaks["gen_cpu_pct_max"] is not None
    assert nvml.calls == {"init": 1, "shutdown": 1}  # stop() shuts NVML down


def test_fake_gpu_without_power_reading_gives_none_not_crash():
    not_supported = fake_pynvml.NVMLError(fake_pynvml.NVML_ERROR_NOT_SUPPORTED)
    assert isinstance(not_supported, fake_pynvml.NVMLError_NotSupported)
    nvml = fake_pynvml.make(
        [
            _gpu(power_mw=not_supported, power_limit_mw=not_supported),
            _gpu(power_mw=not_supported, temp=not_supported),
        ]
    )
    sampler = HostSampler(interval=0.2, nvml=nvml)
    assert sampler.gpus[0]["power_limit_w"] is None
    rows = _sample_for(sampler, 0.5)
    assert rows and sampler.errors == 0
    row = rows[-1]
    assert row["gpu0_power_w"] is None and row["gpu1_power_w"] is None
    assert row["gpu_power_w"] is None  # no GPU could tell
    assert row["gpu1_temp_c"] is None and row["gpu_temp_c"] == 51  # max of the known ones
    assert row["gpu0_util_pct"] == 40.0
    assert sampler.peaks()["gpu_power_w_max"] is None


def test_fake_nvml_library_not_found_is_no_gpu():
    nvml = fake_pynvml.make([_gpu()], init_error=fake_pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    assert gpu_inventory(nvml=nvml) == []
    sampler = HostSampler(interval=0.2, nvml=nvml)
    assert sampler.gpus == []
    rows = _sample_for(sampler, 0.5)
    assert rows and all(r[f] is None for r in rows for f in GPU_FIELDS)
    assert rows[-1]["cpu_pct"] is not None  # the host part still works
    assert nvml.calls["shutdown"] == 0


def test_fake_pynvml_module_is_picked_up_by_import(monkeypatch):
    nvml = fake_pynvml.make([_gpu(uuid="GPU-imported")])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert [g["uuid"] for g in gpu_inventory()] == ["GPU-imported"]
    assert nvml.calls == {"init": 1, "shutdown": 1}


def test_unexpected_failure_in_a_sample_never_leaves_the_thread():
    nvml = fake_pynvml.make([_gpu(util=RuntimeError("driver exploded"))])
    sampler = HostSampler(interval=0.1, nvml=nvml)
    rows = _sample_for(sampler, 0.5)  # stop() must not raise either
    assert rows == [] and sampler.errors >= 2


# --- real node_exporter --------------------------------------------------------------------


def test_node_exporter_sampler_reads_target_host(node_exporter):
    sampler = NodeExporterSampler(node_exporter.url.removesuffix("/metrics"), interval=0.5)
    assert sampler.url == node_exporter.url
    child = None
    with sampler:
        time.sleep(0.6)
        child = subprocess.Popen([sys.executable, "-c", BURN.format(s=1.5)])
        child.wait(timeout=30)
    rows = sampler.samples()
    assert len(rows) >= 3 and sampler.errors == 0
    ncpu = os.cpu_count()
    for row in rows:
        assert BASE_KEYS <= row.keys()
        assert 0 <= row["cpu_pct"] <= 100
        assert all(row[f"cpu{i}_pct"] is not None for i in range(ncpu))
        assert row["net_rx_bytes_s"] >= 0 and row["disk_read_bytes_s"] >= 0
        assert row["gen_cpu_pct"] is None and row["gpu_util_pct"] is None
        # same machine here, so node_exporter and psutil must roughly agree on memory
        assert abs(row["mem_pct"] - psutil.virtual_memory().percent) < 10
    # our burning child is on the "target" host: a core's worth of CPU shows up
    assert sampler.peaks()["cpu_pct_max"] >= 100 / ncpu * 0.6
    # the cumulative counters are the host's own (same host here: psutil must agree)
    counters = sampler.scrape()
    nics = psutil.net_io_counters(pernic=True)
    disk = psutil.disk_io_counters()
    for got, want in [
        (counters["rx"], sum(v.bytes_recv for k, v in nics.items() if k != "lo")),
        (counters["tx"], sum(v.bytes_sent for k, v in nics.items() if k != "lo")),
        (counters["read"], disk.read_bytes),
        (counters["write"], disk.write_bytes),
    ]:
        assert want * 0.95 - 2**20 <= got <= want * 1.05 + 2**20


def test_node_exporter_unreachable_is_usage_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sampler = NodeExporterSampler(f"127.0.0.1:{port}", interval=0.5)
    with pytest.raises(
        UsageError, match=f"cannot read node_exporter at http://127.0.0.1:{port}/metrics"
    ):
        sampler.start()


def test_not_a_node_exporter_is_usage_error():
    from prometheus_client import CollectorRegistry, Counter, start_http_server

    registry = CollectorRegistry()
    Counter("something", "not node metrics", registry=registry).inc()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        port = server.server_address[1]
        with pytest.raises(UsageError, match="not a node_exporter"):
            NodeExporterSampler(f"http://127.0.0.1:{port}/metrics").start()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_node_exporter_dying_mid_run_leaves_a_gap_not_a_crash(node_exporter):
    sampler = NodeExporterSampler(node_exporter.url, interval=0.3)
    with sampler:
        time.sleep(0.8)
        os.killpg(node_exporter.proc.pid, signal.SIGKILL)
        node_exporter.proc.wait(timeout=5)
        before = len(sampler.samples())
        time.sleep(0.8)
    assert before >= 1
    assert len(sampler.samples()) == before
    assert sampler.errors >= 1


def test_sampler_in_a_child_of_the_generator_does_not_count_itself():
    # The engine runs the sampler as a child of the load generator (sampler_process.py).
    script = textwrap.dedent(
        """
        import json, os, time
        from inferops.measure.hostmetrics import HostSampler
        s = HostSampler(0.3, gpu=False, process_pid=os.getppid())
        s._open()
        me = s._psutil.Process()
        before_tree, before_me = s._tree_cpu_seconds(), sum(me.cpu_times()[:2])
        end = time.monotonic() + 0.8
        while time.monotonic() < end:
            pass
        print(json.dumps([s._tree_cpu_seconds() - before_tree,
                          sum(me.cpu_times()[:2]) - before_me]))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    tree_delta, own_delta = json.loads(out.stdout)
    assert own_delta > 0.2  # the child really burned CPU...
    assert tree_delta < own_delta / 2  # ...and none of it is the generator's
