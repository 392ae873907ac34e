"""The resumable step loop shared by the plain-PyTorch trainers (regressor, baselines,
fingerprints): every step draws its randomness from a generator seeded by ``(seed, step)``, the
losses go to ``log.jsonl`` and a progress bar, and an atomic checkpoint is written every
``checkpoint_every`` steps, so a run resumed after a kill continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from tqdm.auto import tqdm

from ..data.dataset import d4_batch
from ..seeding import seeded_generator
from .checkpoints import load_checkpoint, save_checkpoint

CHECKPOINT_DIR = "checkpoints"
LOG_EVERY = 10  # steps


def run_steps(
    out: Path,
    steps: int,
    seed: int,
    checkpoint_every: int,
    modules: Mapping[str, torch.nn.Module],
    states: Mapping[str, Any],
    step_fn: Callable[[torch.Generator], dict[str, float]],
    desc: str,
    progress: bool = True,
) -> float:
    """Resume from ``out/checkpoints`` (if any) and run ``step_fn(generator)`` up to ``steps``.

    ``modules`` (weights) and ``states`` (optimisers, schedules) are what a checkpoint holds.
    ``step_fn`` does one optimisation step and returns its losses. Returns the seconds spent.
    """
    ckdir = out / CHECKPOINT_DIR
    start = load_checkpoint(ckdir, modules, states)
    for m in modules.values():
        m.train()
    t0 = time.perf_counter()
    bar = tqdm(range(start, steps), desc=desc, disable=not progress, initial=start, total=steps)
    for step in bar:
        losses = step_fn(seeded_generator(seed, step))
        if step % LOG_EVERY == 0 or step == steps - 1:
            with open(out / "log.jsonl", "a") as fh:
                fh.write(json.dumps({"step": step, **{k: round(v, 6) for k, v in losses.items()}}) + "\n")
            bar.set_postfix({k: f"{v:.4f}" for k, v in list(losses.items())[:2]})
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            save_checkpoint(ckdir, step + 1, modules, states)
    bar.close()
    return time.perf_counter() - t0


def random_batch(images: torch.Tensor, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` images drawn with replacement from ``images`` ``(N, C, H, W)``, each under a random
    symmetry of the square; returns ``(indices, images)``."""
    idx = torch.randint(0, len(images), (batch,), generator=gen)
    return idx, d4_batch(images[idx], torch.randint(0, 8, (batch,), generator=gen))
