"""Reading run folders: good ones load, bad ones fail with the path and the problem."""

from __future__ import annotations

import json

import pytest

from inferops.exitcodes import UsageError
from inferops.report import runs as runs_mod
from inferops.report import synthetic


@pytest.fixture
def run_dir(tmp_path):
    return synthetic.write_run(
        tmp_path / "run", profile="cpu-a", offered_qps=80, capacity_qps=200, duration_s=5
    )


def test_loads_a_run_with_histograms_and_timeseries(run_dir):
    run = runs_mod.load_run(run_dir)
    assert run.profile == "cpu-a"
    assert run.valid
    assert run.latency.get_total_count() == run.summary.requests
    # the summary's p99 and the histogram's agree (both from the same data)
    assert run.latency.get_value_at_percentile(99) / 1000 == pytest.approx(
        run.summary.latency_ms["p99"]
    )
    assert list(run.timeseries.columns[:3]) == ["t_s", "offered_qps", "achieved_qps"]
    assert len(run.timeseries) == 5


def test_sweep_loads_its_steps(make_sweep):
    path = make_sweep("sw", steps_qps=[20, 40, 60])
    run = runs_mod.load_run(path)
    assert [s.summary.offered_qps for s in run.steps] == [20, 40, 60]
    assert run.slo_p99_ms == 50.0


def test_profile_falls_back_to_folder_name(run_dir):
    (run_dir / "manifest.json").unlink()
    run = runs_mod.load_run(run_dir)
    assert run.profile == "run"
    assert any("manifest" in n for n in run.notes)


def _expect(path, *fragments):
    with pytest.raises(UsageError) as err:
        runs_mod.load_run(path)
    text = str(err.value)
    for fragment in fragments:
        assert fragment in text, text
    return text


def test_missing_folder(tmp_path):
    _expect(tmp_path / "nope", "run folder not found", str(tmp_path / "nope"))


def test_folder_without_summary(run_dir):
    (run_dir / "summary.json").unlink()
    _expect(run_dir, str(run_dir), "no summary.json")


@pytest.mark.parametrize("cut", [0, 1, 0.5])
def test_truncated_summary(run_dir, cut):
    path = run_dir / "summary.json"
    text = path.read_text()
    path.write_text(text[: int(len(text) * cut)] if cut != 1 else text[:-3])
    _expect(run_dir, str(path), "truncated")


def _edit_summary(run_dir, **changes):
    path = run_dir / "summary.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is KeyError:
            del data[key]
        else:
            data[key] = value
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "changes,fragment",
    [
        ({"schema": 2}, "schema 2 is not supported"),
        ({"schema": KeyError}, "no 'schema' key"),
        ({"valid": KeyError}, "missing key 'valid'"),
        ({"requests": "many"}, "requests: expected int"),
        ({"achieved_qps": True}, "achieved_qps: expected"),
        ({"latency_ms": {"p50": 1.0}}, "latency_ms.p99 is missing"),
        ({"slo": {"p99_ms": 50, "steps": [{"achieved_qps": 1}]}}, "slo.steps[0] is missing"),
        ({"slo": {"p99_ms": -5, "steps": []}}, "slo.p99_ms must be positive"),
        ({"breach_proven": "yes"}, "breach_proven: expected dict or null"),
        ({"breach_proven": {"needed": 13}}, "breach_proven.reason: expected str, got None"),
    ],
)
def test_wrong_summary_contents(run_dir, changes, fragment):
    path = _edit_summary(run_dir, **changes)
    _expect(run_dir, str(path), fragment)


def test_step_folder_missing(make_sweep):
    import shutil

    path = make_sweep("sw", steps_qps=[20, 40])
    shutil.rmtree(path / "steps" / "01")
    _expect(path, "steps/01", "missing")


def test_corrupt_histogram(run_dir):
    (run_dir / "latency.hdr").write_text("HISTFAAAA-not-base64!!\n")
    _expect(run_dir, "latency.hdr", "not a valid HdrHistogram")


def test_timeseries_missing_column(run_dir):
    path = run_dir / "timeseries.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    i = header.index("p99_ms")
    path.write_text(
        "\n".join(",".join(c for j, c in enumerate(line.split(",")) if j != i) for line in lines)
        + "\n"
    )
    _expect(run_dir, str(path), "missing column(s): p99_ms")


def test_timeseries_non_number(run_dir):
    path = run_dir / "timeseries.csv"
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[1] = "fast"
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    _expect(run_dir, "offered_qps", "'fast'", "row 3")


def test_invalid_run_with_no_samples_still_loads(run_dir):
    # an unreachable target: nothing measured, but the run is still shown (not sized)
    _edit_summary(
        run_dir,
        valid=False,
        validity=["target unreachable at start"],
        latency_ms={"p50": None, "p99": None},
        error_rate=None,
    )
    run = runs_mod.load_run(run_dir)
    assert not run.valid
