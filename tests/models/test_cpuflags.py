"""CPU flags from /proc/cpuinfo and the INT8 format chosen from them."""

from __future__ import annotations

from inferops.models import cpuflags

VNNI_XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni amx_tile amx_int8 amx_bf16

processor\t: 1
model name\t: ignored second block
flags\t\t: fpu
"""
AVX2_ONLY = """processor\t: 0
model name\t: Intel(R) Core(TM) i7-6700 CPU @ 3.40GHz
flags\t\t: fpu sse2 avx avx2 fma
"""
AVX512_NO_VNNI = """processor\t: 0
model name\t: Intel(R) Xeon(R) Gold 6148
flags\t\t: avx2 avx512f avx512bw avx512vl
"""
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimddp
CPU implementer\t: 0x41
"""


def _cpu(tmp_path, text, machine="x86_64", monkeypatch=None):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    if monkeypatch is not None:
        monkeypatch.setattr(cpuflags.platform, "machine", lambda: machine)
    return cpuflags.read_cpu(path)


def test_first_block_only_and_flags_in_fixed_order(tmp_path, monkeypatch):
    cpu = _cpu(tmp_path, VNNI_XEON, monkeypatch=monkeypatch)
    assert cpu.model_name == "Intel(R) Xeon(R) Platinum 8480+"
    assert cpu.int8_flags == [
        "avx2",
        "avx512f",
        "avx512bw",
        "avx512_vnni",
        "amx_tile",
        "amx_int8",
        "amx_bf16",
    ]
    assert cpu.vnni
    assert "amx_int8" in cpu.describe()


def test_vnni_cpu_gets_u8s8_full_range(tmp_path, monkeypatch):
    plan = cpuflags.int8_plan(_cpu(tmp_path, VNNI_XEON, monkeypatch=monkeypatch))
    assert (plan.activation_type, plan.weight_type, plan.reduce_range) == ("uint8", "int8", False)
    assert "avx512_vnni" in plan.reason


def test_no_vnni_cpus_get_reduce_range(tmp_path, monkeypatch):
    for text in (AVX2_ONLY, AVX512_NO_VNNI):
        cpu = _cpu(tmp_path, text, monkeypatch=monkeypatch)
        assert not cpu.vnni
        plan = cpuflags.int8_plan(cpu)
        assert (plan.activation_type, plan.reduce_range) == ("uint8", True), text
        assert "reduce_range" in plan.reason


def test_avx_vnni_alone_counts_as_vnni(tmp_path, monkeypatch):
    cpu = _cpu(tmp_path, AVX2_ONLY.replace("fma", "fma avx_vnni"), monkeypatch=monkeypatch)
    assert cpu.vnni and not cpuflags.int8_plan(cpu).reduce_range


def test_arm_gets_s8s8(tmp_path, monkeypatch):
    cpu = _cpu(tmp_path, ARM, machine="aarch64", monkeypatch=monkeypatch)
    assert cpu.int8_flags == []
    plan = cpuflags.int8_plan(cpu)
    assert (plan.activation_type, plan.reduce_range) == ("int8", False)


def test_unreadable_cpuinfo_gives_no_flags(tmp_path):
    cpu = cpuflags.read_cpu(tmp_path / "missing")
    assert cpu.flags == frozenset() and cpu.model_name


def test_this_machine(tmp_path):
    cpu = cpuflags.read_cpu()
    assert cpu.model_name
    assert set(cpu.int8_flags) <= set(cpuflags.INT8_FLAGS)
    assert cpu.as_record()["flags"] == cpu.int8_flags
