"""One measurement, whichever way the load is started: ``start(env)`` ... ``finish(env)``.

``inferops bench`` (engine.py, a LocalRunner it drives) and ``locust -f
loadtests/`` (locust_plugin.py, Locust's own runners) both create a
:class:`RunSession` per test and go through the same steps:

1. ``start(env)``: attach the listeners (see below), start the host sampler,
   freeze the heap so garbage collection does not stall the schedule;
2. the load runs; every request reaches :class:`~inferops.measure.recorder.Recorder`;
3. ``finish(env, window...) -> Summary``: stop sampling, cut the per-second rows,
   take host peaks and build the one :class:`~inferops.measure.runformat.Summary`;
4. ``write(folder, env, summary)``: the run folder, Locust's own tables included
   (public ``StatsCSV`` only).

Like Locust's ``stats.setup_distributed_stats_event_listeners``, the session owns
its listeners: ``request`` on every process that sends; ``report_to_master`` on a
worker (ship and empty the recorder); ``worker_report`` on the master (merge).
:meth:`detach` removes exactly those. It is the only inferops state on Locust's
``Environment`` (``environment.inferops_session``).
"""

from __future__ import annotations

import gc
import os
import socket
import time
from dataclasses import dataclass

from inferops.load.options import LoadConfig
from inferops.measure import llm as llm_metrics
from inferops.measure.recorder import REPORT_KEY, Recorder

#: the one attribute inferops sets on Locust's Environment
ENV_ATTR = "inferops_session"

#: host peaks copied into summary.host, from the sampler's per-second keys
_PEAK_KEYS = {
    "cpu_pct_max": "cpu_pct",
    "memory_pct_max": "mem_pct",
    "gpu_util_pct_max": "gpu_util_pct",
    "gpu_mem_pct_max": "gpu_mem_pct",
    "gpu_power_w_max": "gpu_power_w",
    "gpu_temp_c_max": "gpu_temp_c",
}


@dataclass
class SenderHealth:
    """This process's load-generation health, shipped to the master with each report."""

    inflight_max: int = 0
    group: object = None  # the scheduler's in-flight greenlets (a gevent Group)

    def inflight(self) -> int:
        return len(self.group) if self.group is not None else 0


