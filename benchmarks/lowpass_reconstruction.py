"""How sharp must a fingerprint VAE's reconstruction be for the segmenter to read its primary-alpha
fraction within 0.05 of the input's (issue 21)? The same held-out tiles and the same measure as
``fingerprint train``'s ``reconstruction.json``, taken on ideal "reconstructions" that keep all
but the finest detail: each tile box-averaged over ``f`` x ``f`` px blocks and resized back
bilinearly, for f = 1 (the tile itself), 2, 4 and 8.

    python benchmarks/lowpass_reconstruction.py DATA [--factors 2 4 8] [--out JSON]

A low-pass of factor f keeps ``(R / f)^2`` numbers of a tile of R px: at f = 8 and 128 px, 256,
as many as the fingerprint. Writes benchmarks/results/lowpass_reconstruction.json unless --out
says otherwise.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _record import write_record
from torch import nn

from microforge.data.dataset import load_split
from microforge.fingerprint.vae import FingerprintTrainConfig, reconstruction_quality


class LowPass(nn.Module):
    """An ideal reconstruction of factor ``f``: ``encode`` box-averages ``(N, 1, R, R)`` over ``f`` x
    ``f`` blocks to ``(N, 1, R / f, R / f)``; ``decode`` resizes it back bilinearly (half-pixel
    centres). ``f = 1`` returns the tile unchanged."""

    def __init__(self, f: int) -> None:
        super().__init__()
        self.f = f

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return F.avg_pool2d(x, self.f), None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.f == 1 else F.interpolate(z, scale_factor=self.f, mode="bilinear", align_corners=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data")
    ap.add_argument("--factors", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lowpass_reconstruction.json")
    args = ap.parse_args()
    cfg = FingerprintTrainConfig()  # the fingerprint's split, modality and resolution
    test = load_split(args.data, "test", cfg.split_fractions, cfg.seed, cfg.modality, cfg.model.resolution)
    tile_px = int(test.dataset[0]["image"].shape[-1])
    start = time.perf_counter()
    rows = {
        str(f): {"numbers_kept": (cfg.model.resolution // f) ** 2}
        | reconstruction_quality(LowPass(f), test.images, tile_px, cfg.modality or "SEM")
        for f in [1, *args.factors]
    }
    record = {
        "benchmark": "segmenter's primary-alpha reading on low-passed held-out tiles (issue 21)",
        "command": f"python benchmarks/lowpass_reconstruction.py {args.data} --factors "
        + " ".join(map(str, args.factors)),
        "split": "test",
        "tiles": len(test.images),
        "resolution": cfg.model.resolution,
        "factors": rows,
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_record(record, args.out)


if __name__ == "__main__":
    main()
