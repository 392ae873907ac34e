"""What the CPU can do natively, where it changes which training precision is faster.

bfloat16 autocast (``train.bf16_stages`` of TiM3, ``autocast: bf16`` of the fingerprint VAE) is
faster than fp32 only on a CPU with bf16 units (x86: AVX512-BF16 or AMX). Elsewhere oneDNN emulates
bf16 arithmetic, and a TiM3 stage-2 step took 1.9 s instead of fp32's 0.6 s
(``benchmarks/results/tim3_train_bf16_cpu_no-bf16-units.json``; docs/tim3.md, "Training").
"""

from __future__ import annotations

import platform

import torch

X86 = ("x86_64", "amd64", "i386", "i686")


def native_bf16() -> bool | None:
    """Whether this CPU computes bfloat16 natively: True or False on x86 (AVX512-BF16 or AMX
    tiles, as PyTorch's CPU build detects them), None where it cannot tell (other CPUs, or a
    PyTorch without the probes)."""
    if platform.machine().lower() not in X86:
        return None
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    probes = [probe for probe in probes if callable(probe)]
    if not probes:  # private probes (torch >= 2.3); a later torch may move them
        return None
    return any(bool(probe()) for probe in probes)


def bf16_warning(asked: bool) -> str | None:
    """The one-line warning for a training run that asked for bf16 autocast (``asked``) on a CPU
    without bf16 units, or None: no bf16 asked, a GPU will train it, or the CPU has the units
    (or cannot tell)."""
    if not asked or torch.cuda.is_available() or native_bf16() is not False:
        return None
    return (
        "this CPU has no bfloat16 units (AVX512-BF16 or AMX), so bf16 autocast trains slower than "
        "fp32 here (about 3x slower for TiM3's stage 2); leave it out of the config to train in fp32"
    )
