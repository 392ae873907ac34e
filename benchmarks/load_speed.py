"""Benchmark: how much `microforge generate` slows down on a busy machine.

    python benchmarks/load_speed.py [--samples 8] [--busy 2]

Times `microforge generate -n 8` (the bundled model) on an idle machine, then beside two kinds of
load: ``--busy`` pure-Python busy loops, and a PyTorch job with one thread per core (matrix
products, as a training job beside it would run), each with the thread count microforge chooses by
itself and with it forced to one thread per core (PyTorch's default, ``MICROFORGE_THREADS=<cores>``).
Reports each time and the loaded/idle ratio (target: at most 3). Writes
benchmarks/results/load_speed.json. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _record import write_record  # benchmarks/_record.py (the script's folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]
TARGET = [
    "--prop",
    "YS=1009",
    "--prop",
    "TS=1084",
    "--prop",
    "EF=15.7",
    "--prop",
    "RH=36.4",
    "--prop",
    "IT=28.5",
    "--prop",
    "DCS=1494",
    "--prop",
    "CFS=0.216",
]


def generate_seconds(samples: int, env: dict[str, str]) -> float:
    """Wall-clock seconds of one `microforge generate` run (the process's start included)."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "microforge",
                "generate",
                *TARGET,
                "-n",
                str(samples),
                "--out",
                f"{tmp}/out",
                "--quiet",
            ],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--busy", type=int, default=2, help="busy-loop processes beside the busy runs")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MICROFORGE_THREADS")}
    default = {**base, "MICROFORGE_THREADS": str(os.cpu_count() or 1)}
    generate_seconds(1, base)  # warm the file cache
    idle = min(generate_seconds(args.samples, base) for _ in range(args.repeats))
    idle_default = min(generate_seconds(args.samples, default) for _ in range(args.repeats))
    loads = {
        "python_busy_loops": [[sys.executable, "-c", "while True: pass"]] * args.busy,
        "torch_job": [
            [sys.executable, "-c", "import torch\nx = torch.randn(384, 384)\nwhile True: x = torch.tanh(x @ x)"]
        ],
    }
    record = {
        "benchmark": "load_speed",
        "samples": args.samples,
        "busy_processes": args.busy,
        "target_ratio": 3.0,
        "idle_s": {"chosen_threads": round(idle, 2), "one_thread_per_core": round(idle_default, 2)},
    }
    for name, commands in loads.items():
        procs = [subprocess.Popen(c) for c in commands]
        try:
            time.sleep(2.0)
            busy = min(generate_seconds(args.samples, base) for _ in range(args.repeats))
            busy_default = min(generate_seconds(args.samples, default) for _ in range(args.repeats))
        finally:
            for p in procs:
                p.kill()
        record[name] = {
            "chosen_threads": {"loaded_s": round(busy, 2), "ratio": round(busy / idle, 2)},
            "one_thread_per_core": {"loaded_s": round(busy_default, 2), "ratio": round(busy_default / idle_default, 2)},
        }
    write_record(record, REPO / "benchmarks" / "results" / "load_speed.json")


if __name__ == "__main__":
    main()
