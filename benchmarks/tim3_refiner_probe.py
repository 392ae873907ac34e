"""Does a detail refiner after stage 2 give a TiM3 model the SEM texture its micrograph stage does
not draw (issue 17)? The refiner (``microforge.models.detail_refiner``) learns to draw a real
training tile from stage 2's version of it, then draws the detail of the model's samples; both
are scored as ``fid_budget.py`` scores its rows. Stage 2's version: its rendition of the tile's
true map and properties (``--strength 1``, the default: the two share the layout, not the
pixels), or its redraw of the tile's own latent from ``--strength`` of the way along the schedule
(SDEdit: aligned pixel for pixel). ``--guide-maps``: the refiner also reads the map.

    python benchmarks/tim3_refiner_probe.py MODEL DATA RUN [--pairs 1200] [--steps 3000] [--n 160]
        [--strength 1] [--guide-maps] [--save-model DIR] [--out JSON]

RUN must be new, empty or an earlier run of the probe. Phases, each kept in RUN so that a rerun
of the same command resumes: ``pairs.pt`` (``--pairs``
training tiles and stage 2's renditions of them, at the model's resolution and sampling
settings), the refiner's training (checkpoints, ``log.jsonl``, then ``refiner/``), and the
scoring: ``--n`` held-out tiles drawn four ways (stage 2 from their true maps, the full model at
their properties, each without and with the refiner) against ``--n-reference`` training tiles:
FID, sharpness, the S2 discrepancy against the real tiles and, with the model's regressor (or
``--regressor``), its reading of every row at the tiles' properties; ``RUN/rows.png`` shows eight
images of each row. MODEL: a two-stage TiM3
folder or bundled:NAME. Writes benchmarks/results/tim3_refiner_probe_<model name>.json unless
--out says otherwise. ``--save-model DIR`` also writes MODEL with the trained refiner as its
optional third stage (``refiner/``, sampling in ``--model-refiner-steps``), which ``microforge
evaluate`` scores; no bundled model carries one (docs/tim3.md, lever 5).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch
from _held_out import load_regressor, model_split, sharpness
from _record import write_record
from fid_budget import _tiles, score_rows, tile_batch

from microforge.data.dataset import as_class_shares
from microforge.characterize.segmentation import lath_halfwidth_px
from microforge.io import read_json_file, resize_batch
from microforge.models.detail_refiner import DetailRefiner, RefinerConfig
from microforge.models.inception import InceptionFeatures, extract
from microforge.pipelines.generate import pixel_size_at
from microforge.pipelines.registry import resolve_model
from microforge.pipelines.tim3 import TiM3Pipeline
from microforge.seeding import seeded_generator
from microforge.training.refiner_trainer import train_refiner


@torch.no_grad()
def draw_pairs(
    pipe: TiM3Pipeline, items: list[dict], batch_size: int, seed: int, strength: float = 1.0
) -> torch.Tensor:
    """``(N, 5, R, R)``: each tile (area-resized to the model's R), stage 2's rendition of its true
    map at its properties, both in [0, 1], and that map's three class shares. ``strength`` below
    1: stage 2 redraws the tile's own latent from that far along the schedule (SDEdit), so the
    pair shares the tile's layout pixel for pixel and differs in the texture stage 2 draws; 1:
    drawn from noise, so the pair shares the map only."""
    cfg, out = pipe.cfg, []
    g2 = pipe.stage_guidance()[1]
    for b, start in enumerate(range(0, len(items), batch_size)):
        batch = items[start : start + batch_size]
        real, maps, y = tile_batch(pipe, batch)
        init = pipe.encode_images(real[:, 0]) if strength < 1.0 else None
        gen = seeded_generator(seed, b)
        drawn = pipe.draw_micrographs(y, maps, cfg.sampling_steps, g2, cfg.sampler, gen, init, strength)
        out.append(torch.cat([real, drawn.cpu()[:, None], as_class_shares(maps).cpu()], dim=1))
        print(f"pairs: {start + len(batch)} / {len(items)}", flush=True)
    return torch.cat(out)


def refiner_for(pairs: torch.Tensor, run: Path, steps: int, batch: int, lr: float, guide_maps: bool) -> DetailRefiner:
    """A refiner trained for ``steps`` to draw ``pairs[:, 0]`` from ``pairs[:, 1]`` and, with
    ``guide_maps``, the map's class shares ``pairs[:, 2:]`` (resumable in ``run``; read back from
    ``run/refiner`` once trained)."""
    if (run / "refiner").is_dir():
        return DetailRefiner.from_pretrained(run / "refiner")
    res = pairs.shape[-1]
    cfg = RefinerConfig(resolution=res, factor=2 if res <= 64 else 4, guide_channels=3 if guide_maps else 0)
    pairs = pairs if guide_maps else pairs[:, :2]
    refiner, seconds = train_refiner(pairs, cfg, run, steps, batch, lr, 0)
    refiner.save_pretrained(run / "refiner", {"pairs": len(pairs), "steps": steps, **seconds.record()})
    return refiner


def save_with_refiner(pipe: TiM3Pipeline, refiner: DetailRefiner, steps: int, folder: Path) -> Path:
    """Write ``pipe``'s model with ``refiner`` (sampling in ``steps`` DDIM steps) as its third stage
    into ``folder`` (``save_pretrained`` leaves out the source's ``metrics.json``, which scored the
    model without it)."""
    staged = DetailRefiner(dataclasses.replace(refiner.cfg, sample_steps=steps))
    staged.load_state_dict(refiner.state_dict())
    pipe.modules["refiner"] = staged.eval()
    try:
        pipe.save_pretrained(folder)
    finally:
        del pipe.modules["refiner"]
    return folder


ROW_LABELS = {
    "real": "real tiles",
    "stage2_true_maps": "stage 2, true maps",
    "stage2_true_maps_refined": "  + refiner",
    "two_stage": "two stages",
    "two_stage_refined": "  + refiner",
}


def plot_rows(rows_npz: Path, png: Path, n: int = 8) -> Path:
    """A figure of the first ``n`` images of every row the probe scored (``rows.npz``): a row of
    images per way of drawing, all on one grey scale [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = np.load(rows_npz)
    fig, axes = plt.subplots(len(ROW_LABELS), n, figsize=(1.5 * n, 1.6 * len(ROW_LABELS)), squeeze=False)
    for i, (name, label) in enumerate(ROW_LABELS.items()):
        for j in range(n):
            axes[i, j].imshow(rows[name][j], cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        axes[i, 0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return png


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("run", type=Path)
    ap.add_argument("--pairs", type=int, default=1200, help="training tiles the refiner learns from")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="pairs: 1 draws stage 2 from noise at the tile's true map; below 1 redraws the tile's own latent "
        "from that far along the schedule (SDEdit), so the pair is aligned pixel for pixel",
    )
    ap.add_argument(
        "--guide-maps",
        action="store_true",
        help="the refiner also reads the phase map each image was drawn from (its class shares)",
    )
    ap.add_argument("--save-model", type=Path, help="also write MODEL with the refiner as its third stage here")
    ap.add_argument("--model-refiner-steps", type=int, default=10, help="the saved model's refiner DDIM steps")
    ap.add_argument("--n", type=int, default=160, help="held-out tiles scored per row")
    ap.add_argument("--n-reference", type=int, default=500, help="training tiles in the reference set")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--regressor", help="a property regressor folder or bundled:NAME/regressor")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    pipe = TiM3Pipeline.from_pretrained(resolve_model(args.model))
    cfg = pipe.cfg
    if not cfg.two_stage:
        raise SystemExit(f"Error: {args.model}: not a two-stage model")
    own = pipe.folder / "regressor"
    reg = load_regressor(args.regressor) if args.regressor else (load_regressor(str(own)) if own.is_dir() else None)
    if args.run.exists() and any(args.run.iterdir()) and not (args.run / "pairs.pt").is_file():
        raise SystemExit(f"Error: {args.run}: is neither empty nor an earlier run of this probe; choose a new folder")
    args.run.mkdir(parents=True, exist_ok=True)
    train = model_split(pipe, args.data, "train")
    if not (args.run / "pairs.pt").is_file():
        items = _tiles(train, args.pairs, args.seed + 2)
        pairs = draw_pairs(pipe, items, args.batch_size, args.seed + 2, args.strength)
        torch.save(pairs, args.run / "pairs.pt")
    pairs = torch.load(args.run / "pairs.pt")
    with torch.enable_grad():
        refiner = refiner_for(pairs, args.run, args.steps, args.batch_size, args.lr, args.guide_maps)
    if args.save_model is not None and not (args.save_model / "config.json").exists():
        save_with_refiner(pipe, refiner, args.model_refiner_steps, args.save_model)
    res = cfg.resolution
    inception = InceptionFeatures()
    ref = resize_batch(np.stack([it["image"][0].numpy() for it in _tiles(train, args.n_reference, args.seed)]), res)
    ref_features = extract(inception, ref[:, 0].numpy())
    halfwidth = lath_halfwidth_px(pixel_size_at(train.data.properties.info, res))
    items = _tiles(model_split(pipe, args.data, "test"), args.n, args.seed + 1)
    names = ("real", "stage2_true_maps", "stage2_true_maps_refined", "two_stage", "two_stage_refined")
    rows: dict[str, list[np.ndarray]] = {k: [] for k in names}
    g2 = pipe.stage_guidance()[1]
    for b, start in enumerate(range(0, len(items), args.batch_size)):
        batch = items[start : start + args.batch_size]
        real, maps, y = tile_batch(pipe, batch)
        rows["real"].append(real[:, 0].numpy())
        drawn = pipe.draw_micrographs(y, maps, cfg.sampling_steps, g2, cfg.sampler, seeded_generator(args.seed, b))
        gen = seeded_generator(args.seed + b, 0)  # what pipe(raw, seed=args.seed + b) samples, its batch 0
        drawn_maps = pipe.draw_maps(y, cfg.sampling_steps, cfg.guidance_scale, cfg.sampler, gen)
        sampled = pipe.draw_micrographs(y, drawn_maps, cfg.sampling_steps, g2, cfg.sampler, gen)
        for name, images, drawn_from in (("stage2_true_maps", drawn, maps), ("two_stage", sampled, drawn_maps)):
            rows[name].append(images.numpy())
            guide = as_class_shares(drawn_from) if refiner.cfg.guide_channels else None
            refined = refiner.refine(images[:, None], seeded_generator(args.seed, b, 9), guide=guide)
            rows[f"{name}_refined"].append(refined[:, 0].numpy())
    raw_all = np.stack([it["props_raw"].numpy() for it in items]).astype(np.float64)
    result = score_rows(rows, inception, ref_features, cfg.modality, halfwidth, reg, raw_all)
    np.savez_compressed(args.run / "rows.npz", **{k: np.concatenate(v)[:16] for k, v in rows.items()})
    plot_rows(args.run / "rows.npz", args.run / "rows.png")
    result["reference_sharpness"] = round(sharpness(ref[:, 0].numpy()), 2)
    write_record(
        {
            "benchmark": "a detail refiner after TiM3's stage 2 (issue 17)",
            "command": f"python benchmarks/tim3_refiner_probe.py {args.model} {args.data} RUN --pairs {args.pairs} "
            f"--steps {args.steps} --n {args.n} --n-reference {args.n_reference} --strength {args.strength}"
            + (" --guide-maps" if args.guide_maps else "")
            + ("" if args.regressor is None else f" --regressor {args.regressor}"),
            "model": args.model,
            "pairs": len(pairs),
            "pair_strength": args.strength,
            "refiner": refiner.cfg.to_dict(),
            # the refiner's training time, as its folder records it (over every resumed run)
            "refiner_training_minutes": round(
                read_json_file(args.run / "refiner" / "config.json", "a detail refiner")["seconds"] / 60, 1
            ),
            "n": len(items),
            "n_reference": len(ref),
            "resolution": res,
            "rows": result,
        },
        args.out or Path(__file__).parent / "results" / f"tim3_refiner_probe_{pipe.folder.name}.json",
    )


if __name__ == "__main__":
    main()
