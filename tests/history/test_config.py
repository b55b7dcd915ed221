"""``nightly.toml`` validation: every bad key exits 2 naming it, in one line."""

from __future__ import annotations

import pytest

from inferops.exitcodes import UsageError
from inferops.history.config import load

from .conftest import ROOT, inferops

GOOD = """
[nightly]
out = "runs"
min_effect = "5%"
[[scenario]]
name = "a"
target = "http://127.0.0.1:8000"
model = "mlp"
rate = 50
duration = "20s"
"""


def test_the_example_config_is_valid():
    config = load(ROOT / "nightly.example.toml")
    assert [s.name for s in config.scenarios] == ["mlp-200qps", "mlp-capacity"]
    assert config.scenarios[0].duration_s == 60 and config.scenarios[1].timeout_s == 45 * 60
    assert config.min_effect == 0.05 and config.provision.enabled is False
    done = inferops("nightly", "--config", ROOT / "nightly.example.toml", "--check")
    assert done.returncode == 0 and "ok (2 scenarios)" in done.stdout


@pytest.mark.parametrize(
    "edit, message",
    [
        (("rate = 50", "rat = 50"), "scenario[0].rat: unknown key (did you mean 'rate'?)"),
        (("[nightly]", "[nightly]\nmin_efect = 0.1"), "nightly.min_efect: unknown key"),
        (("[nightly]", "[nighty]"), "nighty: unknown section (did you mean 'nightly'?)"),
        (("rate = 50", "rate = -5"), "scenario[0].rate: expected a positive number"),
        (('duration = "20s"', 'duration = "soon"'), "scenario[0].duration"),
        (('min_effect = "5%"', 'min_effect = "5000%"'), "nightly.min_effect"),
        (("rate = 50", "sweep = true"), "scenario[0].slo_p99_ms: needed with sweep = true"),
        (("rate = 50", ""), "give either rate"),
        (('target = "http://127.0.0.1:8000"', 'target = "127.0.0.1"'), "scenario[0].target"),
        (('model = "mlp"', 'model = "mlp"\nbench_args = ["--token", "x"]'), "no tokens"),
        (("[nightly]", '[provision]\nenabled = "yes"\n[nightly]'), "provision.enabled"),
    ],
)
def test_bad_config_exits_2_naming_the_key(tmp_path, edit, message):
    path = tmp_path / "nightly.toml"
    path.write_text(GOOD.replace(*edit, 1))
    with pytest.raises(UsageError, match=None) as info:
        load(path)
    assert message in str(info.value)
    done = inferops("nightly", "--config", path)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_missing_and_malformed_files_exit_2(tmp_path):
    done = inferops("nightly", "--config", tmp_path / "none.toml")
    assert done.returncode == 2 and "no such file" in done.stderr
    (tmp_path / "bad.toml").write_text("[nightly\n")
    done = inferops("nightly", "--config", tmp_path / "bad.toml")
    assert done.returncode == 2 and "not valid TOML" in done.stderr
    (tmp_path / "empty.toml").write_text("[nightly]\n")
    done = inferops("nightly", "--config", tmp_path / "empty.toml")
    assert done.returncode == 2 and "at least one [[scenario]]" in done.stderr


def test_bench_command_for_fixed_rate_and_sweep(tmp_path):
    from inferops.history.nightly import bench_command

    config = load(ROOT / "nightly.example.toml")
    fixed, sweep = config.scenarios
    cmd = bench_command(fixed, tmp_path / "run", "thresholds.toml")
    assert cmd[1:4] == ["-m", "inferops", "bench"]
    text = " ".join(cmd)
    assert "--rate 200 " in text and "--sweep" not in text and "--seed 1" in text
    assert "--duration 60 --warmup 10" in text and "--thresholds thresholds.toml" in text
    assert f"--out {tmp_path / 'run'}" in text and "--profile cpu-batching" in text
    text = " ".join(bench_command(sweep, tmp_path / "s", None))
    assert "--sweep --slo-p99-ms 50 --sweep-start 50 --sweep-precision 0.02" in text
    assert "--rate" not in text and "--thresholds" not in text
    # every flag is one `inferops bench` accepts
    from inferops.cli import build_parser

    for scenario in (fixed, sweep):
        build_parser().parse_args(bench_command(scenario, tmp_path / "x", "t.toml")[3:])
