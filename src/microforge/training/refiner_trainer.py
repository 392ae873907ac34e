"""Training a detail refiner (``models.detail_refiner``) on pairs of an image and a blurred version
of it, on the one resumable step loop; what the fingerprint VAE's refiner phase and the TiM3
refiner probe both run."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import MicroforgeError
from ..models.detail_refiner import DetailRefiner, RefinerConfig, fit_residual_std
from .loop import StepSeconds, lr_factor, optimizer_step, random_batch, run_steps


def train_refiner(
    pairs: torch.Tensor,
    cfg: RefinerConfig,
    out: Path,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int | tuple[int, ...],
    checkpoint_every: int = 250,
    progress: bool = True,
    log_path: Path | None = None,
    checkpoint_dir: Path | None = None,
) -> tuple[DetailRefiner, StepSeconds]:
    """Train a refiner of ``cfg`` for ``steps`` to draw ``pairs[:, 0]`` from ``pairs[:, 1]``
    (``(N, 2 + G, R, R)`` in [0, 1]: each image beside its blurred version and, for a refiner of
    ``G = cfg.guide_channels``, its guide channels; a batch takes all under the same random symmetry
    of the square), with AdamW at ``lr``, a 100-step warm-up and a cosine decay
    to 0, resumable in ``out`` (``run_steps``'s log and checkpoints, seed key ``seed``). The weights
    start from ``torch.manual_seed`` of the key's first number. Returns the refiner (eval mode) and
    the seconds spent."""
    torch.manual_seed(seed if isinstance(seed, int) else seed[0])
    refiner = DetailRefiner(cfg)
    if pairs.shape[1] != 2 + cfg.guide_channels:
        raise MicroforgeError(f"refiner pairs have {pairs.shape[1]} channels; {2 + cfg.guide_channels} expected")
    fit_residual_std(refiner, pairs[:, :1], pairs[:, 1:2])
    opt = torch.optim.AdamW(refiner.unet.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, "cosine"))

    def step(gen: torch.Generator) -> dict[str, float]:
        _, batch = random_batch(pairs, batch_size, gen)
        loss = refiner.loss(batch[:, :1], batch[:, 1:2], gen, batch[:, 2:] if cfg.guide_channels else None)
        return optimizer_step(loss, opt, sched)

    seconds = run_steps(
        out,
        steps,
        seed,
        checkpoint_every,
        {"refiner": refiner},
        {"opt": opt, "sched": sched},
        step,
        "train the detail refiner",
        progress,
        log_path=log_path,
        checkpoint_dir=checkpoint_dir,
    )
    return refiner.eval(), seconds
