"""How far two trainings of one TiM3 autoencoder drift apart when only their rounding differs.

    python benchmarks/layout_divergence.py DATA WORK [--config configs/tim3-tiny.yaml]
        [--phase vae_map] [--steps 1000] [--every 100] [--compare A B ...] [--out JSON]

Trains ``--phase`` (``vae_map`` or ``vae_image``) of ``--config`` twice for ``--steps`` steps from
the same seed, on the same batches, once in the contiguous memory layout and once in the
channels-last one (``train.channels_last``: the same arithmetic in another order, so the two
differ by floating-point rounding alone), into the new folders WORK/contiguous and
WORK/channels_last. At every ``--every`` steps it compares the two sets of weights: for each
tensor, the largest absolute difference as a share of the tensor's largest absolute weight; the
record gives the median and the largest share over the tensors, and each run's map pixel
accuracy (``vae_map``: the share of pixels of 256 training maps whose class its reconstruction
keeps) or pixel MSE (``vae_image``). A recipe whose trainings part this far under rounding alone
parts as far between machines and library versions, whose kernels round differently.

``--compare A B``: also the same shares between two finished models' autoencoders of the phase
(TiM3 folders or bundled:NAME), as a yardstick. Writes
benchmarks/results/layout_divergence_<phase>.json unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from _record import write_record
from safetensors.torch import load_file

from microforge.data.dataset import onehot_map
from microforge.errors import MicroforgeError
from microforge.models.tim3 import load_tim3_config
from microforge.pipelines.registry import resolve_model
from microforge.seeding import seed_from
from microforge.training.tim3_trainer import CHECKPOINT_DIR, TiM3Trainer, VAETraining, phases
from microforge.models.tim3 import build_autoencoder

LAYOUTS = ("contiguous", "channels_last")
KEPT = "kept_checkpoints"  # where each run keeps its phase's checkpoints, which the trainer deletes at its end


class CheckpointKeepingTrainer(TiM3Trainer):
    """The TiM3 trainer, copying a phase's checkpoints into ``out/kept_checkpoints`` before its
    ``.done`` marker deletes them (a finished phase needs none for resuming; this benchmark reads
    them)."""

    def _mark_done(self, phase: str, *args, **kwargs) -> None:
        checkpoints = self.out / CHECKPOINT_DIR / phase
        if checkpoints.is_dir():
            shutil.copytree(checkpoints, self.out / KEPT / phase)
        super()._mark_done(phase, *args, **kwargs)


def weights_at(run: Path, phase: str, step: int, steps: int) -> dict[str, torch.Tensor]:
    """The autoencoder's state dict (as ``VAETraining`` holds it) in ``run`` after ``step`` of the
    phase's ``steps``: a kept checkpoint, or for the last step the phase's saved autoencoder (the
    trainer writes that, not a checkpoint, when the phase ends)."""
    if step == steps:
        saved = load_file(str(run / phase / "diffusion_pytorch_model.safetensors"))
        return {f"vae.{k}": v for k, v in saved.items()}
    return load_file(str(run / KEPT / phase / f"step_{step:07d}" / phase / "model.safetensors"))


def drift(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per tensor, max |a - b| / max |a| over the tensors both state dicts hold (floating ones of more
    than one element); their median and largest."""
    shares = [
        float((a[k].float() - b[k].float()).abs().max() / a[k].float().abs().max().clamp_min(1e-12))
        for k in sorted(a)
        if k in b and a[k].is_floating_point() and a[k].numel() > 1
    ]
    return {"median": round(float(np.median(shares)), 5), "largest": round(float(np.max(shares)), 5)}


def fidelity(trainer: TiM3Trainer, phase: str, weights: dict[str, torch.Tensor]) -> float:
    """The trained autoencoder's map pixel accuracy (``vae_map``) or pixel MSE (``vae_image``) on the
    first 256 training tiles, from the posterior means."""
    cfg = getattr(trainer.cfg, phase)
    model = VAETraining(build_autoencoder(cfg, 3 if phase == "vae_map" else 1))
    model.load_state_dict(weights)
    vae = model.vae.eval()
    n = min(256, len(trainer.data))
    with torch.no_grad():
        if phase == "vae_map":
            maps = trainer.data.maps[:n]
            x = onehot_map(maps) * 2.0 - 1.0
            return float((vae.decode(vae.encode(x).latent_dist.mean).sample.argmax(1) == maps).float().mean())
        x = trainer.data.images[:n]
        return float(((vae.decode(vae.encode(x).latent_dist.mean).sample - x) ** 2).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("work", type=Path, help="a new or empty folder for the two runs")
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "tim3-tiny.yaml"))
    ap.add_argument("--phase", choices=("vae_map", "vae_image"), default="vae_map")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"), help="two finished models to compare as well")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    try:
        if args.work.exists() and (not args.work.is_dir() or any(args.work.iterdir())):
            raise MicroforgeError(f"{args.work}: exists and is not empty; choose a new folder")
        if args.steps < 1 or args.every < 1 or args.steps % args.every:
            raise MicroforgeError(f"--steps {args.steps} must be a positive multiple of --every {args.every}")
        base = load_tim3_config(args.config)
        if getattr(base, args.phase).kind != "kl":
            raise MicroforgeError(f"{args.config}: {args.phase} is a lossless codec; nothing to train")
    except MicroforgeError as exc:
        sys.exit(f"Error: {exc}")
    index = phases(base).index(args.phase)
    runs = {}
    for layout in LAYOUTS:
        section = dataclasses.replace(getattr(base, args.phase), steps=args.steps)
        train = dataclasses.replace(
            base.train,
            channels_last=layout == "channels_last",
            checkpoint_every=args.every,
            keep_checkpoints=args.steps // args.every,
        )
        cfg = dataclasses.replace(base, train=train, **{args.phase: section})
        trainer = CheckpointKeepingTrainer(args.data, args.work / layout, cfg, progress=True)
        trainer.out.mkdir(parents=True)
        torch.manual_seed(seed_from(cfg.train.seed, index))  # the initial weights, as TiM3Trainer.run seeds them
        getattr(trainer, f"_train_{args.phase}")(index)
        runs[layout] = trainer
    rows = []
    for step in range(args.every, args.steps + 1, args.every):
        weights = {layout: weights_at(args.work / layout, args.phase, step, args.steps) for layout in LAYOUTS}
        row = {"step": step, "drift": drift(weights["contiguous"], weights["channels_last"])}
        for layout in LAYOUTS:
            row[f"fidelity_{layout}"] = round(fidelity(runs[layout], args.phase, weights[layout]), 5)
        print(row)
        rows.append(row)
    record = {
        "benchmark": "layout_divergence",
        "command": f"python benchmarks/layout_divergence.py {args.data} {args.work} --config {args.config} "
        f"--phase {args.phase} --steps {args.steps} --every {args.every}"
        + (f" --compare {' '.join(args.compare)}" if args.compare else ""),
        "phase": args.phase,
        "fidelity": "map pixel accuracy" if args.phase == "vae_map" else "pixel MSE",
        "drift": "per tensor max |a - b| / max |a|: median and largest over the tensors",
        "rows": rows,
    }
    if args.compare:
        saved = Path(args.phase) / "diffusion_pytorch_model.safetensors"
        a, b = (load_file(str(Path(resolve_model(m)) / saved)) for m in args.compare)
        record["models"] = {"a": args.compare[0], "b": args.compare[1], "drift": drift(a, b)}
        print(record["models"])
    write_record(record, args.out or Path(__file__).parent / "results" / f"layout_divergence_{args.phase}.json")


if __name__ == "__main__":
    main()
