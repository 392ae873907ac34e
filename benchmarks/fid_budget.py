"""Where a two-stage TiM3 model's FID goes: the same held-out tiles scored four ways against one
reference set of training tiles.

    python benchmarks/fid_budget.py MODEL DATA [--n 160] [--n-reference 500] [--out JSON]

Rows, each n images against the reference (FID on Inception pool features, and the mean
absolute horizontal grey-level step in 0..255, a sharpness measure):

1. ``real``: the held-out (test-split) tiles themselves: the floor at this sample size;
2. ``autoencoder``: those tiles encoded and decoded by the model's micrograph autoencoder;
3. ``stage2_true_maps``: stage 2 drawing from the tiles' true phase maps and properties;
4. ``two_stage``: the full model sampling at the tiles' properties (stage-1 maps, then stage 2).

Rows 2-4 also give the S2 discrepancy (percent, per class) of their images against the real
held-out tiles of row 1, which share their targets and maps, both read by the evaluation's
classical segmenter (``microforge evaluate``'s microstructure comparison), so that a phase's
discrepancy can be traced to the stage that adds it. (Against the training reference even row 1
would differ, since the held-out specimens' morphologies are not the training set's mix.)

Each step down the list adds one stage's error. ``--stage2-guidance G`` draws rows 3 and 4 with
classifier-free guidance G in stage 2 (stage 1 keeps the model's); row 4 draws the same noise either way.
The property regressor (the model's own, or ``--regressor DIR``) reads every row at the tiles'
properties: its mAcc, R² and bias (mean signed error, in standard deviations of the targets) per
property, so that a bias the full model shows can be traced to the stage that adds it. MODEL: a
two-stage TiM3 folder or bundled:NAME. Writes benchmarks/results/fid_budget_<model name>.json
(``fid_budget_<model name>_stage2-guidance-G.json`` with that option) unless --out says otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _held_out import load_regressor, model_split, reconstructed_images, regressor_row, sharpness
from _record import write_record

from microforge.characterize.segmentation import lath_halfwidth_px, segment_classical
from microforge.characterize.statistics import discrepancy, two_point_correlation
from microforge.data.phase_map import CLASS_NAMES
from microforge.data.dataset import MicrographDataset
from microforge.evaluate.distribution import frechet_distance
from microforge.io import resize_batch
from microforge.models.inception import InceptionFeatures, extract
from microforge.models.property_regressor import PropertyRegressor
from microforge.pipelines.generate import pixel_size_at
from microforge.pipelines.registry import resolve_model
from microforge.pipelines.tim3 import TiM3Pipeline
from microforge.seeding import seeded_generator


def s2_curves(images: np.ndarray, modality: str, halfwidth: int) -> tuple[np.ndarray, np.ndarray]:
    """Radii ``(r_max + 1,)`` px and each class's mean S2 curve ``(3, r_max + 1)`` over ``images``
    ``(N, R, R)`` in [0, 1] (taken at 8-bit levels, as a report stores them), segmented by
    :func:`segment_classical` with opening radius ``halfwidth`` px; ``r_max = R // 4``, as
    :func:`describe`."""
    r_max = images.shape[-1] // 4
    curves = np.zeros((len(CLASS_NAMES), r_max + 1))
    for grey in np.round(np.clip(images, 0, 1) * 255) / 255:
        phases = segment_classical(grey, modality, halfwidth)
        for c in range(len(CLASS_NAMES)):
            r, curve = two_point_correlation(phases == c, r_max)
            curves[c] += curve
    return r, curves / len(images)


def score_rows(
    rows: dict[str, list[np.ndarray]],
    inception: InceptionFeatures,
    ref_features: np.ndarray,
    modality: str,
    halfwidth: int,
    reg: PropertyRegressor | None,
    raw: np.ndarray,
) -> dict[str, dict]:
    """Each row of images (a list of ``(B, R, R)`` batches in [0, 1]; empty rows are skipped) scored
    against the reference's Inception features ``ref_features``: its FID and sharpness; for every
    row but ``real``, its per-class S2 discrepancy (percent) against the ``real`` row's images,
    segmented with opening radius ``halfwidth`` px; and, with a regressor ``reg``, its reading of
    the row at the properties ``raw`` ``(N, P)``."""
    result = {}
    r, real_s2 = s2_curves(np.concatenate(rows["real"]), modality, halfwidth)
    for name, parts in rows.items():
        if parts:
            images = np.concatenate(parts)
            result[name] = {
                "fid": round(frechet_distance(ref_features, extract(inception, images)), 1),
                "sharpness": round(sharpness(images), 2),
            }
            if name != "real":
                curves = s2_curves(images, modality, halfwidth)[1]
                result[name]["s2_discrepancy_pct_vs_real"] = {
                    phase: round(discrepancy(real_s2[c], curves[c], r), 1) for c, phase in enumerate(CLASS_NAMES)
                }
            if reg is not None:
                result[name]["regressor"] = regressor_row(reg, images, raw)
    return result


def tile_batch(pipe: TiM3Pipeline, batch: list[dict]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch of dataset items as ``pipe`` reads them: the tiles area-resized to its resolution R
    ``(B, 1, R, R)`` in [0, 1], their true maps as :meth:`TiM3Pipeline.model_maps` gives them, and
    their normalised property conditions ``(B, K)``."""
    real = resize_batch(np.stack([it["image"][0].numpy() for it in batch]), pipe.cfg.resolution)
    maps = pipe.model_maps(torch.stack([it["mask"] for it in batch]))
    raw = np.stack([it["props_raw"].numpy() for it in batch])
    return real, maps, torch.tensor(pipe.condition_properties.normalise(raw), dtype=torch.float32)


