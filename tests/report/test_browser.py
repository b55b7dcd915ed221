"""The report opened in real headless Chromium: renders, no console errors, offline."""

from __future__ import annotations

import io
import os

import pytest

from inferops.cli import main

from .chromium import CHROMIUM, Chromium
from .test_report import SECTIONS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"missing dependency: chromium at {CHROMIUM} (make system-deps installs it, as root)",
    ),
]


@pytest.fixture(scope="module")
def browser():
    with Chromium() as b:
        yield b


@pytest.fixture(scope="module")
def report_file(sweeps, make_invalid_sweep, tmp_path_factory):
    from inferops.report import synthetic

    out = tmp_path_factory.mktemp("browser") / "index.html"
    llm = synthetic.write_llm_sweep(tmp_path_factory.mktemp("llm") / "llm-cb", profile="llm-cb")
    code = main(
        [
            "report",
            *map(str, sweeps.values()),
            str(make_invalid_sweep),
            str(llm),
            "--out",
            str(out),
            "--target-qps",
            "1000",
        ]
    )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def make_invalid_sweep(tmp_path_factory):
    from inferops.report import synthetic

    from .conftest import SLO_MS

    return synthetic.write_sweep(
        tmp_path_factory.mktemp("bad") / "t4-bad",
        profile="t4-bad",
        valid=False,
        gpu=True,
        slo_p99_ms=SLO_MS,
    )


def _pixels(png: bytes):
    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")


def test_report_renders_in_chromium(browser, report_file):
    page = browser.load(report_file)
    assert page["errors"] == []
    # offline: the only thing fetched is the file itself (inline SVG, no assets)
    assert page["requests"] == [report_file.resolve().as_uri()]
    by_id = {s["id"]: s for s in page["sections"]}
    assert list(by_id) == [*SECTIONS[:-1], "llm", SECTIONS[-1]]  # llm: an openai run is in
    for section in by_id.values():
        assert section["height"] > 50 and section["text"] > 50, section
    assert by_id["latency"]["svgs"] == 4  # one curve per run
    assert by_id["llm"]["svgs"] == 1  # TTFT, TPOT and tokens/s of the one LLM run
    assert by_id["comparison"]["svgs"] == 1  # the overlay
    pixels = _pixels(page["screenshot"])
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    assert pixels[..., :3].std() > 0.02  # not a blank page


def test_harness_catches_errors_and_fetches(browser, tmp_path):
    # negative control: the checks above would notice a broken or non-offline page
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<html><body><section id='x'>hi</section>"
        "<img src='http://127.0.0.1:9/nope.png'>"
        "<script>console.error('boom'); undefinedFunction();</script></body></html>"
    )
    page = browser.load(bad)
    assert any("boom" in e for e in page["errors"])
    assert any("undefinedFunction" in e or "Uncaught" in e for e in page["errors"])
    assert "http://127.0.0.1:9/nope.png" in page["requests"]
