"""How much realism a TiM3 model's micrograph autoencoder loses on its own.

Two disjoint seeded sets of real tiles, A and B, from a dataset folder (the model's modality and
resolution). FID, precision and recall of A against B is the floor at this sample size; the same
with A replaced by the autoencoder's reconstructions of A (posterior mean, decoded) says what the
autoencoder alone costs, before any diffusion. Also the pixel MSE of the reconstructions (images
in [0, 1]). For a two-stage model, the map autoencoder on the same tiles' true maps: pixel
accuracy, per-class IoU and the phase fractions before and after (a class the autoencoder loses,
such as thin beta films, is a ceiling on what stage 1 can draw). JSON in
benchmarks/results/autoencoder_fidelity.json.

    python benchmarks/autoencoder_fidelity.py --data data/ti-synth --models bundled:ti-sem-tiny runs/bundled
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from _held_out import reconstructed_images
from _record import write_record
from microforge.data.dataset import MicrographDataset, nearest_maps, onehot_map
from microforge.io import resize_batch
from microforge.data.manifest import read_dataset
from microforge.data.phase_map import CLASS_NAMES
from microforge.evaluate.distribution import frechet_distance, precision_recall
from microforge.models.inception import InceptionFeatures, extract
from microforge.pipelines.registry import resolve_model
from microforge.pipelines.tim3 import TiM3Pipeline
from microforge.seeding import seed_from

REPO = Path(__file__).resolve().parents[1]


def real_tiles(data: str, modality: str, resolution: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``2 n`` distinct seeded tiles ``(2n, R, R)`` in [0, 1] of one modality, resized to ``resolution``,
    and their phase maps ``(2n, R, R)`` (nearest-neighbour resized; -1 where a tile has none)."""
    ds = MicrographDataset(read_dataset(data), split=None, modality=modality, augment=False)
    pick = np.random.default_rng(seed_from(seed, 7)).choice(len(ds), size=2 * n, replace=False)
    items = [ds[int(i)] for i in pick]
    images = torch.stack([it["image"] for it in items])
    maps = nearest_maps(torch.stack([it["mask"] for it in items]), resolution)
    return resize_batch(images, resolution)[:, 0].numpy(), maps.numpy()


@torch.no_grad()
def map_fidelity(pipe: TiM3Pipeline, maps: np.ndarray, batch: int = 64) -> dict:
    """The map autoencoder on true maps ``(N, R, R)`` (classes 0..2): pixel accuracy, IoU per class,
    and the mean phase fractions of the true and the reconstructed maps (posterior mean, argmax)."""
    vae = pipe.modules["vae_map"]
    true = torch.from_numpy(maps)
    rec = torch.cat(
        [
            vae.decode(vae.encode(onehot_map(true[i : i + batch]) * 2.0 - 1.0).latent_dist.mean).sample.argmax(1)
            for i in range(0, len(true), batch)
        ]
    )
    return {
        "pixel_accuracy": float((rec == true).float().mean()),
        **{
            f"iou_{name}": float(((rec == c) & (true == c)).sum() / ((rec == c) | (true == c)).sum().clamp(min=1))
            for c, name in enumerate(CLASS_NAMES)
        },
        "fractions_true": [round(float((true == c).float().mean()), 4) for c in range(3)],
        "fractions_reconstructed": [round(float((rec == c).float().mean()), 4) for c in range(3)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/ti-synth")
    ap.add_argument("--models", nargs="+", default=["bundled:ti-sem-tiny"])
    ap.add_argument("-n", type=int, default=250, help="tiles per set (A and B)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    inception = InceptionFeatures()
    results, cache = {}, {}
    for spec in tqdm(args.models, desc="models"):
        pipe = TiM3Pipeline.from_pretrained(resolve_model(spec))
        key = (pipe.cfg.modality, pipe.cfg.resolution)
        if key not in cache:  # the real sets and their features, once per modality and size
            tiles, maps = real_tiles(args.data, *key, args.n, args.seed)
            cache[key] = (tiles, maps, extract(inception, tiles[: args.n]), extract(inception, tiles[args.n :]))
        tiles, maps, feats_a, feats_b = cache[key]
        rec = reconstructed_images(pipe, tiles[: args.n])
        feats_rec = extract(inception, rec)
        vae = pipe.cfg.vae_image
        results[spec] = {
            "latent": [vae.latent_channels, pipe.cfg.image_latent_size, pipe.cfg.image_latent_size],
            "gradient_weight": vae.gradient_weight,
            "steps": vae.steps,
            "pixel_mse": float(np.mean((rec - tiles[: args.n]) ** 2)),
            "fid_reconstructed_vs_real": frechet_distance(feats_b, feats_rec),
            "precision_recall_reconstructed": precision_recall(feats_b, feats_rec, k=3),
            "fid_real_vs_real": frechet_distance(feats_b, feats_a),
            "precision_recall_real": precision_recall(feats_b, feats_a, k=3),
        }
        if "vae_map" in pipe.modules and (maps[: args.n] >= 0).all():
            results[spec]["map_autoencoder"] = {
                "latent": [pipe.cfg.vae_map.latent_channels, pipe.cfg.map_latent_size, pipe.cfg.map_latent_size],
                "steps": pipe.cfg.vae_map.steps,
                **map_fidelity(pipe, maps[: args.n]),
            }
        print(spec, results[spec], flush=True)
    record = {
        "benchmark": "autoencoder_fidelity",
        "data": args.data,
        "n_per_set": args.n,
        "command": " ".join(sys.argv),
        "results": results,
    }
    write_record(record, REPO / "benchmarks" / "results" / "autoencoder_fidelity.json")


if __name__ == "__main__":
    main()
