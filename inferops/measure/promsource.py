"""Host and GPU metrics of remote hosts, read back from Prometheus for a run's window.

``inferops bench --prometheus URL --instance HOST...`` records the system-under-test
hosts' node_exporter and dcgm-exporter series in the run folder, in the same sample
format as the local psutil/NVML sampler (:mod:`inferops.measure.hostmetrics`), so a
remote fleet gets the same host/GPU charts and the same CPU/memory/GPU threshold
checks as a local run.

* :meth:`PrometheusSource.check` runs before any load: Prometheus must answer and
  every ``--instance`` must have an ``up`` series that is 1 (exit 2 otherwise).
* :meth:`PrometheusSource.fetch` runs after the load: it waits (bounded) for the
  scrape after the window's end, then reads the window with ``query_range`` at a
  step chosen from the run's length (:func:`choose_step`: at most
  :data:`MAX_POINTS` points, Prometheus' own limit is 11,000), rates over
  Grafana's ``$__rate_interval`` (:func:`rate_window`).

An ``--instance`` matches the ``instance`` label exactly or with a port
(``gpu-1`` matches ``gpu-1`` and ``gpu-1:9400``): the inventory's scrape configs
label every job of a host with its name; a stock config has ``HOST:9100`` and
``HOST:9400``.

Credentials (``http://user:pass@host:9090`` or a password file) go into a basic-auth
header, never into a message, the manifest or a child's command line.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import statistics
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from inferops.exitcodes import UsageError
from inferops.measure.hostmetrics import GPU_FIELDS
from inferops.measure.runformat import TIMESERIES_COLUMNS
from inferops.redact import redact_url

log = logging.getLogger(__name__)

#: points per series per query at most (Prometheus refuses more than 11,000)
MAX_POINTS = 10_000
#: the basic-auth user the monitoring deploy creates (docs/monitoring.md)
DEFAULT_USER = "inferops"
#: assumed scrape interval when Prometheus holds too few samples to tell
DEFAULT_SCRAPE_S = 15.0
#: per-host fields of a multi-host run, as host{N}_{field}: the host columns of
#: timeseries.csv (everything after the load's own columns, from cpu_pct on)
HOST_FIELDS = TIMESERIES_COLUMNS[TIMESERIES_COLUMNS.index("cpu_pct") :]


class PrometheusError(Exception):
    """Prometheus could not be read (the message never holds a credential)."""


def choose_step(duration_s: float, max_points: int = MAX_POINTS) -> float:
    """Seconds between points: 1 s (the run folder's grid) unless the run is so long
    that 1 s would exceed ``max_points``; then the next whole second that fits."""
    if not duration_s > 0:
        return 1.0
    return float(max(1, math.ceil(duration_s / (max_points - 1))))


def rate_window(step_s: float, scrape_s: float) -> float:
    """``rate()``'s range: Grafana's ``$__rate_interval``, max(step + scrape, 4 x scrape)."""
    return max(step_s + scrape_s, 4.0 * scrape_s)


def instance_matcher(instance: str) -> str:
    """The PromQL matcher for one ``--instance``: the label, with or without a port."""
    # RE2 takes any backslash-escaped punctuation literally; PromQL strings escape "\".
    escaped = "".join(c if c.isalnum() else "\\\\" + c for c in instance)
    return f'instance=~"{escaped}(:[0-9]+)?"'


def _duration(seconds: float) -> str:
    return f"{math.ceil(seconds * 1000)}ms"


def queries(matcher: str, rate_s: float) -> dict[str, str]:
    """PromQL per sample field for one instance; ``{cpu}``/``{gpu}`` fields are per core/GPU."""
    r = _duration(rate_s)
    cpu = f"rate(node_cpu_seconds_total{{{matcher}}}[{r}])"
    idle = f'rate(node_cpu_seconds_total{{{matcher},mode=~"idle|iowait"}}[{r}])'
    fb_used = f"DCGM_FI_DEV_FB_USED{{{matcher}}}"
    fb_free = f"DCGM_FI_DEV_FB_FREE{{{matcher}}}"
    return {
        "cpu_pct": f"100 * (1 - sum({idle}) / sum({cpu}))",
        "cpu{cpu}_pct": f"100 * (1 - sum by (cpu) ({idle}) / sum by (cpu) ({cpu}))",
        "mem_pct": f"100 * (1 - sum(node_memory_MemAvailable_bytes{{{matcher}}})"
        f" / sum(node_memory_MemTotal_bytes{{{matcher}}}))",
        "net_rx_bytes_s": f'sum(rate(node_network_receive_bytes_total{{{matcher},device!="lo"}}[{r}]))',
        "net_tx_bytes_s": f'sum(rate(node_network_transmit_bytes_total{{{matcher},device!="lo"}}[{r}]))',
        "disk_read_bytes_s": f"sum(rate(node_disk_read_bytes_total{{{matcher}}}[{r}]))",
        "disk_write_bytes_s": f"sum(rate(node_disk_written_bytes_total{{{matcher}}}[{r}]))",
        "gpu{gpu}_util_pct": f"max by (gpu) (DCGM_FI_DEV_GPU_UTIL{{{matcher}}})",
        "gpu{gpu}_mem_pct": f"100 * max by (gpu) ({fb_used} / ({fb_used} + {fb_free}))",
        "gpu{gpu}_power_w": f"max by (gpu) (DCGM_FI_DEV_POWER_USAGE{{{matcher}}})",
        "gpu{gpu}_temp_c": f"max by (gpu) (DCGM_FI_DEV_GPU_TEMP{{{matcher}}})",
        "gpu{gpu}_sm_clock_mhz": f"max by (gpu) (DCGM_FI_DEV_SM_CLOCK{{{matcher}}})",
        "gpu{gpu}_mem_clock_mhz": f"max by (gpu) (DCGM_FI_DEV_MEM_CLOCK{{{matcher}}})",
    }


def _natural(value: str):
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def rows_of(results: dict[str, list[dict]]) -> dict[float, dict]:
    """Sample rows by timestamp from ``query_range`` matrices, one per field template.

    ``{cpu}``/``{gpu}`` in a field name take the series' label, numbered in order
    (cpu0, cpu1, ...; gpu0, ...); the GPU aggregates (``gpu_util_pct``...) are the
    max across GPUs, as the local sampler writes them. NaN/Inf points are left out.
    """
    rows: dict[float, dict] = {}
    for template, matrix in results.items():
        label = "cpu" if "{cpu}" in template else "gpu" if "{gpu}" in template else None
        order = sorted((s.get("metric", {}).get(label, "") for s in matrix), key=_natural)
        for series in matrix:
            key = template
            if label is not None:
                index = order.index(series.get("metric", {}).get(label, ""))
                key = template.replace("{" + label + "}", str(index))
            for ts, text in series.get("values", []):
                value = float(text)
                if math.isfinite(value):
                    rows.setdefault(float(ts), {})[key] = round(value, 2)
    per_gpu = {agg: re.compile(rf"gpu\d+_{agg.removeprefix('gpu_')}$") for agg in GPU_FIELDS}
    for row in rows.values():
        for agg, pattern in per_gpu.items():
            values = [v for k, v in row.items() if pattern.match(k)]
            if values:
                row[agg] = max(values)
    return rows


def combine(per_instance: dict[str, dict[float, dict]]) -> list[dict]:
    """One sample list for all instances, oldest first, in the local sampler's keys.

    One instance: its rows as they are. Several: ``host{N}_{field}`` per instance
    (N in ``--instance`` order) and each documented field the max across instances
    (the worst host; per-core and per-GPU columns are left out).
    """
    names = list(per_instance)
    stamps = sorted({t for rows in per_instance.values() for t in rows})
    out = []
    for t in stamps:
        if len(names) == 1:
            row = dict(per_instance[names[0]].get(t, {}))
        else:
            row = {}
            for n, name in enumerate(names):
                sample = per_instance[name].get(t, {})
                for key in HOST_FIELDS:
                    row[f"host{n}_{key}"] = sample.get(key)
            for key in HOST_FIELDS:
                values = [row[f"host{n}_{key}"] for n in range(len(names))]
                values = [v for v in values if v is not None]
                row[key] = max(values) if values else None
        for key in HOST_FIELDS:
            row.setdefault(key, None)
        out.append({"t": t, **row})
    return out


def peaks_by_instance(samples: list[dict], names: list[str], start: float, end: float) -> dict:
    """``{instance: {cpu_pct_max: ..., memory_pct_max: ...}}`` over the window (±1 s)."""
    from inferops.measure.hostmetrics import _PEAKS

    window = [s for s in samples if start - 1 <= s["t"] <= end + 1]
    out = {}
    for n, name in enumerate(names):
        prefix = "" if len(names) == 1 else f"host{n}_"
        peaks = {}
        for peak, key in _PEAKS.items():
            if key == "gen_cpu_pct":
                continue
            values = [s.get(prefix + key) for s in window]
            values = [v for v in values if v is not None]
            peaks[peak] = max(values) if values else None
        out[name] = peaks
    return out


@dataclass
class PrometheusSource:
    """A Prometheus server and the ``--instance`` hosts to read from it."""

    url: str  # no credentials: scheme://host:port[/prefix]
    instances: tuple[str, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 10.0
    #: each instance's scrape interval, learned by check()
    scrape_s: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_options(
        cls,
        url: str,
        instances: list[str] | tuple[str, ...],
        password_file: str | None = None,
        require_instances: bool = True,
    ) -> PrometheusSource:
        """From the flags; UsageError for a bad URL, instance list or password file.
        (``inferops rollout`` reads alerts, not hosts: ``require_instances=False``.)"""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--prometheus: expected an http(s):// URL, got {redact_url(url)!r}")
        if parts.query or parts.fragment:
            raise UsageError("--prometheus: give the server's base URL, without ?query or #")
        if not instances and require_instances:
            raise UsageError("--prometheus needs at least one --instance HOST (the hosts to read)")
        names = []
        for name in instances:
            name = name.strip()
            if not name or any(c.isspace() or c in "\"'\\{}" for c in name):
                raise UsageError(f"--instance: not an instance label: {name!r}")
            if name not in names:
                names.append(name)
        user = urllib.parse.unquote(parts.username) if parts.username else None
        password = urllib.parse.unquote(parts.password) if parts.password is not None else None
        if password_file:
            if password is not None:
                raise UsageError("--prometheus-password-file: the URL has a password already")
            try:
                with open(password_file, encoding="utf-8") as fh:
                    password = fh.read().strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or "not UTF-8 text"
                raise UsageError(
                    f"--prometheus-password-file: cannot read {password_file}: {reason}"
                ) from None
            if not password:
                raise UsageError(f"--prometheus-password-file: {password_file} is empty")
            user = user or DEFAULT_USER
        host = parts.netloc.rpartition("@")[2]
        base = urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
        return cls(url=base, instances=tuple(names), username=user, password=password)

    @property
    def display_url(self) -> str:
        """The URL as it may be shown and recorded (``user:***@`` when there is a password)."""
        if self.password is None and not self.username:
            return self.url
        scheme, _, rest = self.url.partition("://")
        who = f"{self.username or ''}:***" if self.password is not None else self.username
        return f"{scheme}://{who}@{rest}"

    @property
    def secrets(self) -> list[str]:
        return [self.password] if self.password else []

    def describe(self) -> str:
        """For the manifest: where the host metrics came from."""
        return f"prometheus {self.display_url} instance(s) {', '.join(self.instances)}"

    # --- the HTTP API ---------------------------------------------------------------
    def _api(self, path: str, params: dict) -> object:
        request = urllib.request.Request(
            f"{self.url}/api/v1/{path}?" + urllib.parse.urlencode(params)
        )
        if self.username is not None or self.password is not None:
            token = f"{self.username or ''}:{self.password or ''}".encode()
            request.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise PrometheusError(
                    f"Prometheus at {self.display_url} refused the credentials ({exc.code}):"
                    " give them in the URL (http://user:pass@host:9090) or with"
                    " --prometheus-password-file"
                ) from None
            detail = _error_of(exc.read())
            raise PrometheusError(
                f"Prometheus at {self.display_url} answered {exc.code}"
                + (f": {detail}" if detail else "")
            ) from None
        except (OSError, urllib.error.URLError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise PrometheusError(
                f"cannot reach Prometheus at {self.display_url}: {reason}"
            ) from None
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("status") != "success":
            detail = doc.get("error") if isinstance(doc, dict) else None
            raise PrometheusError(
                f"{self.display_url} did not answer as a Prometheus API"
                + (f" ({detail})" if detail else " (not JSON with status success)")
            )
        return doc.get("data")

    def query(self, expr: str, at: float | None = None) -> list:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._api("query", params)
        return data.get("result", []) if isinstance(data, dict) else []

    def query_range(self, expr: str, start: float, end: float, step: float) -> list:
        data = self._api(
            "query_range",
            {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
        )
        return data.get("result", []) if isinstance(data, dict) else []

    # --- before the load -------------------------------------------------------------
    def check(self) -> None:
        """Prometheus answers and scrapes every instance now (``up == 1``); learns each
        instance's scrape interval. Raises UsageError (exit 2) otherwise."""
        try:
            for name in self.instances:
                matcher = instance_matcher(name)
                up = self.query(f"up{{{matcher}}}")
                if not up:
                    raise UsageError(
                        f"--instance {name}: Prometheus at {self.display_url} has no `up` series"
                        f" for it (instances it scrapes: {self._known_instances()})"
                    )
                down = [s["metric"].get("job", "?") for s in up if float(s["value"][1]) != 1]
                if len(down) == len(up):
                    raise UsageError(
                        f"--instance {name}: Prometheus at {self.display_url} cannot scrape it"
                        f" now (up == 0 for job {', '.join(sorted(down))})"
                    )
                self.scrape_s[name] = self._scrape_interval(matcher)
        except PrometheusError as exc:
            raise UsageError(f"--prometheus: {exc}") from None

    def _known_instances(self) -> str:
        try:
            data = self._api("label/instance/values", {})
        except PrometheusError:
            return "unknown"
        names = sorted(map(str, data or []))
        if not names:
            return "none"
        return ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")

    def _scrape_interval(self, matcher: str) -> float:
        """The median gap between an instance's recent ``up`` samples."""
        gaps = []
        for series in self.query(f"up{{{matcher}}}[10m]"):
            stamps = [float(ts) for ts, _ in series.get("values", [])]
            gaps += [b - a for a, b in zip(stamps, stamps[1:], strict=False) if b > a]
        return round(statistics.median(gaps), 3) if gaps else DEFAULT_SCRAPE_S

    # --- after the load --------------------------------------------------------------
    def wait_for_scrape(self, end: float, *, limit_s: float | None = None) -> None:
        """Wait until every instance was scraped after ``end`` (at most one scrape
        interval and 2 s more, 65 s at most), so the window's last seconds are in."""
        slowest = max(self.scrape_s.values(), default=DEFAULT_SCRAPE_S)
        deadline = time.monotonic() + (limit_s if limit_s is not None else min(65.0, slowest + 2.0))
        while True:
            latest = []
            for name in self.instances:
                result = self.query(f"min(timestamp(up{{{instance_matcher(name)}}}))")
                latest.append(float(result[0]["value"][1]) if result else 0.0)
            if min(latest) >= end or time.monotonic() >= deadline:
                return
            time.sleep(0.5)

    def fetch(self, start: float, end: float) -> tuple[list[dict], dict]:
        """Samples for ``[start, end]`` (epoch seconds) and how they were taken.

        The samples are on whole seconds (the run folder's grid); the info dict holds
        ``step_s``, ``rate_window_s`` and ``instances``. Raises PrometheusError.
        """
        self.wait_for_scrape(end)
        first, last = math.floor(start), math.ceil(end)
        step = choose_step(last - first)
        per_instance = {}
        windows = {}
        for name in self.instances:
            scrape = self.scrape_s.get(name, DEFAULT_SCRAPE_S)
            rate_s = rate_window(step, scrape)
            windows[name] = rate_s
            results = {
                key: self.query_range(expr, first, last, step)
                for key, expr in queries(instance_matcher(name), rate_s).items()
            }
            if len(self.instances) > 1:  # per-core and per-GPU columns only for one host
                results = {k: v for k, v in results.items() if "{cpu}" not in k}
            per_instance[name] = rows_of(results)
        samples = fill_seconds(combine(per_instance), step)
        info = {
            "source": "prometheus",
            "url": self.display_url,
            "instances": list(self.instances),
            "step_s": step,
            "rate_window_s": windows,
            "scrape_interval_s": dict(self.scrape_s),
        }
        return samples, info


def fill_seconds(samples: list[dict], step: float) -> list[dict]:
    """With a step over 1 s, each second up to the next point repeats the last point
    (a query_range value holds until the next), so every per-second row has host data."""
    if step <= 1 or not samples:
        return samples
    out = []
    for sample, following in zip(samples, [*samples[1:], None], strict=True):
        stop = following["t"] if following else sample["t"] + step
        t = sample["t"]
        while t < stop:
            out.append({**sample, "t": t})
            t += 1.0
    return out


def _error_of(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    return str(doc.get("error", ""))[:200] if isinstance(doc, dict) else ""


#: the threshold keys judged on host peaks -> the peak they read
HOST_CHECKS = {
    "max_cpu_percent": "cpu_pct_max",
    "max_memory_percent": "memory_pct_max",
    "max_gpu_util_percent": "gpu_util_pct_max",
    "max_gpu_memory_percent": "gpu_mem_pct_max",
    "max_gpu_power_watts": "gpu_power_w_max",
    "max_gpu_temp_celsius": "gpu_temp_c_max",
}


def annotate(summary, sampler, start: float, end: float) -> None:
    """Name the hosts in a summary whose host metrics came from Prometheus.

    ``summary.host`` gains ``instances`` (each host's peaks) and ``source`` (how they
    were read, or why they are missing); each host threshold check, already judged on
    the worst host's peak, says which host that was.
    """
    names = list(sampler.prometheus.instances)
    by_instance = peaks_by_instance(sampler.samples(), names, start, end)
    host = dict(summary.host or {})
    host["instances"] = by_instance
    host["source"] = sampler.remote_info or {
        "source": "prometheus",
        "url": sampler.prometheus.display_url,
        "instances": names,
        "error": sampler.remote_error,
    }
    summary.host = host
    for check in summary.thresholds:
        key = HOST_CHECKS.get(check["name"])
        if key is None or check.get("value") is None:
            continue
        measured = {n: p[key] for n, p in by_instance.items() if p.get(key) is not None}
        if not measured:
            continue
        worst = max(measured, key=lambda n: measured[n])
        note = f"host {worst}" if len(measured) == 1 else f"worst host {worst}"
        if len(measured) > 1:
            rest = [f"{n} {v:g}" for n, v in measured.items() if n != worst]
            note += f" (others: {', '.join(rest)})"
        check["note"] = note
