"""Shared by the benchmarks: describe the machine and write a JSON record."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

LOAD_AT_START = os.getloadavg()[0]  # read when a benchmark imports this module, before it loads the CPU


def machine() -> dict[str, Any]:
    """The machine a benchmark ran on."""
    import diffusers

    from microforge.cpu_features import native_bf16

    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        # the 1-minute load average before the benchmark started: near the core count, other work
        # shared the CPU and every timing is slower than the machine's own
        "load_average_at_start": round(LOAD_AT_START, 2),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "cpu": _cpu_name(),
        # bf16 autocast is faster than fp32 on a CPU only with bf16 units (microforge.cpu_features)
        "cpu_native_bf16": native_bf16(),
    }


def _cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), or platform.processor() elsewhere."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_record(record: dict[str, Any], out: Path) -> None:
    """Add the machine to ``record``, write it to ``out`` as JSON and print it."""
    record = {**record, "machine": machine()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
