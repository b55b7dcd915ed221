"""HDR latency recording for Locust, CO-corrected, mergeable across workers.

Listens to Locust's ``request`` event. A request fired by the open-loop user
carries ``context["intended"]`` (when the schedule wanted it sent) and
``context["sent"]`` (when it actually left): latency is measured from the
intended time (coordinated-omission corrected), service time from the actual
send. Requests from classic closed-loop users have no intended time, so both
equal Locust's ``response_time``.

Values are recorded in **microseconds** in HdrHistograms with 3 significant
digits (0.1 % resolution) — Locust's own stats round to about 2 digits.

On Locust workers, :meth:`Recorder.take_report` empties the recorder into a
dict for ``report_to_master``; the master's :meth:`Recorder.merge` adds it
back, so the master's histograms hold exactly every worker's samples.
"""

from __future__ import annotations

import math
import time

from hdrh.histogram import HdrHistogram

from inferops.measure.validity import LATE_TOLERANCE_S

#: 1 µs .. 1 hour, 3 significant digits
LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3
#: per-second histograms only feed timeseries.csv p50/p99: 2 digits keeps them small
SECOND_DIGITS = 2
#: per-second buckets older than this are reduced to a row and their histogram freed
FINALIZE_AFTER_S = 20

REPORT_KEY = "inferops"


def new_histogram(digits: int = DIGITS) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def _us(seconds: float) -> int:
    return min(HIGHEST_US, max(LOWEST_US, int(round(seconds * 1e6))))


class _Second:
    """Counts for one wall-clock second (epoch)."""

    __slots__ = ("completed", "errors", "offered", "hist", "row")

    def __init__(self):
        self.completed = 0
        self.errors = 0
        self.offered = 0
        self.hist: HdrHistogram | None = None
        self.row: tuple[float | None, float | None] | None = None  # (p50_ms, p99_ms) once final

    def quantiles(self) -> tuple[float | None, float | None]:
        if self.row is not None:
            return self.row
        if self.hist is None or self.hist.get_total_count() == 0:
            return (None, None)
        return (
            self.hist.get_value_at_percentile(50) / 1000.0,
            self.hist.get_value_at_percentile(99) / 1000.0,
        )

    def finalize(self):
        self.row = self.quantiles()
        self.hist = None


