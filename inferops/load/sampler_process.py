"""Run :class:`~inferops.load.hostmetrics.HostSampler` in a child process.

Inside the load generator, gevent turns the sampler's thread into a greenlet
whose psutil calls block the event loop for milliseconds every second — enough
to make ~1 % of open-loop sends late. In its own process it cannot disturb the
schedule. Same interface: ``start()``, ``stop()``, ``samples()``, ``peaks()``.

Child usage: ``python -m inferops.load.sampler_process PID OUTFILE [INTERVAL]``
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

    def __init__(self, pid: int | None = None, interval: float = 1.0):
        self.pid = pid or os.getpid()
        self.interval = interval
        self._proc: subprocess.Popen | None = None
        fd, self._path = tempfile.mkstemp(prefix="inferops-host-", suffix=".jsonl")
        os.close(fd)
        self._samples: list[dict] | None = None

    def start(self) -> ProcessSampler:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "inferops.load.sampler_process", str(self.pid), self._path,
             str(self.interval)], stdin=subprocess.DEVNULL, start_new_session=True)
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
        from inferops.load.hostmetrics import _PEAKS

        out = {}
        for peak, key in _PEAKS.items():
            vals = [s[key] for s in self.samples() if s.get(key) is not None]
            out[peak] = max(vals) if vals else None
        return out


def _child(pid: int, path: str, interval: float) -> None:
    from inferops.load.hostmetrics import HostSampler

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("now", True))
    sampler = HostSampler(interval, process_pid=pid)
    sampler.start()
    written = 0
    with open(path, "a", encoding="utf-8") as fh:
        while not stop["now"]:
            time.sleep(min(0.2, interval / 2))
            new = sampler.samples()[written:]
            for s in new:
                fh.write(json.dumps(s) + "\n")
            written += len(new)
            fh.flush()
        sampler.stop()
        for s in sampler.samples()[written:]:
            fh.write(json.dumps(s) + "\n")


if __name__ == "__main__":
    _child(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 1.0)