def _tiles(ds: MicrographDataset, n: int, seed: int) -> list[dict]:
    idx = np.random.default_rng(seed).choice(len(ds), min(n, len(ds)), replace=False)
    return [ds[int(i)] for i in np.sort(idx)]


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--n", type=int, default=160, help="held-out tiles scored per row")
    ap.add_argument("--n-reference", type=int, default=500, help="training tiles in the reference set")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--regressor", help="a property regressor folder or bundled:NAME/regressor (default: MODEL's regressor/)"
    )
    ap.add_argument("--stage2-guidance", type=float, help="stage 2's guidance scale (default: the model's)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    pipe = TiM3Pipeline.from_pretrained(resolve_model(args.model))
    own = pipe.folder / "regressor"
    reg = load_regressor(args.regressor) if args.regressor else (load_regressor(str(own)) if own.is_dir() else None)
    cfg, m = pipe.cfg, pipe.modules
    if not cfg.two_stage:
        raise SystemExit(f"{args.model}: not a two-stage model")
    res = cfg.resolution
    inception = InceptionFeatures()
    train = model_split(pipe, args.data, "train")
    ref_items = _tiles(train, args.n_reference, args.seed)
    ref = resize_batch(np.stack([it["image"][0].numpy() for it in ref_items]), res)[:, 0].numpy()
    ref_features = extract(inception, ref)
    halfwidth = lath_halfwidth_px(pixel_size_at(train.data.properties.info, res))
    items = _tiles(model_split(pipe, args.data, "test"), args.n, args.seed + 1)
    rows: dict[str, list[np.ndarray]] = {"real": [], "autoencoder": [], "stage2_true_maps": [], "two_stage": []}
    raw_all = np.stack([it["props_raw"].numpy() for it in items]).astype(np.float64)
    vae = m["vae_image"]
    g2 = pipe.stage_guidance()[1] if args.stage2_guidance is None else args.stage2_guidance
    for b, start in enumerate(range(0, len(items), args.batch_size)):
        batch = items[start : start + args.batch_size]
        real, maps, y = tile_batch(pipe, batch)
        rows["real"].append(real[:, 0].numpy())
        if hasattr(vae, "encode"):  # a learned autoencoder (a space-to-depth codec is lossless)
            rows["autoencoder"].append(reconstructed_images(pipe, real[:, 0].numpy()))
        gen = seeded_generator(args.seed, b)
        drawn = pipe.draw_micrographs(y, maps, cfg.sampling_steps, g2, cfg.sampler, gen)
        rows["stage2_true_maps"].append(drawn.cpu().numpy())
        # what pipe(raw, seed=args.seed + b) samples (its batch 0), stage by stage, so that stage 2 may be guided apart
        gen = seeded_generator(args.seed + b, 0)
        drawn_maps = pipe.draw_maps(y, cfg.sampling_steps, cfg.guidance_scale, cfg.sampler, gen)
        rows["two_stage"].append(pipe.draw_micrographs(y, drawn_maps, cfg.sampling_steps, g2, cfg.sampler, gen).numpy())
    result = score_rows(rows, inception, ref_features, cfg.modality, halfwidth, reg, raw_all)
    result["reference_sharpness"] = round(sharpness(ref), 2)
    record = {
        "benchmark": "fid_budget",
        "command": f"python benchmarks/fid_budget.py {args.model} {args.data} --n {args.n} "
        f"--n-reference {args.n_reference}"
        + ("" if args.stage2_guidance is None else f" --stage2-guidance {args.stage2_guidance:g}")
        + ("" if args.regressor is None else f" --regressor {args.regressor}"),
        "stage2_guidance": g2,
        "model": args.model,
        "n": len(items),
        "n_reference": len(ref),
        "resolution": res,
        "lath_halfwidth_px": halfwidth,
        "regressor": (str(args.regressor or f"{args.model}/regressor")) if reg is not None else None,
        "rows": result,
    }
    name = pipe.folder.name
    if args.stage2_guidance is not None:
        name += f"_stage2-guidance-{args.stage2_guidance:g}"
    write_record(record, args.out or Path(__file__).parent / "results" / f"fid_budget_{name}.json")


if __name__ == "__main__":
    main()
