"""hardware.toml: the shipped catalogue is valid and marked as examples; bad ones fail."""

from __future__ import annotations

import pytest

from inferops.exitcodes import UsageError
from inferops.report import catalog

GOOD = """
[[hardware]]
name = "box"
cpu = "8 vCPU"
gpu = ""
hourly_usd = 0.5
power_w = 100
profiles = ["cpu-*"]
"""


def test_shipped_catalogue_covers_the_seed_hardware_and_says_example():
    entries = catalog.load(catalog.DEFAULT_PATH)
    gpus = " ".join(e.gpu for e in entries)
    for kind in ("T4", "A10", "L4", "A100", "H100"):
        assert kind in gpus
    assert any(e.gpu == "" for e in entries)  # a CPU-only node
    assert all("EXAMPLE" in e.note for e in entries)
    assert "EXAMPLE PRICES" in catalog.DEFAULT_PATH.read_text()
    # the demo's two profiles have a price
    assert catalog.for_profile(entries, "cpu-dynamic-batching")
    assert catalog.for_profile(entries, "cpu-batch-1")


def test_globs_map_profiles(tmp_path):
    path = tmp_path / "hw.toml"
    path.write_text(GOOD)
    entries = catalog.load(path)
    assert [e.name for e in catalog.for_profile(entries, "cpu-fast")] == ["box"]
    assert catalog.for_profile(entries, "gpu-fast") == []


@pytest.mark.parametrize(
    "edit,fragments",
    [
        (("power_w = 100", "power_w = 100\nwatts = 3"), ["'box'", "unknown key 'watts'"]),
        (("hourly_usd = 0.5", 'hourly_usd = "cheap"'), ["'box'", "hourly_usd must be a number"]),
        (("hourly_usd = 0.5", "hourly_usd = -1"), ["'box'", "hourly_usd", ">= 0"]),
        (('profiles = ["cpu-*"]', 'profiles = "cpu"'), ["'box'", "profiles must be"]),
        (('gpu = ""\n', ""), ["'box'", "missing key 'gpu'"]),
        (('cpu = "8 vCPU"', "cpu = 8"), ["'box'", "cpu must be a string"]),
        (("[[hardware]]", "currency = 'EUR'\n[[hardware]]"), ["unknown top-level key 'currency'"]),
        (("power_w = 100", "power_w = true"), ["power_w must be a number"]),
    ],
)
def test_bad_entries_name_the_entry_and_key(tmp_path, edit, fragments):
    path = tmp_path / "hw.toml"
    path.write_text(GOOD.replace(*edit))
    with pytest.raises(UsageError) as err:
        catalog.load(path)
    for fragment in fragments:
        assert fragment in str(err.value)
    assert str(path) in str(err.value)


def test_duplicate_names_and_bad_toml(tmp_path):
    path = tmp_path / "hw.toml"
    path.write_text(GOOD + GOOD)
    with pytest.raises(UsageError, match="duplicate hardware entry name 'box'"):
        catalog.load(path)
    path.write_text("[[hardware]\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        catalog.load(path)
    with pytest.raises(UsageError, match="not found"):
        catalog.load(tmp_path / "absent.toml")
