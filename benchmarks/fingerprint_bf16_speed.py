"""Benchmark: the fingerprint VAE's training step in fp32 and under bf16 autocast (``autocast: bf16``).

    python benchmarks/fingerprint_bf16_speed.py data/ti-synth [--steps 100] [--out JSON]

The tiny config's model and batch (configs/fingerprint-tiny.yaml: 128 px SEM tiles of the
dataset's training split, batch 32), from the same seed in each mode: seconds per step (forward,
backward, Adam) over ``--steps`` steps after 5 warm-up steps, timed fp32, bf16, fp32 again (the
two fp32 runs bracket the bf16 one, so a drift in the machine's speed shows), and the mean loss of
the last 10 steps. Writes benchmarks/results/fingerprint_bf16_speed.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from _record import write_record  # benchmarks/_record.py (the script's folder is on sys.path)

import torch

from microforge.data.dataset import load_split
from microforge.fingerprint.vae import load_fingerprint_config, training_step
from microforge.models.fingerprint import FingerprintVAE

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "fingerprint-tiny.yaml"


def seconds_per_step(images: torch.Tensor, bf16: bool, steps: int) -> dict[str, float]:
    """One mode's seconds per training step (``fingerprint train``'s own step) and mean loss of its
    last 10 steps."""
    cfg = dataclasses.replace(load_fingerprint_config(CONFIG), autocast="bf16" if bf16 else None)
    torch.manual_seed(cfg.seed)
    model = FingerprintVAE(cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(5):
        training_step(model, opt, images, cfg, gen)
    t0 = time.perf_counter()
    losses = [training_step(model, opt, images, cfg, gen)["loss"] for _ in range(steps)]
    return {
        "seconds_per_step": round((time.perf_counter() - t0) / steps, 4),
        "loss_last_10": round(sum(losses[-10:]) / len(losses[-10:]), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="a dataset folder (its SEM training tiles are used)")
    ap.add_argument("--steps", type=int, default=100, help="timed steps per mode")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fingerprint_bf16_speed.json")
    args = ap.parse_args()
    cfg = load_fingerprint_config(CONFIG)
    images = load_split(args.data, "train", cfg.split_fractions, cfg.seed, cfg.modality, cfg.model.resolution).images
    results = {}
    for name, bf16 in (("fp32", False), ("bf16", True), ("fp32_again", False)):
        results[name] = seconds_per_step(images, bf16, args.steps)
        print(name, results[name], flush=True)
    fp32 = (results["fp32"]["seconds_per_step"] + results["fp32_again"]["seconds_per_step"]) / 2
    record = {
        "benchmark": "fingerprint_bf16_speed",
        "config": "configs/fingerprint-tiny.yaml",
        "steps_timed": args.steps,
        "results": results,
        "bf16_speedup": round(fp32 / results["bf16"]["seconds_per_step"], 3),
    }
    write_record(record, args.out)


if __name__ == "__main__":
    main()