class Recorder:
    """CO-corrected latency and service-time histograms plus per-second counts.

    Only requests whose intended (or, closed-loop, actual) send time falls at
    or after :attr:`window_start` count in the headline histograms, so a
    warm-up can be excluded by moving the window.
    """

    def __init__(self, *, late_tolerance_s: float = LATE_TOLERANCE_S):
        self.late_tolerance_s = late_tolerance_s
        self.window_start = 0.0
        self.window_end = math.inf
        #: every named histogram is recorded, shipped worker -> master and merged the
        #: same way; a protocol adds its own (TTFT, ITL) with :meth:`add_histogram`
        self.histograms: dict[str, HdrHistogram] = {}
        self.latency = self.add_histogram("latency")
        self.service = self.add_histogram("service")
        # open loop: actual send minus intended send
        self.send_lag = self.add_histogram("send_lag")
        self.requests = 0
        self.failures = 0
        self.sends = 0  # open-loop sends (the denominator of late_sends_pct)
        self.late = 0
        self.dropped = 0  # open-loop arrivals not sent: in-flight cap reached
        self.connection_errors = 0
        self.first_intended = math.inf  # earliest counted arrival: where load really began
        self.last_success = 0.0
        self.last_failure = 0.0
        self.seconds: dict[int, _Second] = {}

    def add_histogram(self, name: str) -> HdrHistogram:
        """A further histogram (microseconds), merged across workers like latency."""
        return self.histograms.setdefault(name, new_histogram())

    def record_us(self, name: str, value_us: int) -> None:
        """One value into a named histogram (e.g. a time to first token)."""
        self.histograms[name].record_value(max(LOWEST_US, int(value_us)))

    # -- recording ---------------------------------------------------------
    def attach(self, events) -> Recorder:
        events.request.add_listener(self.on_request)
        return self

    def detach(self, events) -> None:
        events.request.remove_listener(self.on_request)

    def on_request(self, response_time=None, exception=None, context=None, start_time=None, **_kw):
        ctx = context or {}
        intended = ctx.get("intended")
        if intended is None:  # closed-loop Locust user: no schedule to lag behind
            rt = (response_time or 0.0) / 1000.0
            sent = start_time if start_time is not None else time.time() - rt
            self.record(sent, sent, sent + rt, ok=exception is None, error=exception)
        elif ctx.get("dropped"):
            self.record_dropped(intended)
        else:
            self.record(intended, ctx["sent"], ctx["done"], ok=exception is None, error=exception)

    def record(self, intended: float, sent: float, done: float, *, ok: bool, error=None) -> None:
        """One completed (or failed) request, times in epoch seconds."""
        sec = self._second(int(done))
        sec.completed += 1
        latency_us = _us(done - intended)
        if sec.hist is None:
            sec.hist = new_histogram(SECOND_DIGITS)
        sec.hist.record_value(latency_us)
        if not ok:
            sec.errors += 1
            self.last_failure = done
            if _is_connection_error(error):
                self.connection_errors += 1
        else:
            self.last_success = done
        if not (self.window_start <= intended < self.window_end):
            return
        self.requests += 1
        if intended < self.first_intended:
            self.first_intended = intended
        self.failures += 0 if ok else 1
        self.latency.record_value(latency_us)
        self.service.record_value(_us(done - sent))
        if intended != sent:
            self.sends += 1
            self.send_lag.record_value(_us(sent - intended))
            if sent - intended > self.late_tolerance_s:
                self.late += 1

    def record_offered(self, intended: float) -> None:
        """An open-loop arrival was scheduled for ``intended`` (offered load)."""
        self._second(int(intended)).offered += 1

    def record_dropped(self, intended: float) -> None:
        if self.window_start <= intended < self.window_end:
            self.dropped += 1

    def _second(self, key: int) -> _Second:
        sec = self.seconds.get(key)
        if sec is None:
            sec = self.seconds[key] = _Second()
            self._finalize_old(key)
        return sec

    def _finalize_old(self, now_key: int) -> None:
        for key, sec in self.seconds.items():
            if key < now_key - FINALIZE_AFTER_S and sec.hist is not None:
                sec.finalize()

    # -- worker -> master --------------------------------------------------
    def take_report(self) -> dict:
        """Everything recorded since the last report, encoded; the recorder is emptied."""
        seconds = {}
        for key, sec in self.seconds.items():
            hist = sec.hist.encode() if sec.hist is not None and sec.hist.get_total_count() else b""
            seconds[str(key)] = [sec.completed, sec.errors, sec.offered, hist]
        report = {
            "histograms": {
                name: hist.encode() if hist.get_total_count() else b""
                for name, hist in self.histograms.items()
            },
            "counts": [
                self.requests,
                self.failures,
                self.sends,
                self.late,
                self.dropped,
                self.connection_errors,
            ],
            "last": [self.last_success, self.last_failure],
            "first": self.first_intended if math.isfinite(self.first_intended) else None,
            "seconds": seconds,
        }
        for hist in self.histograms.values():
            hist.reset()
        self.requests = self.failures = self.sends = self.late = self.dropped = 0
        self.connection_errors = 0
        self.first_intended = math.inf
        self.seconds = {}
        return report

    def merge(self, report: dict) -> None:
        """Add a worker's :meth:`take_report` into this recorder."""
        for name, encoded in report.get("histograms", {}).items():
            if encoded:
                self.add_histogram(name).add(HdrHistogram.decode(encoded))
        req, fail, sends, late, dropped, conn = report["counts"]
        self.requests += req
        self.failures += fail
        self.sends += sends
        self.late += late
        self.dropped += dropped
        self.connection_errors += conn
        if report.get("first") is not None:
            self.first_intended = min(self.first_intended, report["first"])
        self.last_success = max(self.last_success, report["last"][0])
        self.last_failure = max(self.last_failure, report["last"][1])
        for key, (completed, errors, offered, hist) in report["seconds"].items():
            sec = self._second(int(key))
            sec.completed += completed
            sec.errors += errors
            sec.offered += offered
            if hist:
                decoded = HdrHistogram.decode(hist)
                if sec.hist is None:
                    sec.hist = new_histogram(SECOND_DIGITS)
                sec.hist.add(decoded)

    # -- reading -----------------------------------------------------------
    def quantiles_ms(self, which: str = "latency") -> dict:
        hist = self.histograms[which]
        if hist.get_total_count() == 0:
            return {"p50": None, "p90": None, "p99": None, "p999": None, "max": None}
        q = {
            name: hist.get_value_at_percentile(p) / 1000.0
            for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9))
        }
        q["max"] = hist.get_max_value() / 1000.0
        return q

    def count_over(self, bound_ms: float, which: str = "latency") -> int:
        """Samples above ``bound_ms`` (at the histogram's 0.1 % resolution)."""
        hist = self.latency if which == "latency" else self.service
        bound_us = bound_ms * 1000.0
        at_or_below = 0
        for item in hist.get_recorded_iterator():
            if hist.get_highest_equivalent_value(item.value_iterated_to) <= bound_us:
                at_or_below += item.count_at_value_iterated_to
        return hist.get_total_count() - at_or_below

    def recent_p99_ms(self) -> float | None:
        """P99 of the last complete second (cheap: for progress displays)."""
        key = int(time.time()) - 1
        sec = self.seconds.get(key)
        return None if sec is None else sec.quantiles()[1]

    def late_sends_pct(self) -> float | None:
        return 100.0 * self.late / self.sends if self.sends else None

    def rows(self, t0: float, t_end: float | None = None) -> list[dict]:
        """Per-second rows from the first recorded second, ``t_s`` relative to ``t0``."""
        if not self.seconds:
            return []
        first = min(self.seconds)
        last = max(self.seconds) if t_end is None else int(t_end - 1e-9)
        rows = []
        for key in range(first, last + 1):
            sec = self.seconds.get(key) or _Second()
            p50, p99 = sec.quantiles()
            rows.append(
                {
                    "t": float(key),
                    "t_s": round(key - t0, 3),
                    "offered_qps": sec.offered,
                    "achieved_qps": sec.completed - sec.errors,
                    "p50_ms": None if p50 is None else round(p50, 3),
                    "p99_ms": None if p99 is None else round(p99, 3),
                    "errors": sec.errors,
                }
            )
        return rows


def _is_connection_error(error) -> bool:
    if error is None:
        return False
    if isinstance(error, (ConnectionError, OSError)):
        return True
    return "connection" in type(error).__name__.lower() or "refused" in str(error).lower()
