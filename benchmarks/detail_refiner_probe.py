"""Can a stochastic decoder bring the segmenter's primary-alpha reading of a blurred reconstruction
back within 0.05 of the input's (issue 21)? Trains the detail refiner
(``microforge.models.detail_refiner``) to draw held-out tiles' detail from their f x f box
low-pass (the ideal stand-in for the fingerprint VAE's reconstruction, which holds about what the
8 x 8 low-pass holds: benchmarks/results/lowpass_reconstruction.json), then scores the refined
low-passes with ``fingerprint train``'s reconstruction measure.

    python benchmarks/detail_refiner_probe.py DATA RUN [--lowpass 8] [--steps 4000] [--channels 32 64 128]
        [--sample STEPS:ETA ...] [--out JSON] [--figure PNG]

RUN holds the resumable training (checkpoints, log.jsonl); rerun the same command to resume. RUN
must be new, empty or an earlier run of the probe.
Rows: the low-pass itself; the low-pass plus white noise of the refiner's residual std (the
control: what broken-up texture alone buys); the refiner's draw at its config's 25 deterministic
DDIM steps; and one row for each ``--sample STEPS:ETA`` (DDIM steps and stochasticity) of the
same trained refiner.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from _record import write_record
from noise_control_reconstruction import NoisyReconstruction
from torch import nn

from microforge.data.dataset import load_split
from microforge.fingerprint.vae import FingerprintTrainConfig, reconstruction_quality
from microforge.models.detail_refiner import DetailRefiner, RefinerConfig
from microforge.seeding import seeded_generator
from microforge.training.loop import CHECKPOINT_DIR
from microforge.training.refiner_trainer import train_refiner


def low_pass(x: torch.Tensor, f: int) -> torch.Tensor:
    """``(N, 1, R, R)`` box-averaged over ``f`` x ``f`` blocks and resized back bilinearly."""
    return F.interpolate(F.avg_pool2d(x, f), scale_factor=f, mode="bilinear", align_corners=False)


class RefinedLowPass(nn.Module):
    """``encode``: the ``f`` x ``f`` low-pass; ``decode``: the refiner's draw of its detail at
    ``steps`` DDIM steps and ``eta`` (seeded), or the low-pass itself without a refiner."""

    def __init__(
        self, refiner: DetailRefiner | None, f: int, seed: int = 0, steps: int | None = None, eta: float = 0.0
    ) -> None:
        super().__init__()
        self.refiner, self.f, self.gen = refiner, f, seeded_generator(seed, 1)
        self.steps, self.eta = steps, eta

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return low_pass(x, self.f), None

    def decode(self, c: torch.Tensor) -> torch.Tensor:
        return c if self.refiner is None else self.refiner.refine(c, self.gen, self.steps, eta=self.eta)


def sampling(text: str) -> tuple[int, float]:
    """``"STEPS:ETA"`` -> (DDIM steps, eta), for ``--sample``."""
    try:
        steps, eta = text.split(":")
        return int(steps), float(eta)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sample takes STEPS:ETA, such as 50:1, got {text!r}") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data")
    ap.add_argument("run", type=Path)
    ap.add_argument("--lowpass", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--channels", type=int, nargs="+", default=list(RefinerConfig.channels), help="UNet level widths")
    ap.add_argument("--sample", type=sampling, nargs="*", default=[], help="extra rows: STEPS:ETA")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "detail_refiner_probe.json")
    ap.add_argument("--figure", type=Path, default=None)
    args = ap.parse_args()
    fp = FingerprintTrainConfig()  # the fingerprint's split, modality and resolution
    train = load_split(args.data, "train", fp.split_fractions, fp.seed, fp.modality, fp.model.resolution)
    test = load_split(args.data, "test", fp.split_fractions, fp.seed, fp.modality, fp.model.resolution)
    cfg = RefinerConfig(resolution=fp.model.resolution, channels=tuple(args.channels))
    images = train.images
    earlier = (args.run / "log.jsonl").is_file() or (args.run / CHECKPOINT_DIR).is_dir()
    if args.run.exists() and any(args.run.iterdir()) and not earlier:
        raise SystemExit(f"Error: {args.run}: is neither empty nor an earlier run of this probe; choose a new folder")
    args.run.mkdir(parents=True, exist_ok=True)
    pairs = torch.cat([images, low_pass(images, args.lowpass)], dim=1)  # (N, 2, R, R): tile, its low-pass
    refiner, seconds = train_refiner(pairs, cfg, args.run, args.steps, args.batch, args.lr, 0)
    std = float(refiner.residual_std)
    tile_px = int(test.dataset[0]["image"].shape[-1])
    start = time.perf_counter()
    rows = {
        "low_pass": reconstruction_quality(RefinedLowPass(None, args.lowpass), test.images, tile_px, "SEM"),
        "low_pass_noise": reconstruction_quality(  # the white-noise control
            NoisyReconstruction(None, std, args.lowpass), test.images, tile_px, "SEM"
        ),
        "refined": reconstruction_quality(RefinedLowPass(refiner, args.lowpass), test.images, tile_px, "SEM"),
    }
    for steps, eta in args.sample:
        row = RefinedLowPass(refiner, args.lowpass, steps=steps, eta=eta)
        rows[f"refined_steps{steps}_eta{eta:g}"] = reconstruction_quality(row, test.images, tile_px, "SEM")
    score_s = time.perf_counter() - start
    if args.figure:
        x = test.images[:6]
        c = low_pass(x, args.lowpass)
        y = refiner.refine(c, seeded_generator(0, 2))
        fig, axes = plt.subplots(3, 6, figsize=(12, 6.3))
        for row, (name, imgs) in enumerate(
            [("tile", x), (f"{args.lowpass}x{args.lowpass} low-pass", c), ("refined", y)]
        ):
            for col in range(6):
                axes[row, col].imshow(imgs[col, 0], cmap="gray", vmin=0, vmax=1)
                axes[row, col].set_xticks([])
                axes[row, col].set_yticks([])
            axes[row, 0].set_ylabel(name)
        fig.tight_layout()
        fig.savefig(args.figure, dpi=90)
    write_record(
        {
            "benchmark": "a diffusion refiner drawing held-out tiles' detail from their low-pass (issue 21)",
            "command": f"python benchmarks/detail_refiner_probe.py {args.data} RUN --lowpass {args.lowpass} "
            f"--steps {args.steps} --batch {args.batch} --lr {args.lr} --channels {' '.join(map(str, args.channels))}"
            + "".join(f" --sample {n}:{e:g}" for n, e in args.sample),
            "split": "test",
            "tiles": len(test.images),
            "refiner": cfg.to_dict(),
            "parameters": sum(p.numel() for p in refiner.unet.parameters()),
            "residual_std": round(std, 5),
            "train_tiles": len(images),
            **seconds.record("train_"),
            "score_seconds": round(score_s, 1),
            "rows": rows,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
