"""Benchmark: what a TiM3 model's optional third stage (a detail refiner in ``refiner/``) costs
against the sampling budget (at most 0.5 s an image at batch 16 on 2 CPU cores).

    python benchmarks/refiner_sampling_speed.py MODEL [--n 64] [--batch-size 16] [--out JSON]

Times ``pipe(targets, batch_size=16)`` on ``--n`` copies of one in-hull target (the README's),
with the folder's refiner and with it removed, after one warm-up batch each; seconds per image,
the median of three calls. MODEL: a TiM3 folder with ``refiner/``. Writes
benchmarks/results/refiner_sampling_speed.json unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
from _record import write_record  # benchmarks/_record.py (the script's folder is on sys.path)
from tim3_speed import timed

from microforge.pipelines.registry import resolve_model
from microforge.pipelines.tim3 import TiM3Pipeline

TARGET = [1009, 1084, 15.7, 36.4, 28.5, 1494, 0.216]  # the README's example target (YS ... CFS)


def seconds_per_image(pipe: TiM3Pipeline, targets: np.ndarray, batch_size: int, repeats: int = 3) -> float:
    """The median over ``repeats`` calls of a call's seconds divided by its images, after a warm-up batch."""
    pipe(targets[:batch_size], batch_size=batch_size)
    device = str(next(pipe.modules["unet_stage2"].parameters()).device.type)
    times = [timed(lambda: pipe(targets, batch_size=batch_size), device) / len(targets) for _ in range(repeats)]
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--n", type=int, default=64, help="images per timed call")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    pipe = TiM3Pipeline.from_pretrained(resolve_model(args.model))
    if "refiner" not in pipe.modules:
        raise SystemExit(f"Error: {args.model}: has no refiner/ to time")
    targets = np.array([TARGET] * args.n, dtype=np.float64)
    with_refiner = seconds_per_image(pipe, targets, args.batch_size)
    refiner = pipe.modules.pop("refiner")
    without = seconds_per_image(pipe, targets, args.batch_size)
    write_record(
        {
            "benchmark": "sampling seconds per image with and without a TiM3 model's detail refiner",
            "command": f"python benchmarks/refiner_sampling_speed.py {args.model} --n {args.n} "
            f"--batch-size {args.batch_size}",
            "refiner_steps": refiner.cfg.sample_steps,
            "seconds_per_image": {"two_stages": round(without, 3), "with_refiner": round(with_refiner, 3)},
            "budget_seconds_per_image": 0.5,
        },
        args.out or Path(__file__).parent / "results" / "refiner_sampling_speed.json",
    )


if __name__ == "__main__":
    main()
