"""Run :class:`~inferops.measure.hostmetrics.HostSampler` in a child process.

Inside the load generator, gevent turns the sampler's thread into a greenlet
whose psutil calls block the event loop for milliseconds every second — enough
to make ~1 % of open-loop sends late. In its own process it cannot disturb the
schedule. Same interface: ``start()``, ``stop()``, ``samples()``, ``peaks()``.

With ``node_exporter`` (a URL), host fields come from that exporter — the
*target's* machine in a fleet run — while ``gen_cpu_pct`` still measures the
local load generator.

Child usage: ``python -m inferops.measure.sampler_process PID OUTFILE [INTERVAL [URL]]``
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
        self, pid: int | None = None, interval: float = 1.0, *, node_exporter: str | None = None
    ):
        self.pid = pid or os.getpid()
        self.node_exporter = node_exporter
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
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._load()

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


def _child(pid: int, path: str, interval: float, node_exporter: str | None = None) -> None:
    from inferops.measure.hostmetrics import HostSampler, NodeExporterSampler

    stop = {"now": False}
    parent = os.getppid()
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("now", True))
    local = HostSampler(interval, gpu=node_exporter is None, process_pid=pid)
    local.start()
    remote = NodeExporterSampler(node_exporter, interval) if node_exporter else None
    if remote is not None:
        remote.start()
    written = 0

    def rows() -> list[dict]:
        if remote is None:
            return local.samples()
        gen = local.samples()
        out = []
        for s in remote.samples():  # the generator's CPU from the nearest local sample
            near = min(gen, key=lambda g: abs(g["t"] - s["t"]), default=None)
            out.append({**s, "gen_cpu_pct": near.get("gen_cpu_pct") if near else None})
        return out

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
    _child(
        int(sys.argv[1]),
        sys.argv[2],
        float(sys.argv[3]) if len(sys.argv) > 3 else 1.0,
        sys.argv[4] if len(sys.argv) > 4 else None,
    )
