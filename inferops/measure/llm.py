"""LLM streaming metrics: TTFT, ITL, TPOT and tokens, HDR-recorded, mergeable.

Listens to Locust's ``request`` event next to the latency
:class:`~inferops.measure.recorder.Recorder`. A successful streamed request
(``protocols/openai.py``) carries ``context["llm"]`` with the arrival time of
its first content chunk, the gaps between consecutive content chunks and its
token counts. Definitions (docs/load.md):

* **TTFT** = first content chunk received − *intended* send time (CO-corrected:
  a request the generator sent late, or that waited for a connection, still
  counts from when it should have left); closed loop: − actual send;
* **ITL** = every gap between consecutive content chunks (all requests pooled);
* **TPOT** (per request) = (``data: [DONE]`` received − first content chunk) /
  (output tokens − 1), for requests with at least 2 output tokens;
* **E2E** = end of stream − intended send (the run's ``latency_ms``; kept here
  too for goodput).

A request counts toward **goodput** when it succeeded and meets every SLO set
(TTFT ≤ ``slo_ttft_ms``, TPOT ≤ ``slo_tpot_ms``, E2E ≤ ``slo_e2e_ms``).
Failed requests record no TTFT/ITL/TPOT and no tokens (as vLLM's benchmark).
Only requests whose intended send falls in the measured window count (the
window of the run's latency Recorder when one is given as ``window``).

Values are µs in HdrHistograms with 3 significant digits, like latency;
:meth:`take_report` / :meth:`merge` ship them from Locust workers to the master
losslessly.
"""

from __future__ import annotations

import math

from hdrh.histogram import HdrHistogram

from inferops.measure.recorder import new_histogram

REPORT_KEY = "inferops_llm"
METRICS = ("ttft", "itl", "tpot")


def _us(seconds: float) -> int:
    return min(3_600_000_000, max(1, int(round(seconds * 1e6))))


class LLMRecorder:
    def __init__(
        self,
        *,
        window=None,
        slo_ttft_ms: float | None = None,
        slo_tpot_ms: float | None = None,
        slo_e2e_ms: float | None = None,
    ):
        self.slo_ttft_ms, self.slo_tpot_ms, self.slo_e2e_ms = slo_ttft_ms, slo_tpot_ms, slo_e2e_ms
        self.window = window if window is not None else self  # has window_start/_end
        self.window_start = 0.0
        self.window_end = math.inf
        self.hists = {m: new_histogram() for m in METRICS}
        self.requests = 0  # successful streamed requests in the window
        self.input_tokens = 0
        self.input_known = 0  # requests whose input count the server reported
        self.output_tokens = 0
        self.from_usage = 0  # requests whose output count came from the server's usage
        self.good = 0  # requests meeting every SLO set

    # -- recording ---------------------------------------------------------
    def attach(self, events) -> LLMRecorder:
        events.request.add_listener(self.on_request)
        return self

    def detach(self, events) -> None:
        events.request.remove_listener(self.on_request)

    def on_request(self, exception=None, context=None, start_time=None, **_kw):
        ctx = context or {}
        llm = ctx.get("llm")
        if exception is not None or not llm:
            return
        intended = ctx.get("intended", ctx.get("sent", start_time))
        self.record(intended, ctx["done"], llm)

    def record(self, intended: float, done: float, llm: dict) -> None:
        if not (self.window.window_start <= intended < self.window.window_end):
            return
        self.requests += 1
        ttft = llm["first"] - intended
        self.hists["ttft"].record_value(_us(ttft))
        for gap in llm["gaps"]:
            self.hists["itl"].record_value(_us(gap))
        out = llm["output_tokens"]
        end = llm.get("end") or done  # the [DONE] event; else the reply's end
        tpot = (end - llm["first"]) / (out - 1) if out > 1 else None
        if tpot is not None:
            self.hists["tpot"].record_value(_us(tpot))
        self.output_tokens += out
        self.from_usage += llm["source"] == "usage"
        if llm.get("input_tokens") is not None:
            self.input_tokens += llm["input_tokens"]
            self.input_known += 1
        if (
            (self.slo_ttft_ms is None or ttft * 1000 <= self.slo_ttft_ms)
            and (self.slo_tpot_ms is None or tpot is None or tpot * 1000 <= self.slo_tpot_ms)
            and (self.slo_e2e_ms is None or (done - intended) * 1000 <= self.slo_e2e_ms)
        ):
            self.good += 1

    # -- worker -> master --------------------------------------------------
    def take_report(self) -> dict:
        report = {
            "hists": {m: h.encode() if h.get_total_count() else b"" for m, h in self.hists.items()},
            "counts": [
                self.requests,
                self.input_tokens,
                self.input_known,
                self.output_tokens,
                self.from_usage,
                self.good,
            ],
        }
        for h in self.hists.values():
            h.reset()
        self.requests = self.input_tokens = self.input_known = 0
        self.output_tokens = self.from_usage = self.good = 0
        return report

    def merge(self, report: dict) -> None:
        for m, blob in report["hists"].items():
            if blob:
                self.hists[m].add(HdrHistogram.decode(blob))
        req, tin, known, tout, usage, good = report["counts"]
        self.requests += req
        self.input_tokens += tin
        self.input_known += known
        self.output_tokens += tout
        self.from_usage += usage
        self.good += good

    # -- reading -----------------------------------------------------------
    def quantiles_ms(self, metric: str) -> dict:
        h = self.hists[metric]
        if h.get_total_count() == 0:
            return {"p50": None, "p90": None, "p99": None}
        return {
            name: round(h.get_value_at_percentile(p) / 1000.0, 3)
            for name, p in (("p50", 50), ("p90", 90), ("p99", 99))
        }

    def token_count_source(self) -> str | None:
        if not self.requests:
            return None
        if self.from_usage == self.requests:
            return "usage"
        return "chunks" if self.from_usage == 0 else "mixed"

    def summary(self, duration_s: float) -> dict:
        """The ``llm`` object of summary.json (docs/run-format.md)."""
        per_s = (lambda n: round(n / duration_s, 3)) if duration_s > 0 else (lambda n: None)
        slo_set = any(v is not None for v in (self.slo_ttft_ms, self.slo_tpot_ms, self.slo_e2e_ms))
        return {
            "ttft_ms": self.quantiles_ms("ttft"),
            "itl_ms": self.quantiles_ms("itl"),
            "tpot_ms": self.quantiles_ms("tpot"),
            "requests": self.requests,
            "input_tokens_total": (
                self.input_tokens if self.requests and self.input_known == self.requests else None
            ),
            "output_tokens_total": self.output_tokens,
            "output_tokens_per_s": per_s(self.output_tokens),
            "goodput_qps": per_s(self.good) if slo_set else None,
            "slo": {
                "ttft_ms": self.slo_ttft_ms,
                "tpot_ms": self.slo_tpot_ms,
                "e2e_ms": self.slo_e2e_ms,
            },
            "token_count_source": self.token_count_source(),
        }
