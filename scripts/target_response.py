"""How strongly a TiM3 model's stage-1 maps follow the target, against the sampling noise.

    python scripts/target_response.py [--model bundled:ti-sem-tiny] [--n 8] [--seeds 0 1] [--guidance 4]
        [--data data/ti-synth] [--out benchmarks/results/target_response.json]

For the four morphology centroids of the default benchmark (equiaxed, bimodal, basketweave,
lamellar) it samples ``n`` maps per target and seed, every target with the same noise (one call
per target, same seed), and measures the primary-alpha fraction, the mean primary-alpha chord
(intercept, px) and the mean secondary-alpha lath width (px). Because the noise is shared, the
variance of the primary-alpha fraction splits into a target part, a noise (sample) part and the
rest, as in a two-way analysis of variance without replication: the target's share says how
much of what one sees is the target's doing. With ``--data`` the same numbers are given for the
true maps of the benchmark's specimens of each morphology, resized as the model sees them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from microforge.characterize.lamellae import lamella_stats
from microforge.characterize.statistics import chord_lengths
from microforge.data.phase_map import PRIMARY_ALPHA, SECONDARY_ALPHA, phase_fractions
from microforge.pipelines.registry import resolve_model
from microforge.pipelines.tim3 import TiM3Pipeline

# Centroids of the default benchmark's specimens of each morphology (YS, TS, EF, RH, IT, DCS, CFS),
# inside the training hull; tests/test_bundled_model.py imports them from here.
TARGETS = {
    "equiaxed": [888.0, 989.0, 20.0, 32.4, 28.7, 1414.0, 0.251],
    "bimodal": [1009.0, 1084.0, 15.7, 36.4, 28.5, 1494.0, 0.216],
    "basketweave": [1176.0, 1229.0, 8.7, 43.0, 20.7, 1604.0, 0.147],
    "lamellar": [933.0, 975.0, 11.2, 32.2, 50.7, 1357.0, 0.195],
}


def map_measures(phase_map: np.ndarray) -> tuple[float, float, float]:
    """Primary-alpha fraction, mean primary-alpha chord (px; NaN without one) and secondary-alpha
    lath width (px; NaN without laths) of one ``(H, W)`` map."""
    chords = chord_lengths(phase_map == PRIMARY_ALPHA)
    width = lamella_stats(phase_map == SECONDARY_ALPHA).width_px
    return (
        float(phase_fractions(phase_map)[PRIMARY_ALPHA]),
        float(chords.mean()) if chords.size else np.nan,
        float(width),
    )


def variance_shares(values: np.ndarray) -> dict[str, float]:
    """Two-way split of ``values`` ``(targets, samples)`` (sample j shares its noise across targets):
    the shares of the total sum of squares due to the target (rows), the noise (columns) and the rest."""
    grand = values.mean()
    total = ((values - grand) ** 2).sum()
    target = values.shape[1] * ((values.mean(1) - grand) ** 2).sum()
    noise = values.shape[0] * ((values.mean(0) - grand) ** 2).sum()
    return {"target": float(target / total), "noise": float(noise / total), "rest": float(1 - (target + noise) / total)}


def measure_model(pipe: TiM3Pipeline, n: int, seeds: list[int], guidance: float | None) -> dict:
    """Per target: mean measures over ``n`` samples x ``seeds``; and the variance shares per seed."""
    measures = {name: [] for name in TARGETS}
    for seed in seeds:
        for name, target in TARGETS.items():
            out = pipe(np.array([target] * n), seed=seed, guidance_scale=guidance, batch_size=n)
            measures[name].append([map_measures(m) for m in out.maps])
    arr = {name: np.array(v) for name, v in measures.items()}  # (seeds, n, 3)
    result = {
        name: {
            "primary_alpha": round(float(a[..., 0].mean()), 3),
            "primary_alpha_chord_px": round(float(np.nanmean(a[..., 1])), 2),
            "lath_width_px": round(float(np.nanmean(a[..., 2])), 2),
        }
        for name, a in arr.items()
    }
    shares = {
        str(seed): {
            k: round(v, 3) for k, v in variance_shares(np.stack([arr[name][s, :, 0] for name in TARGETS])).items()
        }
        for s, seed in enumerate(seeds)
    }
    return {"targets": result, "primary_alpha_variance_shares": shares}


def measure_truth(data_root: Path, resolution: int) -> dict:
    """The same measures on the true maps of each morphology's specimens, at ``resolution`` px."""
    import torch

    from microforge.data.dataset import nearest_maps
    from microforge.data.images import read_grey
    from microforge.data.manifest import read_dataset

    data = read_dataset(data_root)
    table = data.table[data.table["modality"] == "SEM"]
    out = {}
    for name in TARGETS:
        rows = table[table["morphology"] == name]
        values = []
        for mask in rows["mask"]:
            m = torch.from_numpy(read_grey(data.root / mask).astype(np.int64))[None]
            values.append(map_measures(nearest_maps(m, resolution)[0].numpy().astype(np.uint8)))
        a = np.array(values)
        out[name] = {
            "primary_alpha": round(float(a[:, 0].mean()), 3),
            "primary_alpha_chord_px": round(float(np.nanmean(a[:, 1])), 2),
            "lath_width_px": round(float(np.nanmean(a[:, 2])), 2),
            "tiles": len(a),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="bundled:ti-sem-tiny")
    ap.add_argument("--n", type=int, default=8, help="samples per target and seed")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default: the model's)")
    ap.add_argument("--data", type=Path, default=None, help="benchmark folder: also measure the true maps")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here as well")
    args = ap.parse_args()
    pipe = TiM3Pipeline.from_pretrained(resolve_model(args.model))
    record = {
        "model": args.model,
        "n": args.n,
        "seeds": args.seeds,
        "guidance": pipe.cfg.guidance_scale if args.guidance is None else args.guidance,
        "steps": pipe.cfg.sampling_steps,  # DDIM steps: the model's own
        **measure_model(pipe, args.n, args.seeds, args.guidance),
    }
    if args.data is not None:
        record["truth"] = measure_truth(args.data, pipe.cfg.resolution)
    text = json.dumps(record, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
