"""What this machine computes with: the instruction set PyTorch dispatches to, whether bf16 is
native there, and what a profile's `auto` dtype therefore means.

bf16 is 2.2x fp32 on a CPU with AMX and 1.3x with AVX512-BF16, and 25-40x *slower* where it is
emulated: on a CPU without those instructions, or on one that has them while the kernels are
held to a lower instruction set (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS
set to AVX2, as the pinned smoke figures and CI are). So `auto` reads both the CPU's flags and
what the kernels are allowed to use.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from .schema import Profile

# The variables that hold PyTorch's kernels (ATen, oneDNN, MKL) to an instruction set.
HOLD_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
# oneDNN ISA names (ONEDNN_MAX_CPU_ISA) under which bf16 matmuls run on native instructions.
ONEDNN_BF16_ISAS = {"ALL", "DEFAULT", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512"}
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# The kernels held to AVX2: the same numbers on AVX2-only and AVX-512 machines (fp32 throughout).
# The tests, nbval's kernels and `make notebooks` run so; the smoke figures are pinned so.
HELD_TO_AVX2 = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_model() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def kernel_isa() -> str:
    """The instruction set PyTorch's CPU kernels dispatch to (AVX2, AVX512, ...)."""
    try:
        import torch

        return str(torch.backends.cpu.get_cpu_capability())
    except ImportError:  # the runner may inspect a machine before torch is installed
        return os.environ.get("ATEN_CPU_CAPABILITY", "unknown").upper()


def holds() -> dict[str, str]:
    """The hold variables that are set, with their values."""
    return {k: os.environ[k] for k in HOLD_VARIABLES if os.environ.get(k)}


def _held_below_bf16(held: dict[str, str], isa: str) -> str | None:
    """Why the kernels cannot use native bf16 although the CPU has it (None when they can)."""
    if isa.upper() in ("AVX2", "DEFAULT", "AVX", "SSE", "NO AVX"):
        return f"PyTorch's kernels dispatch to {isa}"
    onednn = held.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if onednn and onednn not in ONEDNN_BF16_ISAS and "AMX" not in onednn:
        return f"ONEDNN_MAX_CPU_ISA={held['ONEDNN_MAX_CPU_ISA']}"
    mkl = held.get("MKL_ENABLE_INSTRUCTIONS", "").upper()
    if mkl and not mkl.startswith("AVX512"):
        return f"MKL_ENABLE_INSTRUCTIONS={held['MKL_ENABLE_INSTRUCTIONS']}"
    return None


def bf16_native() -> tuple[bool, str]:
    """Whether bf16 runs on native instructions with the kernels in use, and why (or why not)."""
    have = [f for f in BF16_FLAGS if f in cpu_flags()]
    if not have:
        return False, "this CPU has neither AMX nor AVX512-BF16: bf16 would be emulated"
    why_not = _held_below_bf16(holds(), kernel_isa())
    if why_not:
        return False, f"the CPU has {'/'.join(have)} but {why_not}: bf16 would be emulated"
    return True, f"the CPU has {'/'.join(have)} and the kernels may use it"


def resolve_dtype(dtype: str, cuda: bool | None = None) -> str:
    """A profile's dtype with `auto` resolved for this machine: bf16 on a GPU or where the CPU
    computes bf16 natively with the kernels in use, fp32 elsewhere."""
    if dtype != "auto":
        return dtype
    if cuda is None:
        cuda = cuda_available()
    return "bf16" if cuda or bf16_native()[0] else "fp32"


def cuda_available() -> bool:
    """Whether PyTorch sees a GPU (False where torch is not installed)."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def describe(profile: Profile | None = None) -> dict[str, Any]:
    """This machine as a manifest records it, with each dtype section of the profile resolved."""
    native, reason = bf16_native()
    record: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "kernels": kernel_isa(),
        "held": holds(),
        "bf16_native": native,
        "bf16_reason": reason,
        "cuda": cuda_available(),
    }
    if profile is not None:
        record["dtypes"] = {
            name: resolve_dtype(section.dtype)
            for name in ("generation", "warmup", "sft", "dpo")
            if (section := getattr(profile, name, None)) is not None and hasattr(section, "dtype")
        }
    return record


def summary_line(record: dict[str, Any]) -> str:
    """One line saying what the run computes with, for the start of a run's log."""
    dtypes = ", ".join(f"{k} {v}" for k, v in record.get("dtypes", {}).items())
    device = "CUDA" if record["cuda"] else f"{record['kernels']} kernels"
    return f"compute: {device}, {dtypes or 'no dtypes'} ({record['bf16_reason']})"
