"""Live progress of a run: a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    """``update()`` as often as you like; plain mode prints at most every 2 s."""

    def __init__(self, label: str, total_s: float, *, stream=None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.label = label
        self.total_s = total_s
        self.enabled = enabled
        self._last_plain = 0.0
        self._rich = None
        if enabled and self.stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[stats]}"),
                console=Console(file=self.stream),
                transient=True,
            )
            self._task = self._rich.add_task(label, total=total_s, stats="")
            self._rich.start()

    def update(self, elapsed_s: float, stats: str) -> None:
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.update(self._task, completed=min(elapsed_s, self.total_s), stats=stats)
            return
        now = time.monotonic()
        if now - self._last_plain >= 2.0:
            self._last_plain = now
            print(
                f"{self.label}: {elapsed_s:5.1f}/{self.total_s:.0f} s  {stats}",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
