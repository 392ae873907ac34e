"""A control for the detail refiner's reading (issue 21): white Gaussian noise added to blurred
reconstructions, scored with ``fingerprint train``'s reconstruction measure on the same held-out
tiles. The noise draws no laths, so whatever it buys in the segmenter's primary-alpha reading is
what noise alone buys.

    python benchmarks/noise_control_reconstruction.py DATA MODEL [--stds 0 0.064 0.128] [--out JSON]

Rows: the 8 x 8 box low-pass of each tile, and MODEL's decoded fingerprint (a fingerprint model
folder), each with noise of each std (0.128 is the refiners' residual std on these tiles) added
and clipped to [0, 1]. Writes benchmarks/results/noise_control_reconstruction.json unless --out
says otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from _record import write_record
from torch import nn

from microforge.data.dataset import load_split
from microforge.fingerprint.vae import FingerprintTrainConfig, load_fingerprint_model, reconstruction_quality
from microforge.seeding import seeded_generator


class NoisyReconstruction(nn.Module):
    """``decode(encode(x))``: the ``lowpass`` x ``lowpass`` box low-pass of ``x`` (``vae`` None) or
    ``vae``'s reconstruction, plus white noise of ``std`` (seeded), clipped to [0, 1]; ``(N, 1, R, R)``."""

    def __init__(self, vae: nn.Module | None, std: float, lowpass: int = 8) -> None:
        super().__init__()
        self.vae, self.std, self.lowpass, self.gen = vae, std, lowpass, seeded_generator(0, 3)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return (x, None) if self.vae is None else self.vae.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        f = self.lowpass
        blurred = (
            F.interpolate(F.avg_pool2d(z, f), scale_factor=f, mode="bilinear", align_corners=False)
            if self.vae is None
            else self.vae.decode(z)
        )
        return (blurred + self.std * torch.randn(blurred.shape, generator=self.gen)).clamp(0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data")
    ap.add_argument("model")
    ap.add_argument("--stds", type=float, nargs="+", default=[0.0, 0.064, 0.128])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "noise_control_reconstruction.json")
    args = ap.parse_args()
    cfg = FingerprintTrainConfig()
    test = load_split(args.data, "test", cfg.split_fractions, cfg.seed, cfg.modality, cfg.model.resolution)
    tile_px = int(test.dataset[0]["image"].shape[-1])
    vae = load_fingerprint_model(args.model)
    rows = {
        f"{name}, noise std {std:g}": reconstruction_quality(NoisyReconstruction(m, std), test.images, tile_px, "SEM")
        for name, m in (("8x8 low-pass", None), ("decoded fingerprint", vae))
        for std in args.stds
    }
    write_record(
        {
            "benchmark": "white noise on blurred reconstructions, a control for the detail refiner (issue 21)",
            "command": f"python benchmarks/noise_control_reconstruction.py {args.data} {args.model} --stds "
            + " ".join(f"{s:g}" for s in args.stds),
            "split": "test",
            "tiles": len(test.images),
            "rows": rows,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
