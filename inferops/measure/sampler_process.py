"""Run :class:`~inferops.measure.hostmetrics.HostSampler` in a child process.

Inside the load generator, gevent turns the sampler's thread into a greenlet
whose psutil calls block the event loop for milliseconds every second — enough
to make ~1 % of open-loop sends late. In its own process it cannot disturb the
schedule. Same interface: ``start()``, ``stop()``, ``samples()``, ``peaks()``.

Remote hosts (a fleet run) come from one of two sources, while ``gen_cpu_pct``
still measures the local load generator:

* ``node_exporter`` (a URL): the child scrapes that exporter live, once an interval;
* ``prometheus`` (a :class:`~inferops.measure.promsource.PrometheusSource`): at
  ``stop()`` this process reads the run's window back with ``query_range``, one or
  several hosts, node_exporter and dcgm-exporter series (the credentials stay in
  this process: never on a child's command line).

Child usage: ``python -m inferops.measure.sampler_process PID OUTFILE [INTERVAL [URL]] [--no-gpu]``
appends one JSON sample per line to OUTFILE until SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time


class ProcessSampler:
    """Samples the host, and ``pid``'s CPU as the generator CPU, from a child process."""

    def __init__(
        self,
        pid: int | None = None,
        interval: float = 1.0,
        *,
        node_exporter: str | None = None,
        prometheus=None,
    ):
        if node_exporter and prometheus is not None:
            raise ValueError("one remote source: node_exporter or prometheus")
        self.pid = pid or os.getpid()
        self.node_exporter = node_exporter
        self.prometheus = prometheus
        #: how the remote samples were taken (step, rate window...), set by stop()
        self.remote_info: dict | None = None
        #: why the remote samples are missing, set by stop() when Prometheus failed
        self.remote_error: str | None = None
        self._window: list[float] = []
        self.interval = interval
        self._proc: subprocess.Popen | None = None
        fd, self._path = tempfile.mkstemp(prefix="inferops-host-", suffix=".jsonl")
        os.close(fd)
        self._samples: list[dict] | None = None

    def start(self) -> ProcessSampler:
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "inferops.measure.sampler_process",
                str(self.pid),
                self._path,
                str(self.interval),
                *([self.node_exporter] if self.node_exporter else []),
                *(["--no-gpu"] if self.prometheus is not None else []),
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._window = [time.time()]
        return self

    def stop(self) -> None:
        if len(self._window) == 1:
            self._window.append(time.time())
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._load()
        if self.prometheus is not None and self.remote_info is None and self.remote_error is None:
            self._read_prometheus()

    def _read_prometheus(self) -> None:
        """Replace the local host fields by the remote hosts' series for the window."""
        from inferops.measure.promsource import PrometheusError

        start, end = self._window
        try:
            remote, self.remote_info = self.prometheus.fetch(start, end)
        except PrometheusError as exc:
            self.remote_error = str(exc)
            print(f"warning: no host metrics: {exc}", file=sys.stderr, flush=True)
            # this machine's CPU is not the hosts' under test: keep only the generator's
            self._samples = [
                {"t": s["t"], "gen_cpu_pct": s.get("gen_cpu_pct")} for s in self._samples or []
            ]
            return
        self._samples = with_generator_cpu(remote, self._samples or [])

    def _load(self) -> None:
        if self._samples is not None:
            return
        samples = []
        try:
            with open(self._path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        samples.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass  # a line cut by the child's exit
            os.unlink(self._path)
        except FileNotFoundError:
            pass
        self._samples = samples

    def samples(self) -> list[dict]:
        self._load()
        return list(self._samples or [])

    def peaks(self) -> dict:
        from inferops.measure.hostmetrics import _PEAKS

        out = {}
        for peak, key in _PEAKS.items():
            vals = [s[key] for s in self.samples() if s.get(key) is not None]
            out[peak] = max(vals) if vals else None
        return out


def with_generator_cpu(remote: list[dict], local: list[dict]) -> list[dict]:
    """Remote host samples, each with the load generator's CPU from the nearest local one."""
    out = []
    for s in remote:
        near = min(local, key=lambda g: abs(g["t"] - s["t"]), default=None)
        out.append({**s, "gen_cpu_pct": near.get("gen_cpu_pct") if near else None})
    return out


def _child(
    pid: int, path: str, interval: float, node_exporter: str | None = None, *, gpu: bool = True
) -> None:
    from inferops.measure.hostmetrics import HostSampler, NodeExporterSampler

    stop = {"now": False}
    parent = os.getppid()
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("now", True))
    local = HostSampler(interval, gpu=gpu and node_exporter is None, process_pid=pid)
    local.start()
    remote = NodeExporterSampler(node_exporter, interval) if node_exporter else None
    if remote is not None:
        remote.start()
    written = 0

    def rows() -> list[dict]:
        if remote is None:
            return local.samples()
        return with_generator_cpu(remote.samples(), local.samples())

    with open(path, "a", encoding="utf-8") as fh:
        while not stop["now"]:
            time.sleep(min(0.2, interval / 2))
            if os.getppid() != parent:  # the generator died without stopping us
                fh.close()
                os.unlink(path)
                return
            new = rows()[written:]
            for s in new:
                fh.write(json.dumps(s) + "\n")
            written += len(new)
            fh.flush()
        local.stop()
        if remote is not None:
            remote.stop()
        for s in rows()[written:]:
            fh.write(json.dumps(s) + "\n")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--no-gpu"]
    _child(
        int(args[0]),
        args[1],
        float(args[2]) if len(args) > 2 else 1.0,
        args[3] if len(args) > 3 else None,
        gpu="--no-gpu" not in sys.argv,
    )
