"""The CPU's integer-math instructions, read from ``/proc/cpuinfo``, and the INT8 format they favour.

Whether INT8 pays depends on them. ONNX Runtime's x86 kernels (MLAS) multiply
unsigned 8-bit activations by signed 8-bit weights (U8S8):

* with VNNI (``avx512_vnni``, ``avx_vnni``) or AMX (``amx_int8``) one instruction
  does the multiply-add in 32-bit, so full 8-bit ranges are safe;
* with plain AVX2/AVX-512 the multiply-add (``vpmaddubsw``) sums pairs into 16
  bits and can saturate, so weights are quantised to 7 bits (``reduce_range``),
  as ONNX Runtime's quantisation guide advises.

Signed activations (S8S8) are converted back to U8 on x86 at run time: on an
AVX-512 VNNI CPU they left the embedded ``cnn`` no faster than FP32, where U8S8
ran 3x faster (``benchmarks/profiles.py --formats``). On other architectures
(ARM's ``sdot`` is signed x signed) S8S8 is the natural choice.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from pathlib import Path

#: The flags that decide the INT8 format, in the order they are reported.
INT8_FLAGS: tuple[str, ...] = (
    "avx2",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class CpuInfo:
    model_name: str
    machine: str
    flags: frozenset[str]

    @property
    def int8_flags(self) -> list[str]:
        """The flags of :data:`INT8_FLAGS` this CPU has, in that order."""
        return [f for f in INT8_FLAGS if f in self.flags]

    @property
    def vnni(self) -> bool:
        return any(f in self.flags for f in VNNI_FLAGS)

    def describe(self) -> str:
        """``Intel Xeon ... (avx2 avx512f avx512_vnni ...)`` for reports and benchmark output."""
        return f"{self.model_name} ({' '.join(self.int8_flags) or 'no AVX2/AVX-512/VNNI/AMX'})"

    def as_record(self) -> dict:
        return {"model_name": self.model_name, "machine": self.machine, "flags": self.int8_flags}


@dataclass(frozen=True)
class Int8Plan:
    """The INT8 data types chosen for this CPU, with the reason, as recorded in a profile."""

    activation_type: str  # "uint8" or "int8"
    weight_type: str
    reduce_range: bool
    reason: str

    def as_record(self) -> dict:
        return asdict(self)


def read_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """Parse the first processor block of ``cpuinfo`` (all cores of one host share the flags)."""
    machine = platform.machine() or "unknown"
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return CpuInfo(platform.processor() or machine, machine, frozenset())
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # end of the first processor block
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    # x86 says "flags", ARM says "Features".
    flags = frozenset((fields.get("flags") or fields.get("features") or "").split())
    name = fields.get("model name") or fields.get("cpu model") or platform.processor() or machine
    return CpuInfo(name, machine, flags)


def int8_plan(cpu: CpuInfo) -> Int8Plan:
    """U8S8 on x86 (7-bit weights without VNNI/AMX), S8S8 elsewhere; see the module docstring."""
    x86 = cpu.machine in ("x86_64", "AMD64", "i686", "i386") or "avx2" in cpu.flags
    if not x86:
        return Int8Plan(
            "int8", "int8", False, f"{cpu.machine}: signed x signed (S8S8) dot products"
        )
    if cpu.vnni:
        have = ", ".join(f for f in VNNI_FLAGS if f in cpu.flags)
        return Int8Plan("uint8", "int8", False, f"x86 with {have}: U8S8, full 8-bit weights")
    return Int8Plan(
        "uint8",
        "int8",
        True,
        "x86 without VNNI/AMX: U8S8 with 7-bit weights (reduce_range) against vpmaddubsw saturation",
    )
