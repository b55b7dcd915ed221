"""Every bad flag or file: exit 2 and one line on stderr, never a traceback, nothing written.

One table over all subcommands, each case run as a real ``python -m inferops``
subprocess (what a user types). Each row names the protection it exercises.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ["bench", "--target", "http://127.0.0.1:9", "--model", "m", "--rate", "5"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad-input")
    (d / "ragged.jsonl").write_text('{"input": [[1, 2], [3]]}\n')
    (d / "latin1.jsonl").write_bytes(b'{"input": [1.0]}\n{"input": "\xe9t\xe9"}\n')
    (d / "empty.npy").write_bytes(b"")
    np.save(d / "no-samples.npy", np.zeros((0, 4), dtype=np.float32))
    np.savez(d / "arrays.npz", a=np.zeros((2, 2)))
    (d / "arrays.npz").rename(d / "renamed.npy")
    assert zipfile.is_zipfile(d / "renamed.npy")
    np.save(d / "dates.npy", np.array(["2020-01-01"], dtype="datetime64[D]"))
    (d / "a-dir").mkdir()
    (d / "a-file").write_text("x")
    return d


def cases(d: Path) -> list[tuple[str, list[str], str]]:
    inp = [*BENCH[:5], "--protocol", "v2", "--rate", "5", "--input-file"]
    return [
        # --input-file contents
        ("ragged jsonl", [*inp, str(d / "ragged.jsonl")], "not a rectangular array"),
        # (predict sends each line as it is: a ragged list is the user's business there)
        ("non-UTF-8 jsonl", [*inp, str(d / "latin1.jsonl")], "not UTF-8"),
        ("empty .npy", [*inp, str(d / "empty.npy")], "not a valid .npy"),
        ("no samples .npy", [*inp, str(d / "no-samples.npy")], "at least one sample"),
        (".npz renamed .npy", [*inp, str(d / "renamed.npy")], ".npz archive"),
        ("datetime .npy", [*inp, str(d / "dates.npy")], "must be numbers"),
        ("input file is a dir", [*inp, str(d / "a-dir")], "--input-file"),
        # --target
        ("port not a number", ["bench", "--target", "http://h:abc", "--model", "m", "--rate", "5"],
         "--target"),
        ("unclosed IPv6", ["bench", "--target", "http://[::1", "--model", "m", "--rate", "5"],
         "--target"),
        ("space in URL", ["bench", "--target", "http://h x", "--model", "m", "--rate", "5"],
         "--target"),
        ("no host", ["bench", "--target", "http://", "--model", "m", "--rate", "5"], "no host"),
        ("not http", ["bench", "--target", "127.0.0.1:80", "--model", "m", "--rate", "5"],
         "--target"),
        ("node exporter URL", [*BENCH, "--node-exporter", "http://h:99999"], "--node-exporter"),
        ("prometheus URL", [*BENCH, "--prometheus", "http://h:99999", "--instance", "a"],
         "--prometheus"),
        ("prometheus without instance", [*BENCH, "--prometheus", "http://127.0.0.1:9"],
         "--instance"),
        ("instance without prometheus", [*BENCH, "--instance", "a"], "--prometheus URL"),
        ("two host sources", [*BENCH, "--prometheus", "http://127.0.0.1:9", "--instance", "a",
                              "--node-exporter", "http://127.0.0.1:9"], "two sources"),
        ("prometheus unreachable", [*BENCH, "--prometheus", "http://u:pw12345@127.0.0.1:9",
                                    "--instance", "a"], "cannot reach Prometheus at http://u:***@"),
        # files that are directories
        ("thresholds is a dir", [*BENCH, "--thresholds", str(d / "a-dir")], "is a directory"),
        ("catalog is a dir", ["report", str(d), "--out", str(d / "r.html"), "--catalog",
                              str(d / "a-dir")], "is a directory"),
        ("report --out is a dir", ["report", str(d), "--out", str(d / "a-dir")],
         "is a directory"),
        ("bench --out is a file", [*BENCH, "--out", str(d / "a-file")], "existing file"),
        ("demo --out is a file", ["demo", "--out", str(d / "a-file")], "is a file"),
        # numbers that are not finite or out of range
        ("duration inf", [*BENCH, "--duration", "inf"], "--duration"),
        ("warmup nan", [*BENCH, "--warmup", "nan"], "--warmup"),
        ("rate inf", [*BENCH[:-1], "inf"], "--rate"),
        ("rate 1e999", [*BENCH[:-1], "1e999"], "--rate"),
        ("spike factor nan", [*BENCH, "--spike-factor", "nan"], "--spike-factor"),
        ("slo nan", [*BENCH, "--slo-p99-ms", "nan"], "--slo-p99-ms"),
        ("late tolerance inf", [*BENCH, "--late-tolerance-ms", "inf"], "--late-tolerance-ms"),
        ("sweep max steps 0", [*BENCH[:-2], "--sweep", "--sweep-max-steps", "0"],
         "--sweep-max-steps"),
        ("sweep precision 1", [*BENCH[:-2], "--sweep", "--sweep-precision", "1"],
         "--sweep-precision"),
        ("sweep settle negative", [*BENCH[:-2], "--sweep", "--sweep-settle-max", "-5s"],
         "--sweep-settle-max"),
        ("sweep settle word", [*BENCH[:-2], "--sweep", "--sweep-settle-max", "soon"],
         "--sweep-settle-max"),
        ("max inflight 0", [*BENCH, "--max-inflight", "0"], "--max-inflight"),
        ("report target inf", ["report", str(d), "--out", str(d / "r.html"), "--target-qps", "inf"],
         "--target-qps"),
        ("report headroom 1", ["report", str(d), "--out", str(d / "r.html"), "--headroom", "1"],
         "--headroom"),
        ("serve port", ["serve", "--model", "mlp", "--port", "70000"], "--port"),
        ("serve delay nan", ["serve", "--model", "mlp", "--max-queue-delay-ms", "nan"],
         "--max-queue-delay-ms"),
        ("serve batch 0", ["serve", "--model", "mlp", "--max-batch-size", "0"],
         "--max-batch-size"),
        ("demo slo inf", ["demo", "--slo-p99-ms", "inf"], "--slo-p99-ms"),
        ("demo step nan", ["demo", "--step-duration", "nan"], "--step-duration"),
        ("model unknown", ["model", "build", "nope"], "nope"),
    ]  # fmt: skip


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        return subprocess.run(
            [sys.executable, "-m", "inferops", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=cwd,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:  # a bad value was accepted: it started work
        return subprocess.CompletedProcess(argv, None, "", f"timed out: {exc}")


def test_every_bad_flag_or_file_is_exit_2_and_one_line(files, tmp_path):
    table = cases(files)
    before = sorted(p.name for p in files.iterdir())
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: _run(case[1], tmp_path), table))
    problems = []
    for (name, _argv, needle), res in zip(table, results, strict=True):
        lines = res.stderr.strip().splitlines()
        if (
            res.returncode != 2
            or len(lines) != 1
            or "Traceback" in res.stderr
            or needle not in res.stderr
        ):
            problems.append(f"{name}: rc={res.returncode} stderr={res.stderr[-600:]!r}")
    assert not problems, "\n".join(problems)
    # nothing written: no run folder, no report, nothing in the working directory
    assert sorted(p.name for p in files.iterdir()) == before
    assert list(tmp_path.iterdir()) == []
