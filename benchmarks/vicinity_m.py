"""Measure the hard vicinity of CcGAN and CCDM on a dataset, for the multiplier m of kappa.

    python benchmarks/vicinity_m.py DATA [--draws 2000]

On the training split (after the cap of 64 images per property vector), reports sigma (CcGAN's
rule over all training labels) and, for m = 1, 2, 3: kappa, the share of first draws whose hard
vicinity holds a real image (the rest are redrawn), and the mean number of distinct property
vectors in a vicinity. TiM3's Table 3 gives sigma 0.0228 and kappa 0.1708 (means over the
properties, labels in [0, 1]); microforge's labels are in [-1, 1], so its values are halved here
for the comparison. Writes benchmarks/results/vicinity_m.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _record import write_record  # benchmarks/_record.py (the script's folder is on sys.path)

from microforge.models.vicinity import cap_per_vector, hard_vicinity, kernel_sigma, vicinity_kappa
from microforge.data.dataset import load_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--draws", type=int, default=2000)
    args = parser.parse_args()
    split = load_split(args.data, "train", (0.9, 0.05, 0.05), 0, "SEM", 16)
    raw, ds = split.raw, split.dataset
    labels = ds.properties.normalise(raw)
    labels = labels[cap_per_vector(labels, 64, 0)]
    unique = np.unique(labels, axis=0)
    sigma = kernel_sigma(labels)
    rng = np.random.default_rng(0)
    rows = []
    for m in (1.0, 2.0, 3.0):
        kappa = vicinity_kappa(labels, m)
        hits, vectors = 0, []
        for _ in range(args.draws):
            near = hard_vicinity(
                labels, unique[rng.integers(len(unique))] + sigma * rng.standard_normal(labels.shape[1]), kappa
            )
            hits += len(near) > 0
            vectors.append(len(np.unique(labels[near], axis=0)) if len(near) else 0)
        rows.append(
            {
                "m": m,
                "kappa_mean_0_1": round(float(kappa.mean()) / 2, 4),
                "first_draw_nonempty": round(hits / args.draws, 3),
                "mean_vectors_in_vicinity": round(float(np.mean(vectors)), 2),
            }
        )
    write_record(
        {
            "command": f"python benchmarks/vicinity_m.py {args.data}",
            "train_images": len(labels),
            "unique_vectors": len(unique),
            "sigma_mean_0_1": round(float(sigma.mean()) / 2, 4),
            "paper_sigma_mean": 0.0228,
            "paper_kappa_mean": 0.1708,
            "rows": rows,
        },
        Path(__file__).parent / "results" / "vicinity_m.json",
    )


if __name__ == "__main__":
    main()