class RunSession:
    """The recorder, the host sampler and the run's bookkeeping for one test."""

    def __init__(self, config: LoadConfig):
        self.config = config
        self.recorder = Recorder(late_tolerance_s=config.late_tolerance_s)
        #: streamed LLM requests (protocol openai): TTFT, ITL, TPOT, tokens, goodput
        self.llm = (
            llm_metrics.LLMRecorder(
                window=self.recorder,
                slo_ttft_ms=config.slo_ttft_ms,
                slo_tpot_ms=config.slo_tpot_ms,
                # per-request E2E bound only when --slo-p99-ms was given (vLLM's e2el)
                slo_e2e_ms=config.bound_ms if config.bound.source == "--slo-p99-ms" else None,
            )
            if config.streaming
            else None
        )
        self.sampler = None
        self.gen_cpu_max: float | None = None
        #: master: each worker's health (late sends, CPU, in-flight), by Locust client id
        self.nodes: dict[str, dict] = {}
        #: master: workers joining or leaving the schedule after it started
        self.changes: list[dict] = []
        self.health = SenderHealth()
        #: the global schedule this process follows (inferops.load.split); master: decides it
        self.plan = None
        self.coordinator = None
        self.flushed: set[str] = set()
        self.scheduler_running = False
        self.env = None
        self.started = time.time()
        self.stopped: float | None = None
        self.schedule_done = False  # open loop: every arrival sent and answered
        self.rows: list[dict] = []
        self._listeners: list[tuple[object, object]] = []

    # -- listeners ---------------------------------------------------------------------
    def _listen(self, hook, fn) -> None:
        hook.add_listener(fn)
        self._listeners.append((hook, fn))

    def attach(self, events, *, sends: bool = True, worker: bool = False, master: bool = False):
        """Add this session's listeners to Locust's ``events`` for the process's role."""
        if sends:
            self._listen(events.request, self.recorder.on_request)
            if self.llm is not None:
                self._listen(events.request, self.llm.on_request)
        if worker:
            self._listen(events.report_to_master, self._on_report_to_master)
        if master:
            self._listen(events.worker_report, self._on_worker_report)
        return self

    def detach(self) -> None:
        for hook, fn in self._listeners:
            hook.remove_listener(fn)
        self._listeners = []

    def _on_report_to_master(self, client_id, data) -> None:
        report = self.recorder.take_report()
        report["gen_cpu_max"] = self.gen_cpu_max
        report["sender"] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "inflight_max": self.health.inflight_max,
            "inflight": self.health.inflight(),
            "index": getattr(getattr(self.env, "runner", None), "worker_index", -1),
            "done": self.schedule_done,
        }
        data[REPORT_KEY] = report
        if self.llm is not None:
            data[llm_metrics.REPORT_KEY] = self.llm.take_report()

    def _on_worker_report(self, client_id, data) -> None:
        if self.llm is not None and data.get(llm_metrics.REPORT_KEY):
            self.llm.merge(data[llm_metrics.REPORT_KEY])
        report = data.get(REPORT_KEY)
        if not report:
            return
        self.recorder.merge(report)
        cpu = report.get("gen_cpu_max")
        if cpu is not None:
            self.note_generator_cpu(cpu)
        self._note_node(client_id, report, cpu)

    def note_worker(self, client_id: str, info: dict) -> None:
        """Where a worker runs (``host``, ``pid``, ``index``), before any report."""
        node = self._node(client_id)
        for key in ("host", "pid", "index"):
            if info.get(key) is not None:
                node[key] = info[key]

    def _node(self, client_id: str) -> dict:
        node = self.nodes.get(client_id)
        if node is None:
            node = self.nodes[client_id] = {
                "id": client_id,
                "samples": 0,
                "sends": 0,
                "late": 0,
                "dropped": 0,
                "cpu_pct_max": None,
                "inflight_max": 0,
                "inflight": 0,
            }
        return node

    def _note_node(self, client_id: str, report: dict, cpu: float | None) -> None:
        """Add one report to the sending worker's health record."""
        node = self._node(client_id)
        requests, _fail, sends, late, dropped, _conn = report["counts"]
        node["samples"] += requests
        node["sends"] += sends
        node["late"] += late
        node["dropped"] += dropped
        node["last_report"] = time.time()
        if cpu is not None:
            node["cpu_pct_max"] = max(cpu, node["cpu_pct_max"] or 0.0)
        sender = report.get("sender") or {}
        for key in ("host", "pid", "index"):
            if key in sender:
                node[key] = sender[key]
        node["inflight_max"] = max(node["inflight_max"], sender.get("inflight_max", 0))
        node["inflight"] = sender.get("inflight", 0)
        node["done"] = bool(sender.get("done"))

    def schedule_plan(self):
        """The plan this process follows, or (master) the one it decided."""
        if self.plan is None and self.coordinator is not None:
            return self.coordinator.plan
        return self.plan

    def note_change(self, change: dict) -> None:
        """The coordinator re-split the schedule (a worker joined or left)."""
        self.changes.append(change)

    def accept_plan(self, plan) -> None:
        """Follow ``plan`` (a newer version of this test's, or a new test's)."""
        old = self.plan
        if old is not None and old.t0 == plan.t0 and plan.version <= old.version:
            return
        self.plan = plan
        config = self.config
        config.start = plan.t0
        recorder = self.recorder
        window_start = plan.t0 + config.warmup_s
        recorder.window_start = max(recorder.window_start, window_start)
        if config.duration_s != float("inf"):
            recorder.window_end = min(recorder.window_end, window_start + config.duration_s)

    def note_generator_cpu(self, cpu_pct: float) -> None:
        self.gen_cpu_max = max(cpu_pct, self.gen_cpu_max or 0.0)

    # -- the steps ---------------------------------------------------------------------
    def start(self, env, *, sample_host: bool = True) -> RunSession:
        """Become the environment's session; sample host metrics; freeze the heap."""
        setattr(env, ENV_ATTR, self)
        self.env = env
        if sample_host:
            from inferops.measure.sampler_process import ProcessSampler

            self.sampler = ProcessSampler(
                os.getpid(),
                node_exporter=self.config.node_exporter,
                prometheus=self.config.prometheus,
            )
            self.sampler.start()
        # Locust's heap is large: a full collection of it stalls the schedule for
        # ~100 ms. Freeze what exists now so collections only scan new objects.
        gc.collect()
        gc.freeze()
        return self

    def stop_sampling(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()

    def finish(
        self,
        *,
        window_start: float,
        window_end: float,
        partial: bool = False,
        reasons: list[str] | tuple = (),
    ):
        """The run's Summary over ``[window_start, window_end)``."""
        from inferops.measure import summary as summary_mod

        self.stop_sampling()
        duration = max(0.0, window_end - window_start)
        samples = self.sampler.samples() if self.sampler is not None else []
        host, sampler_gen = {}, None
        if self.sampler is not None:
            host, sampler_gen = host_peaks(samples, window_start, window_end, self.sampler.peaks())
        cpus = [c for c in (self.gen_cpu_max, sampler_gen) if c is not None]
        self.rows = self.recorder.rows(window_start, t_end=window_end)
        merge_host_rows(samples, self.rows)
        summary = summary_mod.build(
            recorder=self.recorder,
            llm=self.llm,
            config=self.config,
            started_at=window_start,
            duration_s=duration,
            host=host,
            generator_cpu_pct_max=max(cpus) if cpus else None,
            rows=self.rows,
            partial=partial,
            reasons=list(reasons) + self._lost_share(),
            workers=self.workers_block(window_start),
        )
        if self.sampler is not None and getattr(self.sampler, "prometheus", None) is not None:
            from inferops.measure.promsource import annotate

            annotate(summary, self.sampler, window_start, window_end)
        return summary

    def workers_block(self, t0: float) -> dict | None:
        """``summary.workers``: each worker's samples and health, and the re-splits."""
        if not self.nodes:
            return None
        nodes = []
        for node in sorted(self.nodes.values(), key=lambda n: n.get("index") or 0):
            sends = node["sends"]
            nodes.append(
                {
                    "worker": _worker_name(node),
                    "index": node.get("index"),
                    "host": node.get("host"),
                    "pid": node.get("pid"),
                    "samples": node["samples"],
                    "late_sends_pct": round(100.0 * node["late"] / sends, 3) if sends else None,
                    "cpu_pct_max": None
                    if node["cpu_pct_max"] is None
                    else round(node["cpu_pct_max"], 1),
                    "inflight_max": node["inflight_max"],
                    "dropped": node["dropped"],
                }
            )
        block = {
            "count": len(nodes),
            "samples": sorted(n["samples"] for n in nodes),
            "nodes": nodes,
        }
        plan = self.schedule_plan()
        if plan is not None:
            block["seed"] = plan.seed
        if self.changes:
            block["changes"] = [
                {
                    "t_s": round(c["t"] - t0, 3),
                    "effective_s": round(plan.t0 + c["offset_s"] - t0, 3) if plan else None,
                    **{
                        k: _worker_name(self.nodes.get(c[k], {"id": c[k]}))
                        for k in ("joined", "left")
                        if k in c
                    },
                }
                for c in self.changes
            ]
        return block

    def _lost_share(self) -> list[str]:
        """A worker that vanished mid-run left its share unsent until the re-split.

        Estimated from its last report to the re-split (reports come every 3 s, so
        this errs high); more than 1 % of the window's requests invalidates the run.
        """
        from inferops.load.split import SPLIT_LEAD_S
        from inferops.measure.validity import MAX_LATE_SENDS_PCT

        rec, config = self.recorder, self.config
        if not config.rate or not self.changes:
            return []
        reasons, total = [], max(1, rec.requests)
        for c in self.changes:
            worker = c.get("left")
            if worker is None or not (rec.window_start <= c["t"] < rec.window_end):
                continue
            node = self.nodes.get(worker, {})
            gap = c["t"] + SPLIT_LEAD_S - node.get("last_report", c["t"])
            plan = self.schedule_plan()
            offset = c["t"] - (plan.t0 if plan else c["t"])
            unsent = config.rate * config.scenario.level(offset) * c.get("share", 1.0) * gap
            if unsent / total * 100.0 > MAX_LATE_SENDS_PCT:
                reasons.append(
                    f"worker {_worker_name(node or {'id': worker})} left mid-run: up to "
                    f"{unsent:.0f} of its arrivals ({unsent / total * 100:.1f} % of the run) "
                    f"were not sent in the {gap:.1f} s before the schedule was re-split"
                )
        return reasons

    def write(self, folder, env, summary, *, command: list[str], history_csv: str | None = None):
        """The run folder: manifest, timeseries, histograms, Locust's tables, summary last.

        ``history_csv``: the text of Locust's stats history, when one was kept.
        """
        from inferops.measure import manifest
        from inferops.measure.runformat import HISTOGRAMS, LLM_HISTOGRAMS

        folder.write_json(manifest.MANIFEST, manifest.collect_for(self.config, command))
        folder.write_timeseries(self.rows)
        for name, filename in HISTOGRAMS.items():
            folder.write_hdr(filename, self.recorder.histograms[name])
        if self.llm is not None:
            for name, filename in LLM_HISTOGRAMS.items():
                folder.write_hdr(filename, self.llm.hists[name])
        if env is not None:
            write_locust_tables(folder, env, history_csv=history_csv)
        folder.finish(summary, partial=summary.partial)


def _worker_name(node: dict) -> str:
    """``#1 (host pid 4242)``: Locust's worker index, and where it ran."""
    where = f"{node['host']} pid {node['pid']}" if node.get("host") else node["id"]
    index = node.get("index")
    return f"#{index} ({where})" if index is not None and index >= 0 else where


def session_of(environment) -> RunSession:
    """The environment's session; a bare locustfile run without the plugin gets one here."""
    session = getattr(environment, ENV_ATTR, None)
    if session is None:
        config = LoadConfig.from_namespace(environment.parsed_options, seed_thresholds=False)
        session = RunSession(config)
        setattr(environment, ENV_ATTR, session)
    return session


def write_locust_tables(folder, env, *, history_csv: str | None = None) -> None:
    """Locust's stats/failures/exceptions CSV and HTML report, from its public API."""
    import csv
    import io

    from locust.html import get_html_report
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

    stats_csv = StatsCSV(env, PERCENTILES_TO_REPORT)
    for name, method in (
        ("locust_stats.csv", stats_csv.requests_csv),
        ("locust_failures.csv", stats_csv.failures_csv),
        ("locust_exceptions.csv", stats_csv.exceptions_csv),
    ):
        buf = io.StringIO()
        method(csv.writer(buf))
        folder.write_text(name, buf.getvalue())
    if history_csv:
        folder.write_text("locust_stats_history.csv", history_csv)
    folder.write_text("locust.html", get_html_report(env, show_download_link=False))


def merge_host_rows(samples: list[dict], rows: list[dict]) -> None:
    """Merge 1 Hz host samples into the per-second rows (by epoch second)."""
    by_sec = {int(s["t"]): s for s in samples}
    for row in rows:
        s = by_sec.get(int(row["t"]))
        if s:
            row.update({k: v for k, v in s.items() if k != "t"})


def host_peaks(
    samples: list[dict], start: float, end: float, fallback: dict
) -> tuple[dict, float | None]:
    """Peak host metrics over the window (±1 s), and the generator's peak CPU."""
    window = [s for s in samples if start - 1 <= s["t"] <= end + 1] or samples
    if not window:
        return {k: fallback.get(k) for k in _PEAK_KEYS}, fallback.get("gen_cpu_pct_max")

    def peak(key):
        vals = [s.get(key) for s in window if s.get(key) is not None]
        return max(vals) if vals else None

    return {k: peak(col) for k, col in _PEAK_KEYS.items()}, peak("gen_cpu_pct")
