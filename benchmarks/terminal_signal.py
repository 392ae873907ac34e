"""How much of a map's layout survives the last noise level a TiM3 map stage trains at.

    python benchmarks/terminal_signal.py MODEL DATA [--n 256] [--scales 1 0.5 0.45 0.4 0.3]
        [--windows 1 4 8 16] [--out JSON]

A diffusion stage is trained on z_T = sqrt(abar_T) z_0 + sqrt(1 - abar_T) e at its last step T
and sampled from pure noise. Where z_T still holds the layout of z_0, the stage never learns to
draw it from nothing (the mismatch Lin et al. 2024 find in latent diffusion's schedules), and the
more the representation repeats its layout over neighbouring latent pixels, the more survives:
a w x w mean of z_T averages the noise down by w but keeps the layout. For ``--n`` training
tiles' one-hot maps this reads the Pearson correlation of the w x w means of z_T with those of
z_0 (each channel centred, pooled over channels and windows; one noise draw), under MODEL's own
schedule (abar_T) for

- MODEL's map latent (its map autoencoder's posterior means at its recorded scaling factor, or
  its space-to-depth codec at its factor), and
- the lossless space-to-depth codec at the latent's grid (factor = the model's map downsampling),
  scaled to each of ``--scales`` (the std of the scaled latents: ``vae_map.signal_scale``).

MODEL: a TiM3 folder or bundled:NAME. Writes benchmarks/results/terminal_signal_<model name>.json
unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _held_out import model_split
from _record import write_record

from microforge.data.dataset import nearest_maps, onehot_map
from microforge.errors import MicroforgeError
from microforge.models.tim3 import downsampling
from microforge.pipelines.registry import resolve_model
from microforge.pipelines.tim3 import TiM3Pipeline
from microforge.training.tim3_trainer import make_scheduler


def window_correlation(z0: torch.Tensor, zt: torch.Tensor, window: int) -> float:
    """Pearson correlation of the ``window`` x ``window`` means of ``zt`` with those of ``z0``
    (both ``(N, C, S, S)``, each channel centred over the batch), pooled over channels and windows."""
    z0 = z0 - z0.mean((0, 2, 3), keepdim=True)
    zt = zt - zt.mean((0, 2, 3), keepdim=True)
    a, b = (F.avg_pool2d(z, window) if window > 1 else z for z in (z0, zt))
    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--n", type=int, default=256, help="training tiles read")
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.5, 0.45, 0.4, 0.3])
    ap.add_argument("--windows", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    try:
        pipe = TiM3Pipeline.from_pretrained(resolve_model(args.model))
        train = model_split(pipe, args.data, "train")
    except MicroforgeError as exc:
        sys.exit(f"Error: {exc}")
    idx = np.sort(np.random.default_rng(args.seed).choice(len(train), min(args.n, len(train)), replace=False))
    maps = nearest_maps(torch.stack([train[int(i)]["mask"] for i in idx]), pipe.cfg.resolution)
    x = onehot_map(maps) * 2.0 - 1.0  # the map stage's input, (N, 3, R, R) in {-1, 1}
    abar = float(make_scheduler(pipe.cfg, 1).alphas_cumprod[-1])  # the map stage's schedule
    gen = torch.Generator().manual_seed(args.seed)

    def read(z0: torch.Tensor) -> dict[str, float]:
        zt = abar**0.5 * z0 + (1.0 - abar) ** 0.5 * torch.randn(z0.shape, generator=gen)
        return {str(w): round(window_correlation(z0, zt, w), 3) for w in args.windows}

    with torch.no_grad():
        own = pipe.modules["vae_map"].encode(x).latent_dist.mean * pipe.scaling["vae_map"]
    factor = downsampling(pipe.cfg.vae_map)
    lossless = F.pixel_unshuffle(x, factor)
    lossless = lossless / lossless.std()
    rows = {"model's map latent": {"std": round(float(own.std()), 3), "correlation": read(own)}}
    for s in args.scales:
        rows[f"space_to_depth f{factor}, signal_scale {s:g}"] = {"std": s, "correlation": read(lossless * s)}
    record = {
        "benchmark": "terminal_signal",
        "command": f"python benchmarks/terminal_signal.py {args.model} {args.data} --n {args.n} "
        f"--scales {' '.join(f'{s:g}' for s in args.scales)} --windows {' '.join(map(str, args.windows))}",
        "model": args.model,
        "n": len(idx),
        "alphas_cumprod_last": round(abar, 5),
        "what": "Pearson correlation of the w x w means of z_T (the last training step) with those of z_0, by w",
        "rows": rows,
    }
    for name, row in rows.items():
        print(f"{name:40s} std {row['std']:.3f}  " + "  ".join(f"w{w} {c:.3f}" for w, c in row["correlation"].items()))
    name = Path(str(resolve_model(args.model))).name
    write_record(record, args.out or Path(__file__).parent / "results" / f"terminal_signal_{name}.json")


if __name__ == "__main__":
    main()
