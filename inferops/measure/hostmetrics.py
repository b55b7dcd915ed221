"""Host and GPU metrics sampled in the background during a load run.

:class:`HostSampler` samples the machine it runs on (psutil for CPU, memory,
network and disk; NVML through ``pynvml`` for NVIDIA GPUs).
:class:`NodeExporterSampler` samples a *remote* target host through its
node_exporter ``/metrics`` page, so a run against a fleet node records the
target's CPU and memory, not the load generator's.

Both have the same interface::

    with HostSampler(interval=1.0) as sampler:
        run_the_load()
    rows = sampler.samples()   # one dict per interval, keys listed in docs/measure.md
    peaks = sampler.peaks()    # cpu_pct_max, memory_pct_max, ... for summary.json

Rates (``*_bytes_s``) are counter deltas between two samples divided by the
time between them; percentages are 0-100. Without a GPU (or without the NVML
library) every GPU field is ``None``. Sampling never raises out of its thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from inferops.exitcodes import UsageError

log = logging.getLogger(__name__)

#: aggregate GPU fields of each sample (max across GPUs; None without a GPU)
GPU_FIELDS = ("gpu_util_pct", "gpu_mem_pct", "gpu_power_w", "gpu_temp_c")
#: per-GPU fields of each sample, as gpu{N}_{field}
GPU_DEVICE_FIELDS = ("util_pct", "mem_pct", "power_w", "temp_c", "sm_clock_mhz", "mem_clock_mhz")

# peaks() key -> sample key
_PEAKS = {
    "cpu_pct_max": "cpu_pct",
    "memory_pct_max": "mem_pct",
    "gen_cpu_pct_max": "gen_cpu_pct",
    "gpu_util_pct_max": "gpu_util_pct",
    "gpu_mem_pct_max": "gpu_mem_pct",
    "gpu_power_w_max": "gpu_power_w",
    "gpu_temp_c_max": "gpu_temp_c",
}


class _Sampler:
    """The background loop shared by both samplers; subclasses measure."""

    def __init__(self, interval: float):
        if not interval > 0:
            raise UsageError(f"sampling interval must be > 0 seconds, got {interval!r}")
        self.interval = float(interval)
        self._samples: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_mono = 0.0
        self._warned = False
        #: sampling errors swallowed by the thread (the run goes on without that sample)
        self.errors = 0

    # --- what subclasses provide -------------------------------------------------
    def _open(self) -> None:
        """Take the baseline counters; may raise UsageError (called by start())."""

    def _measure(self, dt: float) -> dict:
        raise NotImplementedError

    def _close(self) -> None:
        """Release resources (called by stop())."""

    # --- the loop -----------------------------------------------------------------
    def start(self):
        """Start sampling in a daemon thread; the first sample comes one interval later."""
        if self._thread is not None:
            raise RuntimeError("sampler already started")
        self._stop.clear()
        self._open()
        self._last_mono = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread; take a last sample if at least half an interval went by."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join()
        if time.monotonic() - self._last_mono >= self.interval / 2:
            self._sample_once()
        self._close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        # Sample on a fixed grid (start + k*interval) so slow samples do not drift.
        next_at = self._last_mono + self.interval
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            self._sample_once()
            next_at += self.interval
            now = time.monotonic()
            if next_at < now:  # fell behind (suspended, overloaded): skip, do not burst
                next_at = now + self.interval

    def _sample_once(self) -> None:
        try:
            now = time.monotonic()
            dt = now - self._last_mono
            if dt <= 0:
                return
            row = {"t": time.time()}
            row.update(self._measure(dt))
            self._last_mono = now
            with self._lock:
                self._samples.append(row)
        except Exception as exc:  # never kill the run because one sample failed
            self.errors += 1
            if not self._warned:
                self._warned = True
                log.warning("%s: a sample failed (%s); continuing", type(self).__name__, exc)

    # --- results ------------------------------------------------------------------
    def samples(self) -> list[dict]:
        """A copy of the samples so far, oldest first (safe while running)."""
        with self._lock:
            return [dict(row) for row in self._samples]

    def peaks(self) -> dict:
        """Maximum of each headline metric over all samples; None where never measured."""
        rows = self.samples()
        out: dict[str, float | None] = {}
        for peak, key in _PEAKS.items():
            values = [row[key] for row in rows if row.get(key) is not None]
            out[peak] = max(values) if values else None
        return out


# ---------------------------------------------------------------------------------
# The local host: psutil + NVML
# ---------------------------------------------------------------------------------


def _cpu_busy_total(times) -> tuple[float, float]:
    # Same accounting as psutil.cpu_percent, computed here because psutil keeps
    # its cpu_percent state module-global: another caller would reset our window.
    total = sum(times)
    # Linux counts guest time inside user/nice already.
    total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


def _pct(busy_delta: float, total_delta: float) -> float | None:
    if total_delta <= 0:
        return None
    return round(min(100.0, max(0.0, 100.0 * busy_delta / total_delta)), 2)


def _rate(now: float | None, before: float | None, dt: float) -> float | None:
    if now is None or before is None:
        return None
    return round(max(0.0, now - before) / dt, 1)  # counters that reset read as 0, not negative


class _Nvml:
    """NVML handles for every GPU, or none; every query failure reads as None."""

    def __init__(self, module: Any | None):
        self.nv = None
        self.handles: list = []
        self.gpus: list[dict] = []
        try:
            nv = module
            if nv is None:
                import pynvml as nv
            nv.nvmlInit()
        except ImportError as exc:
            log.debug("no GPU metrics: pynvml not importable (%s)", exc)
            return
        except Exception as exc:
            # NVMLError_LibraryNotFound / DriverNotLoaded / ... on hosts without a GPU
            log.debug("no GPU metrics: NVML unavailable (%s: %s)", type(exc).__name__, exc)
            return
        self.nv = nv
        try:
            count = nv.nvmlDeviceGetCount()
            self.handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except nv.NVMLError as exc:
            log.debug("no GPU metrics: cannot enumerate GPUs (%s)", exc)
            self.handles = []
        driver = _text(self._query(nv.nvmlSystemGetDriverVersion))
        for index, handle in enumerate(self.handles):
            mem = self._query(nv.nvmlDeviceGetMemoryInfo, handle)
            limit_mw = self._query(nv.nvmlDeviceGetEnforcedPowerLimit, handle)
            self.gpus.append(
                {
                    "index": index,
                    "name": _text(self._query(nv.nvmlDeviceGetName, handle)),
                    "uuid": _text(self._query(nv.nvmlDeviceGetUUID, handle)),
                    "driver_version": driver,
                    "memory_total_bytes": int(mem.total) if mem is not None else None,
                    "power_limit_w": round(limit_mw / 1000.0, 1) if limit_mw is not None else None,
                }
            )

    def _query(self, fn: Callable, *args):
        try:
            return fn(*args)
        except self.nv.NVMLError as exc:  # NotSupported, GpuIsLost, NoPermission, ...
            log.debug("NVML %s failed: %s", getattr(fn, "__name__", fn), exc)
            return None

    def measure(self) -> dict:
        nv = self.nv
        row: dict[str, Any] = {}
        per_field: dict[str, list[float]] = {f: [] for f in GPU_FIELDS}
        for i, handle in enumerate(self.handles):
            util = self._query(nv.nvmlDeviceGetUtilizationRates, handle)
            mem = self._query(nv.nvmlDeviceGetMemoryInfo, handle)
            power_mw = self._query(nv.nvmlDeviceGetPowerUsage, handle)
            values = {
                "util_pct": float(util.gpu) if util is not None else None,
                "mem_pct": (
                    round(100.0 * mem.used / mem.total, 2)
                    if mem is not None and mem.total
                    else None
                ),
                "power_w": round(power_mw / 1000.0, 1) if power_mw is not None else None,
                "temp_c": self._query(nv.nvmlDeviceGetTemperature, handle, nv.NVML_TEMPERATURE_GPU),
                "sm_clock_mhz": self._query(nv.nvmlDeviceGetClockInfo, handle, nv.NVML_CLOCK_SM),
                "mem_clock_mhz": self._query(nv.nvmlDeviceGetClockInfo, handle, nv.NVML_CLOCK_MEM),
            }
            for field in GPU_DEVICE_FIELDS:
                row[f"gpu{i}_{field}"] = values[field]
            for agg in GPU_FIELDS:
                value = values[agg.removeprefix("gpu_")]
                if value is not None:
                    per_field[agg].append(value)
        for agg in GPU_FIELDS:
            row[agg] = max(per_field[agg]) if per_field[agg] else None
        return row

    def close(self) -> None:
        if self.nv is not None:
            try:
                self.nv.nvmlShutdown()
            except Exception as exc:
                log.debug("nvmlShutdown failed: %s", exc)
            self.nv = None
            self.handles = []


def _text(value) -> str | None:
    # Older pynvml returns bytes, newer returns str.
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def gpu_inventory(*, nvml: Any | None = None) -> list[dict]:
    """Static facts for each NVIDIA GPU, ``[]`` without NVML or a GPU.

    Each item: ``index, name, uuid, driver_version, memory_total_bytes,
    power_limit_w`` (a field NVML cannot tell is None). ``nvml`` replaces the
    ``pynvml`` module (tests pass a fake).
    """
    probe = _Nvml(nvml)
    try:
        return probe.gpus
    finally:
        probe.close()


class HostSampler(_Sampler):
    """Sample this machine every ``interval`` seconds in a daemon thread.

    ``gpu=False`` skips NVML. ``process_pid`` is the load generator whose CPU
    goes into ``gen_cpu_pct`` (default: this process); its live and exited
    children count too, and 100 means one full core. ``nvml`` replaces the
    ``pynvml`` module (tests pass a fake; there is no GPU on the test machine).
    ``gpus`` lists the static facts of each GPU (see :func:`gpu_inventory`).
    """

    def __init__(
        self,
        interval: float = 1.0,
        *,
        gpu: bool = True,
        process_pid: int | None = None,
        nvml: Any | None = None,
    ):
        super().__init__(interval)
        import psutil

        self._psutil = psutil
        self.gpu = gpu
        self.process_pid = process_pid if process_pid is not None else os.getpid()
        self._nvml_module = nvml
        self._nvml: _Nvml | None = None
        self.gpus: list[dict] = []
        if gpu:
            # Open NVML now so ``gpus`` is known before start(); stop() shuts it down.
            self._nvml = _Nvml(nvml)
            self.gpus = self._nvml.gpus

    def _open(self) -> None:
        ps = self._psutil
        if self.gpu and self._nvml is None:  # restarted after stop()
            self._nvml = _Nvml(self._nvml_module)
            self.gpus = self._nvml.gpus
        try:
            self._proc = ps.Process(self.process_pid)
        except ps.Error as exc:
            raise UsageError(f"cannot watch process {self.process_pid}: {exc}") from exc
        self._prev_cpu = _cpu_busy_total(ps.cpu_times())
        self._prev_cores = [_cpu_busy_total(t) for t in ps.cpu_times(percpu=True)]
        self._prev_net = self._net_counters()
        self._prev_disk = ps.disk_io_counters()
        self._prev_gen = self._tree_cpu_seconds()

    def _close(self) -> None:
        if self._nvml is not None:
            self._nvml.close()
            self._nvml = None

    def _net_counters(self) -> tuple[float | None, float | None]:
        # Loopback is not a network link (and node_exporter leaves it out): skip it.
        nics = {k: v for k, v in self._psutil.net_io_counters(pernic=True).items() if k != "lo"}
        if not nics:
            return None, None
        return (
            float(sum(v.bytes_recv for v in nics.values())),
            float(sum(v.bytes_sent for v in nics.values())),
        )

    def _tree_cpu_seconds(self) -> float | None:
        """CPU seconds of the process and its descendants, alive or exited.

        Each process counts its own time plus its reaped children's
        (children_user/system), so an exiting child's time moves to its parent
        and differences between two calls stay right. This sampler's own
        process is left out when it is a descendant (sampler_process.py).
        """
        ps = self._psutil
        try:
            procs = [self._proc, *self._proc.children(recursive=True)]
        except ps.Error:
            return None  # the generator itself is gone
        me = os.getpid()
        total = 0.0
        for proc in procs:
            if proc.pid == me and proc is not self._proc:
                continue  # a sampler running as the generator's child is not load
            try:
                t = proc.cpu_times()
            except ps.Error:
                continue  # exited between listing and reading
            total += t.user + t.system + t.children_user + t.children_system
        return total

    def _measure(self, dt: float) -> dict:
        ps = self._psutil
        row: dict[str, Any] = {}

        busy, total = _cpu_busy_total(ps.cpu_times())
        row["cpu_pct"] = _pct(busy - self._prev_cpu[0], total - self._prev_cpu[1])
        self._prev_cpu = (busy, total)
        cores = [_cpu_busy_total(t) for t in ps.cpu_times(percpu=True)]
        for i, (b, t) in enumerate(cores):
            prev = self._prev_cores[i] if i < len(self._prev_cores) else (b, t)
            row[f"cpu{i}_pct"] = _pct(b - prev[0], t - prev[1])
        self._prev_cores = cores

        row["mem_pct"] = round(ps.virtual_memory().percent, 2)

        net, prev = self._net_counters(), self._prev_net
        row["net_rx_bytes_s"] = _rate(net[0], prev[0], dt)
        row["net_tx_bytes_s"] = _rate(net[1], prev[1], dt)
        self._prev_net = net

        disk = ps.disk_io_counters()  # None where /proc/diskstats is unreadable
        prev = self._prev_disk
        row["disk_read_bytes_s"] = _rate(disk and disk.read_bytes, prev and prev.read_bytes, dt)
        row["disk_write_bytes_s"] = _rate(disk and disk.write_bytes, prev and prev.write_bytes, dt)
        self._prev_disk = disk

        gen = self._tree_cpu_seconds()
        if gen is not None and self._prev_gen is not None:
            row["gen_cpu_pct"] = round(max(0.0, gen - self._prev_gen) / dt * 100.0, 2)
        else:
            row["gen_cpu_pct"] = None
        self._prev_gen = gen

        if self._nvml is not None and self._nvml.nv is not None:
            row.update(self._nvml.measure())
        else:
            row.update(dict.fromkeys(GPU_FIELDS))
        return row


# ---------------------------------------------------------------------------------
# A remote host: node_exporter
# ---------------------------------------------------------------------------------


class NodeExporterSampler(_Sampler):
    """Sample a remote host's node_exporter every ``interval`` seconds.

    ``url`` is the exporter, e.g. ``http://10.0.0.5:9100`` (``/metrics`` is
    added when missing). :meth:`start` scrapes once and raises
    :class:`~inferops.exitcodes.UsageError` if the exporter cannot be read, so
    a wrong address fails before the load starts. Later failed scrapes are
    counted in ``errors`` and leave a gap, not a crash.

    Samples carry the same keys as :class:`HostSampler`'s; ``gen_cpu_pct`` and
    the GPU fields are None (node_exporter knows neither).
    """

    def __init__(self, url: str, interval: float = 1.0, *, timeout: float | None = None):
        super().__init__(interval)
        url = url.rstrip("/")
        if "://" not in url:
            url = "http://" + url
        if not url.endswith("/metrics"):
            url += "/metrics"
        self.url = url
        self.timeout = timeout if timeout is not None else max(1.0, self.interval)
        self.gpus: list[dict] = []

    def scrape(self) -> dict:
        """Read the exporter once: cumulative counters and memory, as a dict."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(self.url, timeout=self.timeout) as resp:
            text = resp.read().decode("utf-8", "replace")
        cores: dict[str, dict[str, float]] = {}
        sums = {"rx": 0.0, "tx": 0.0, "read": 0.0, "write": 0.0}
        seen = set()
        mem: dict[str, float] = {}
        wanted = {
            "node_network_receive_bytes": "rx",
            "node_network_transmit_bytes": "tx",
            "node_disk_read_bytes": "read",
            "node_disk_written_bytes": "write",
        }
        for family in text_string_to_metric_families(text):
            # The parser strips _total from counter family names.
            name = family.name.removesuffix("_total")
            if name == "node_cpu_seconds":
                for s in family.samples:
                    if s.name.endswith("_total") or s.name == "node_cpu_seconds":
                        cpu = cores.setdefault(s.labels.get("cpu", "?"), {})
                        cpu[s.labels.get("mode", "")] = s.value
            elif name in wanted:
                key = wanted[name]
                for s in family.samples:
                    if s.name.endswith("_created") or s.labels.get("device") == "lo":
                        continue
                    sums[key] += s.value
                    seen.add(key)
            elif name in ("node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes"):
                mem[name] = family.samples[0].value
        if not cores:
            raise ValueError(f"{self.url} has no node_cpu_seconds_total: not a node_exporter?")
        out: dict[str, Any] = {}
        order = sorted(cores, key=lambda c: (not c.isdigit(), int(c) if c.isdigit() else c))
        out["cores"] = [_modes_busy_total(cores[c]) for c in order]
        out["cpu"] = (sum(b for b, _ in out["cores"]), sum(t for _, t in out["cores"]))
        for key in sums:
            out[key] = sums[key] if key in seen else None
        total = mem.get("node_memory_MemTotal_bytes")
        avail = mem.get("node_memory_MemAvailable_bytes")
        out["mem_pct"] = (
            round(100.0 * (1 - avail / total), 2) if total and avail is not None else None
        )
        return out

    def _open(self) -> None:
        try:
            self._prev = self.scrape()
        except (OSError, urllib.error.URLError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise UsageError(f"cannot read node_exporter at {self.url}: {reason}") from exc

    def _measure(self, dt: float) -> dict:
        now = self.scrape()
        prev, self._prev = self._prev, now
        row: dict[str, Any] = {
            "cpu_pct": _pct(now["cpu"][0] - prev["cpu"][0], now["cpu"][1] - prev["cpu"][1])
        }
        for i, (b, t) in enumerate(now["cores"]):
            pb, pt = prev["cores"][i] if i < len(prev["cores"]) else (b, t)
            row[f"cpu{i}_pct"] = _pct(b - pb, t - pt)
        row["mem_pct"] = now["mem_pct"]
        row["net_rx_bytes_s"] = _rate(now["rx"], prev["rx"], dt)
        row["net_tx_bytes_s"] = _rate(now["tx"], prev["tx"], dt)
        row["disk_read_bytes_s"] = _rate(now["read"], prev["read"], dt)
        row["disk_write_bytes_s"] = _rate(now["write"], prev["write"], dt)
        row["gen_cpu_pct"] = None
        row.update(dict.fromkeys(GPU_FIELDS))
        return row


def _modes_busy_total(modes: dict[str, float]) -> tuple[float, float]:
    total = sum(modes.values())
    idle = modes.get("idle", 0.0) + modes.get("iowait", 0.0)
    return total - idle, total
