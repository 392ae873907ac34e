"""How much white noise a TiM3 model's decoded micrographs lack against the real tiles.

    python benchmarks/observation_noise.py MODEL DATA [--n 500] [--n-samples 160] [--out JSON]
        [--model-out DIR]

Immerkær's noise estimator (``microforge.characterize.noise.noise_std``) is taken on ``--n``
training tiles at the model's resolution, on their reconstructions by the model's micrograph
autoencoder (encoded to the posterior mode, decoded), and on ``--n-samples`` samples drawn at the
first tiles' properties; each row gives the median over its images. The decoder averages away
what its latent cannot predict, the SEM shot noise first, so the std it lacks is
sqrt(real^2 - reconstructed^2) (0 where the reconstructions are as noisy as the tiles: a lossless
codec). ``--model-out DIR`` writes a copy of MODEL (weights as stored) whose config's
``observation_noise_std`` is that std, to be scored with ``microforge evaluate --model DIR``.
MODEL: a TiM3 folder or bundled:NAME. Writes benchmarks/results/observation_noise_<model name>.json
unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from _held_out import model_split, reconstructed_images, sharpness
from _record import write_record

from microforge.characterize.noise import noise_std
from microforge.errors import MicroforgeError
from microforge.io import resize_batch
from microforge.pipelines.registry import resolve_model
from microforge.pipelines.tim3 import TiM3Pipeline


def median_noise(images: np.ndarray) -> float:
    """The median over ``images`` ``(N, H, W)`` of each image's noise std, in grey levels of [0, 1]."""
    return float(np.median([noise_std(image) for image in images]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--n", type=int, default=500, help="training tiles measured")
    ap.add_argument("--n-samples", type=int, default=160, help="samples measured, at the first tiles' properties")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model-out", type=Path, help="write a copy of MODEL that adds the missing noise")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    try:
        dest = args.model_out
        if dest and dest.exists() and (not dest.is_dir() or any(dest.iterdir())):  # a file, or a folder in use
            raise MicroforgeError(f"{dest}: exists and is not empty; choose a new folder")
        pipe = TiM3Pipeline.from_pretrained(resolve_model(args.model))
        train = model_split(pipe, args.data, "train")
    except MicroforgeError as exc:
        sys.exit(f"Error: {exc}")
    res = pipe.cfg.resolution
    idx = np.sort(np.random.default_rng(args.seed).choice(len(train), min(args.n, len(train)), replace=False))
    items = [train[int(i)] for i in idx]
    real = resize_batch(np.stack([it["image"][0].numpy() for it in items]), res)[:, 0].numpy()
    raw = np.stack([it["props_raw"].numpy() for it in items[: args.n_samples]])
    # a space-to-depth codec is lossless: its reconstructions are the tiles
    lossless = pipe.cfg.vae_image.kind == "space_to_depth"
    reconstructed = None if lossless else reconstructed_images(pipe, real, args.batch_size)
    samples = np.concatenate([g.images for g in pipe.iter_batches(raw, batch_size=args.batch_size, seed=args.seed)])
    sigma = {"real": median_noise(real), "samples": median_noise(samples)}
    if reconstructed is not None:
        sigma["reconstructed"] = median_noise(reconstructed)
    lacking = float(np.sqrt(max(sigma["real"] ** 2 - sigma.get("reconstructed", sigma["real"]) ** 2, 0.0)))
    record = {
        "benchmark": "observation_noise",
        "command": f"python benchmarks/observation_noise.py {args.model} {args.data} --n {args.n} "
        f"--n-samples {args.n_samples}" + (f" --model-out {args.model_out}" if args.model_out else ""),
        "model": args.model,
        "model_observation_noise_std": pipe.cfg.observation_noise_std,
        "n": len(real),
        "n_samples": len(samples),
        "resolution": res,
        "noise_std": {k: round(v, 4) for k, v in sigma.items()},
        "sharpness": {
            "real": round(sharpness(real), 2),
            "samples": round(sharpness(samples), 2),
            **({"reconstructed": round(sharpness(reconstructed), 2)} if reconstructed is not None else {}),
        },
        "lacking_noise_std": round(lacking, 4),
    }
    if args.model_out:
        pipe.cfg = dataclasses.replace(pipe.cfg, observation_noise_std=round(lacking, 4))
        pipe.save_pretrained(args.model_out)
        record["model_out"] = str(args.model_out)
    name = Path(str(resolve_model(args.model))).name
    write_record(record, args.out or Path(__file__).parent / "results" / f"observation_noise_{name}.json")


if __name__ == "__main__":
    main()
