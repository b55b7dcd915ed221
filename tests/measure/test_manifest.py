"""manifest.json: the facts are present and true of this checkout and machine."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import textwrap

import psutil

import inferops
from inferops.measure import manifest
from inferops.measure.runfolder import RunFolder

from . import fake_pynvml

REPO = os.path.dirname(os.path.dirname(inferops.__file__))


def test_collect_has_every_documented_field(tmp_path):
    cmd = ["inferops", "bench", "--out", str(tmp_path)]
    m = manifest.collect(cmd, thresholds={"p99_latency_ms": 500}, profile="cpu-batching")
    assert m["schema"] == 1
    assert m["inferops_version"] == inferops.__version__
    assert m["command"] == cmd
    assert m["python"] == platform.python_version()
    assert m["thresholds"] == {"p99_latency_ms": 500}
    assert m["profile"] == "cpu-batching"
    created = dt.datetime.strptime(m["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    assert abs((now - created).total_seconds()) < 60
    pk = m["packages"]
    assert set(manifest.PACKAGES) <= pk.keys()
    # (importing locust here would gevent-patch the test process, so check its form only)
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?\S*", pk["locust"])
    assert pk["psutil"] == psutil.__version__
    assert pk["nvidia-ml-py"] is not None and pk["hdrhistogram"] is not None
    host = m["host"]
    assert host["hostname"] == platform.node()
    assert host["kernel"] == platform.release()
    assert host["cpu_count"] == os.cpu_count()
    assert host["memory_bytes"] == psutil.virtual_memory().total
    assert host["cpu_model"]
    assert host["gpus"] == [] or all("uuid" in g for g in host["gpus"])
    # it is valid JSON through the run-folder writer
    path = RunFolder(tmp_path / "r").write_json(manifest.MANIFEST, m)
    assert json.loads(path.read_text()) == m


def test_git_sha_is_the_checkout_head():
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    m = manifest.collect(["x"], thresholds={})
    assert m["git_sha"] == head and len(head) == 40
    assert isinstance(m["git_dirty"], bool)


def _collect_from_copy(tmp_path):
    shutil.copytree(
        os.path.dirname(inferops.__file__),
        tmp_path / "inferops",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    script = textwrap.dedent(
        """
        import json, inferops
        from inferops.measure import manifest
        m = manifest.collect(["x"], thresholds={})
        print(json.dumps({"file": inferops.__file__, "sha": m["git_sha"],
                          "dirty": m["git_dirty"]}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def test_git_sha_is_none_for_a_copy_outside_git(tmp_path):
    got = _collect_from_copy(tmp_path)
    assert got["file"].startswith(str(tmp_path))  # really the copy
    assert got["sha"] is None and got["dirty"] is None


def test_git_sha_is_none_inside_an_unrelated_repo(tmp_path):
    # e.g. a venv living inside another project's repository: inferops is not tracked there
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(tmp_path),
            "-c",
            "user.email=t@t",
            "-c",
            "user.name=t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "other project",
        ],
        check=True,
    )
    got = _collect_from_copy(tmp_path)
    assert got["sha"] is None


def test_extra_is_merged_last():
    m = manifest.collect(["x"], thresholds={}, extra={"profile": "gpu", "target": "http://h"})
    assert m["profile"] == "gpu" and m["target"] == "http://h"


def test_missing_package_is_none():
    assert manifest.package_versions(("psutil", "no-such-dist-inferops")) == {
        "psutil": psutil.__version__,
        "no-such-dist-inferops": None,
    }


def test_os_release_pretty_name(tmp_path):
    f = tmp_path / "os-release"
    f.write_text(
        'NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
    )
    assert manifest.os_pretty_name(f) == "Debian GNU/Linux 12 (bookworm)"
    f.write_text("ID=alpine\n")
    assert manifest.os_pretty_name(f) is None
    assert manifest.os_pretty_name(tmp_path / "missing") is None
    if os.path.exists("/etc/os-release"):
        assert manifest.collect(["x"], thresholds={})["host"]["os"] == manifest.os_pretty_name()


def test_cpu_model_from_cpuinfo(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) X\n")
    assert manifest.cpu_model(f) == "Intel(R) Xeon(R) X"


def test_host_gpus_come_from_nvml(monkeypatch):
    # FAKE pynvml: no GPU exists on the test machine
    fake = fake_pynvml.make(
        [
            {
                "name": "NVIDIA L4",
                "uuid": "GPU-1",
                "mem_total": 2**34,
                "mem_used": 0,
                "util": 0,
                "power_mw": 0,
                "power_limit_mw": 72_000,
                "temp": 30,
                "sm_clock": 0,
                "mem_clock": 0,
            },
        ]
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpus = manifest.collect(["x"], thresholds={})["host"]["gpus"]
    assert gpus == [
        {
            "index": 0,
            "name": "NVIDIA L4",
            "uuid": "GPU-1",
            "driver_version": "550.54.15",
            "memory_total_bytes": 2**34,
            "power_limit_w": 72.0,
        }
    ]
