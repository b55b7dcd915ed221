"""``inferops k8s render``: sized from runs, validated against pinned schemas.

The run folders are the report's synthetic sweeps (FAKE measurements with a
known capacity), so the expected sizing is the report's own for the same runs.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inferops.release import k8s, k8s_validate
from inferops.report import synthetic
from tests.report import htmlfacts

SLO_MS = 50.0


def _inferops(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inferops", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("k8s")
    return synthetic.write_sweep(
        root / "cpu", profile="cpu-batching", slo_p99_ms=SLO_MS, capacity_qps=300.0, base_ms=3.0
    )


@pytest.fixture(scope="module")
def rendered(sweep, tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("manifests")
    proc = _inferops(
        "k8s",
        "render",
        "--runs",
        str(sweep),
        "--target-qps",
        "1000",
        "--slo-p99-ms",
        str(SLO_MS),
        "--headroom",
        "0.2",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"manifests written to {out.resolve()}"
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.yaml"))}


def test_every_manifest_passes_its_pinned_schema(rendered):
    assert set(rendered) == {
        "deployment.yaml",
        "service.yaml",
        "pdb.yaml",
        "hpa.yaml",
        "prometheus-adapter-rules.yaml",
        "servicemonitor.yaml",
    }
    k8s_validate.validate_all(rendered)


def test_replicas_and_hpa_target_match_the_sizing_report(rendered, sweep, tmp_path):
    report = tmp_path / "r.html"
    proc = _inferops(
        "report",
        str(sweep),
        "--out",
        str(report),
        "--target-qps",
        "1000",
        "--slo-p99-ms",
        str(SLO_MS),
        "--headroom",
        "0.2",
    )
    assert proc.returncode == 0, proc.stderr
    facts = htmlfacts.parse(report.read_text()).facts
    proposed = int(facts[("cpu-batching", "proposed")][0])
    max_qps = htmlfacts.number(facts[("cpu-batching", "max-qps-at-slo")][0])
    deployment, hpa = rendered["deployment.yaml"], rendered["hpa.yaml"]
    assert deployment["spec"]["replicas"] == proposed
    assert hpa["spec"]["minReplicas"] == proposed
    target = hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"]
    assert target.endswith("m")
    # the report prints one decimal; the HPA carries milli-units of the same number
    assert float(target[:-1]) / 1000 == pytest.approx(max_qps * 0.8, abs=0.05 * 0.8 + 1e-3)


def test_probes_security_and_gpu_rules(sweep, tmp_path):
    out = tmp_path / "gpu"
    proc = _inferops(
        "k8s",
        "render",
        "--runs",
        str(sweep),
        "--target-qps",
        "500",
        "--out",
        str(out),
        "--server",
        "vllm",
        "--gpus",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    dep = yaml.safe_load((out / "deployment.yaml").read_text())
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"
    assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] >= 600
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert "nvidia.com/gpu" not in c["resources"].get("requests", {})
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    # the token is a Secret reference, never a value
    assert all("value" not in e for e in c.get("env", []))


def test_schema_check_rejects_what_a_cluster_would(rendered):
    bad = copy.deepcopy(rendered["deployment.yaml"])
    bad["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # typo: resources
    with pytest.raises(k8s_validate.ManifestError, match="resource"):
        k8s_validate.validate_manifest(bad)
    bad = copy.deepcopy(rendered["hpa.yaml"])
    bad["spec"]["minReplicas"] = "three"
    with pytest.raises(k8s_validate.ManifestError, match="minReplicas"):
        k8s_validate.validate_manifest(bad)
    bad = copy.deepcopy(rendered["servicemonitor.yaml"])
    bad["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(k8s_validate.ManifestError, match="intervall"):
        k8s_validate.validate_manifest(bad)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--target-qps", "inf"], "--target-qps"),
        (["--target-qps", "-3"], "--target-qps"),
        (["--headroom", "1.5"], "--headroom"),
        (["--namespace", "Bad_NS"], "namespace"),
        (["--profile", "nope"], "nope"),
    ],
)
def test_bad_input_exits_2_with_one_line(sweep, tmp_path, args, needle):
    proc = _inferops(
        "k8s",
        "render",
        "--runs",
        str(sweep),
        "--out",
        str(tmp_path / "o"),
        "--target-qps",
        "100",
        *args,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_missing_run_folder_exits_2(tmp_path):
    proc = _inferops(
        "k8s", "render", "--runs", str(tmp_path / "none"), "--out", str(tmp_path / "o")
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_an_invalid_run_is_not_sized_exit_3(tmp_path):
    bad = synthetic.write_sweep(tmp_path / "bad", profile="x", slo_p99_ms=SLO_MS, valid=False)
    proc = _inferops(
        "k8s", "render", "--runs", str(bad), "--out", str(tmp_path / "o"), "--target-qps", "100"
    )
    assert proc.returncode == 3, proc.stderr
    assert "no run could be sized" in proc.stderr


def test_resources_round_up_from_measured_peaks():
    s = k8s.Sizing(
        run="r",
        model="m",
        max_qps_at_slo=10,
        headroom=0.2,
        target_qps=10,
        slo_p99_ms=100,
        nodes=1,
        cpu_cores_peak=1.01,
        memory_bytes_peak=300 * 2**20,
    )
    r = k8s.resources(s)
    assert r["requests"] == {"cpu": "1050m", "memory": "320Mi"}
    assert r["limits"] == {"memory": "512Mi"}
