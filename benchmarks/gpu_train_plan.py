"""Turn a wall-clock budget into a TiM3 training config: time each diffusion stage's step on this
device, then give stage 1 and stage 2 as many steps as fit their share of the budget.

    python benchmarks/gpu_train_plan.py --config configs/tim3-tiny.yaml --seconds 240 --batch-size 128 --out plan.yaml

With ``--stage2-only`` the whole budget goes to stage 2, at its own batch size and learning rate
(``train.stage2_batch_size``, ``train.stage2_lr``): the config is then a finished model's own, whose
autoencoders and stage 1 ``scripts/seed_run_from_model.py`` copies, and only stage 2 is trained.

    python benchmarks/gpu_train_plan.py --config configs/tim3-tiny.yaml --seconds 180 --batch-size 512 \
        --stage2-only --out plan.yaml

The steps are then fixed numbers in the written config (training itself stays step-counted,
seeded and resumable). A step in the real loop also draws its batch and updates the EMA, so the
measured step time is multiplied by ``--overhead`` before dividing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
import yaml
from tim3_speed import pipeline_for, train_step_seconds  # benchmarks/ is on sys.path

from microforge.models.tim3 import load_tim3_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, required=True, help="base TiM3 YAML config")
    ap.add_argument("--seconds", type=float, required=True, help="wall-clock budget for both diffusion stages")
    ap.add_argument("--batch-size", type=int, help="training batch size [the config's]")
    ap.add_argument("--lr", type=float, help="learning rate [the config's]")
    ap.add_argument(
        "--stage1-share", type=float, default=0.35, help="share of the budget for stage 1 (its latent grid is smaller)"
    )
    ap.add_argument("--overhead", type=float, default=1.5, help="real loop step / bare UNet step")
    ap.add_argument(
        "--stage2-only",
        action="store_true",
        help="the whole budget to stage 2, at its own batch size and learning rate; stage 1's fields unchanged",
    )
    ap.add_argument(
        "--stage2-widths",
        help="stage 2's UNet block widths, comma-separated (e.g. 64,128,128,128) [the config's]",
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, required=True, help="YAML config to write")
    args = ap.parse_args()
    cfg = load_tim3_config(args.config)
    stage = "stage2_" if args.stage2_only else ""
    batch, lr = cfg.train.stage_batch(2 if args.stage2_only else 1)
    changed = {f"{stage}batch_size": args.batch_size or batch, f"{stage}lr": args.lr or lr}
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **changed))
    if args.stage2_widths:  # a wider or narrower stage 2, its other UNet settings the config's
        widths = tuple(int(w) for w in args.stage2_widths.split(","))
        # (unet.global_condition names the stages that take it; unet_stage2's own must stay empty)
        unet2 = dataclasses.replace(cfg.stage_unet(2), block_out_channels=widths, global_condition=())
        cfg = dataclasses.replace(cfg, unet_stage2=unet2)
        changed["stage2_widths"] = list(widths)
    _, modules = pipeline_for(cfg, args.device)
    timed = (2,) if args.stage2_only else (1, 2)
    seconds = {s: train_step_seconds(cfg, modules, args.device, repeats=20, stage=s) * args.overhead for s in timed}
    share1 = 0.0 if args.stage2_only else args.stage1_share
    steps1 = 0 if args.stage2_only else max(1, int(args.seconds * share1 / seconds[1]))  # 0: the seeded model's
    steps2 = max(1, int(args.seconds * (1 - share1) / seconds[2]))
    plan = cfg.to_dict()
    plan["train"].update(
        stage2_steps=steps2, checkpoint_every=max(250, steps2 // 4), **({"steps": steps1} if steps1 else {})
    )
    args.out.write_text(
        f"# planned by benchmarks/gpu_train_plan.py from {args.config}: {args.seconds:.0f} s on {args.device}, "
        f"step seconds (with overhead) {json.dumps({k: round(v, 4) for k, v in seconds.items()})}\n"
        + yaml.safe_dump(plan, sort_keys=False)
    )
    print(json.dumps({"stage1_steps": steps1, "stage2_steps": steps2, "step_seconds": seconds, **changed}))


if __name__ == "__main__":
    main()
