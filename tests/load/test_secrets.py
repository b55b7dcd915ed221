"""No secret in any artefact: the run folder, the report and the logs never hold the token.

A real law server that wants a bearer token, a real ``inferops bench`` with
``--token`` (or ``$INFEROPS_TOKEN``), then a real ``inferops report``: every byte
of the run folder, the HTML report and both commands' output is searched for
the secret. A password in the target URL gets the same search.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.load.procs import PY, ROOT, run_bench

pytestmark = pytest.mark.slow

TOKEN = "tok-9f3a1c-Sekrit-7d2e"
PASSWORD = "pw-4b8e0a-Hunter2"


def _every_byte(*folders) -> dict[str, bytes]:
    found = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                found[str(path)] = path.read_bytes()
    return found


def _leaks(secret: str, files: dict[str, bytes], *texts: str) -> list[str]:
    where = [name for name, data in files.items() if secret.encode() in data]
    where += [f"output #{i}" for i, text in enumerate(texts) if secret in text]
    return where


def _report(run_dir, out) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "-m", "inferops", "report", str(run_dir), "--out", str(out), "--target-qps", "10",
         "--slo-p99-ms", "100"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("how", ["flag", "flag=", "env"])
def test_token_reaches_no_artefact(law_server, tmp_path, how, monkeypatch):
    server = law_server("fixed:1", token=TOKEN)
    out = tmp_path / "run"
    args = ["--target", server.url, "--model", "law", "--rate", "100", "--duration", "2s",
            "--warmup", "0s", "--late-tolerance-ms", "20", "--out", str(out)]  # fmt: skip
    if how == "flag":
        args += ["--token", TOKEN]
    elif how == "flag=":
        args += [f"--token={TOKEN}"]
    else:
        monkeypatch.setenv("INFEROPS_TOKEN", TOKEN)
    bench = run_bench(args)
    assert bench.returncode in (0, 1, 3), bench.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] > 0 and summary["failures"] == 0, bench.stderr  # it authenticated
    report = _report(out, tmp_path / "report.html")
    assert report.returncode == 0, report.stderr
    files = _every_byte(out, tmp_path)
    assert str(tmp_path / "report.html") in files and str(out / "locust.html") in files
    assert not _leaks(TOKEN, files, bench.stdout, bench.stderr, report.stdout, report.stderr)
    # the command line is still recorded, with the secret masked
    command = json.loads((out / "manifest.json").read_text())["command"]
    if how != "env":
        assert "***" in " ".join(command)


def test_url_password_reaches_no_artefact(tmp_path):
    out = tmp_path / "run"
    bench = run_bench(
        ["--target", f"http://probe:{PASSWORD}@127.0.0.1:9", "--model", "m", "--rate", "5",
         "--duration", "1s", "--warmup", "0s", "--out", str(out)]
    )  # fmt: skip
    assert bench.returncode == 3, bench.stderr  # nothing answers: an invalid run, written
    report = _report(out, tmp_path / "report.html")
    assert report.returncode == 0, report.stderr
    files = _every_byte(out, tmp_path)
    assert str(out / "summary.json") in files
    assert not _leaks(PASSWORD, files, bench.stdout, bench.stderr, report.stdout, report.stderr)
    assert "probe:***@127.0.0.1:9" in json.loads((out / "summary.json").read_text())["target"]


def test_an_old_run_folder_with_a_token_does_not_leak_into_the_report(tmp_path):
    from inferops.report import synthetic

    run = synthetic.write_run(tmp_path / "old")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["command"] = [
        "inferops",
        "bench",
        "--token",
        TOKEN,
        "--target",
        f"http://u:{PASSWORD}@h",
    ]
    (run / "manifest.json").write_text(json.dumps(manifest))
    report = _report(run, tmp_path / "report.html")
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "report.html").read_text()
    assert TOKEN not in html and PASSWORD not in html
    assert "--token ***" in html


def test_token_reaches_no_artefact_under_stock_locust(law_server, tmp_path):
    server = law_server("fixed:1", token=TOKEN)
    out = tmp_path / "locust"
    res = subprocess.run(
        [str(ROOT / ".venv/bin/locust"), "-f", str(ROOT / "loadtests"), "--headless",
         "-H", server.url, "--model", "law", "--arrival-rate", "100", "-t", "2s",
         "--token", TOKEN, "--run-folder", str(out), "--late-tolerance-ms", "20"],
        cwd=ROOT, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] > 0 and summary["failures"] == 0, res.stderr[-2000:]
    files = _every_byte(out)
    assert str(out / "manifest.json") in files and str(out / "locust.html") in files
    assert not _leaks(TOKEN, files, res.stdout, res.stderr)
    assert "***" in json.loads((out / "manifest.json").read_text())["command"]
