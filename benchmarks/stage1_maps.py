"""Stage 1's maps alone, at held-out tiles' properties, against those tiles' true maps: for finished
models and for run folders whose map phases are trained but which have no model files yet.

    python benchmarks/stage1_maps.py DATA [LABEL=]MODEL ... [--run LABEL=RUN:CONFIG ...] [--n 96]
        [--guidance S] [--steps K] [--seed 0] [--figure PNG] [--out JSON]

MODEL: a TiM3 folder or bundled:NAME. ``--run``: a run folder whose stage 1 has finished (its
``unet_stage1`` and ``encoder_stage1``, with the map codec it was trained on), or has a checkpoint
(its newest, with the EMA weights; the row records the step), and the config it was trained with,
read through ``TiM3Pipeline.map_stage`` at the scaling factor the trainer measures; for a probe
stopped before stage 2 (whose objective CONFIG may share with stage 1, so its micrographs cannot be
drawn). Each draws one map per tile of the first model's test split (``--n`` tiles spread over the
split, in its order) at the tile's properties, with the config's sampler and steps and its guidance
unless ``--guidance`` says otherwise (one seed for all). Per model: the correlation and mean
absolute difference of the drawn and true primary-alpha fractions, each class's mean fraction drawn
and true, and the share of isolated pixels (whose four neighbours all have another class; speckle),
drawn and true. Writes benchmarks/results/stage1_maps.json unless --out says otherwise, and with
``--figure`` a PNG: the true maps, then each model's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from _held_out import model_split
from _record import write_record
from diffusers.training_utils import EMAModel

from microforge.data.dataset import nearest_maps
from microforge.errors import MicroforgeError
from microforge.models.tim3 import codec_class, load_tim3_config
from microforge.pipelines.registry import resolve_model
from microforge.pipelines.tim3 import TiM3Pipeline
from microforge.seeding import seeded_generator
from microforge.training.checkpoints import load_checkpoint
from microforge.training.tim3_trainer import CHECKPOINT_DIR, DONE_DIR, TiM3Trainer


def isolated_share(maps: np.ndarray) -> float:
    """The share of interior pixels of class maps ``(B, H, W)`` whose four neighbours all differ
    from them: speckle (a lath one pixel wide has two neighbours of its own class)."""
    c = maps[:, 1:-1, 1:-1]
    iso = (c != maps[:, :-2, 1:-1]) & (c != maps[:, 2:, 1:-1]) & (c != maps[:, 1:-1, :-2]) & (c != maps[:, 1:-1, 2:])
    return float(iso.mean())


def map_statistics(drawn: np.ndarray, true: np.ndarray) -> dict[str, float | list[float]]:
    """Drawn class maps ``(N, H, W)`` against the true ones ``(N, H, W)`` (0 primary alpha, 1 beta,
    2 secondary alpha), map by map."""
    fd, ft = (drawn == 0).mean((1, 2)), (true == 0).mean((1, 2))
    return {
        "primary_alpha_correlation": round(float(np.corrcoef(fd, ft)[0, 1]), 3),
        "primary_alpha_mean_abs_error": round(float(np.abs(fd - ft).mean()), 4),
        "class_fractions_drawn": [round(float((drawn == k).mean()), 4) for k in range(3)],
        "class_fractions_true": [round(float((true == k).mean()), 4) for k in range(3)],
        "isolated_drawn": round(isolated_share(drawn), 4),
        "isolated_true": round(isolated_share(true), 4),
    }


def run_map_stage(data: str, run: Path, config: str) -> tuple[TiM3Pipeline, int | None]:
    """The map stage of run folder ``run`` trained with ``config``, as the trainer reads it, and the
    step it was read at: the finished phase's weights (step None) or, while stage 1 is unfinished,
    its newest checkpoint's EMA weights, which are the ones the phase would save."""
    cfg = load_tim3_config(config)
    trainer = TiM3Trainer(data, run, cfg, progress=False)
    scale = trainer._encode_all("vae_map")[2]
    sched = dict(trainer.stage_schedulers[1].config)
    if (run / DONE_DIR / "stage1.json").is_file():
        return TiM3Pipeline.map_stage(run, cfg, trainer.props, scale, sched), None
    ckdir = run / CHECKPOINT_DIR / "stage1"
    unet, encoder = trainer._unet(1), trainer._encoder()
    params = [*unet.parameters(), *encoder.parameters()]  # the trainer's order: the UNet's, then the encoder's
    ema = EMAModel(params, decay=cfg.train.ema_decay)
    step = load_checkpoint(ckdir, {"unet_stage1": unet, "encoder_stage1": encoder}, {"ema": ema})
    if step == 0:
        raise MicroforgeError(f"{run}: stage 1 has neither finished nor a checkpoint")
    ema.copy_to(params)
    modules = {"vae_map": codec_class(cfg.vae_map).from_pretrained(run / "vae_map"), "unet_stage1": unet.eval()}
    modules["encoder_stage1"] = encoder.eval()
    return TiM3Pipeline(run, cfg, trainer.props, {"vae_map": scale}, 0.0, modules, sched, None, sched), step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("models", nargs="*", help="[LABEL=]MODEL: TiM3 folders or bundled:NAME")
    ap.add_argument("--run", action="append", default=[], help="LABEL=RUN:CONFIG, a run folder whose stage 1 is done")
    # 96: candidate ac read 0.92 at 24 tiles and 0.72 at 48 (docs/tim3.md); a screen, not the protocol
    ap.add_argument("--n", type=int, default=96, help="held-out tiles, one map each")
    ap.add_argument("--guidance", type=float, help="guidance scale [each config's guidance_scale]")
    ap.add_argument("--steps", type=int, help="sampling steps [each config's sampling_steps]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figure", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    try:
        pipes: dict[str, TiM3Pipeline] = {}
        for spec in args.models:
            label, model = spec.split("=", 1) if "=" in spec else (spec, spec)
            pipes[label] = TiM3Pipeline.from_pretrained(resolve_model(model))
        read_at: dict[str, int | None] = {}
        for spec in args.run:
            label, rest = spec.split("=", 1) if "=" in spec else (spec, spec)
            run, _, config = rest.rpartition(":")
            if not run or not Path(run).is_dir() or not Path(config).is_file():
                raise MicroforgeError(f"--run {spec}: give LABEL=RUN:CONFIG, a run folder and its config file")
            pipes[label], read_at[label] = run_map_stage(args.data, Path(run), config)
        if not pipes:
            raise MicroforgeError("give at least one MODEL or --run")
        first = next(iter(pipes.values()))
        test = model_split(first, args.data, "test")
    except MicroforgeError as exc:
        sys.exit(f"Error: {exc}")
    idx = np.linspace(0, len(test) - 1, min(args.n, len(test))).round().astype(int)
    items = [test[int(i)] for i in idx]
    raw = np.stack([it["props_raw"].numpy() for it in items])
    true = nearest_maps(torch.stack([it["mask"] for it in items]), first.cfg.resolution).numpy()
    rows, drawn_maps = {}, {}
    for label, pipe in pipes.items():
        y = torch.from_numpy(pipe.properties.normalise(raw)).float()
        steps = args.steps or pipe.cfg.sampling_steps
        guidance = pipe.cfg.guidance_scale if args.guidance is None else args.guidance
        drawn = pipe.draw_maps(y, steps, guidance, pipe.cfg.sampler, seeded_generator(args.seed)).numpy()
        drawn_maps[label] = drawn
        rows[label] = {"guidance": guidance, "steps": steps, **map_statistics(drawn, true)}
        if read_at.get(label) is not None:
            rows[label]["checkpoint_step"] = read_at[label]
        print(label, rows[label])
    record = {
        "benchmark": "stage1_maps",
        "command": "python benchmarks/stage1_maps.py "
        + " ".join([args.data, *args.models, *(f"--run {r}" for r in args.run), f"--n {len(idx)}"])
        + (f" --guidance {args.guidance:g}" if args.guidance is not None else "")
        + (f" --steps {args.steps}" if args.steps else ""),
        "n": len(idx),
        "rows": rows,
    }
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        cols = min(12, len(idx))
        fig, axes = plt.subplots(1 + len(pipes), cols, figsize=(1.6 * cols, 1.7 * (1 + len(pipes))), squeeze=False)
        for r, (label, maps) in enumerate([("true", true), *drawn_maps.items()]):
            for c in range(cols):
                axes[r, c].imshow(maps[c], vmin=0, vmax=2, cmap="viridis", interpolation="nearest")
                axes[r, c].set_xticks([])
                axes[r, c].set_yticks([])
            axes[r, 0].set_ylabel(label, fontsize=8)
        fig.tight_layout()
        fig.savefig(args.figure, dpi=80)
        record["figure"] = str(args.figure)
    write_record(record, args.out or Path(__file__).parent / "results" / "stage1_maps.json")


if __name__ == "__main__":
    main()
