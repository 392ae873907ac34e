"""The one resumable step loop of every trainer (TiM3's phases, the baselines, the regressor, the
fingerprint VAE, the segmenter): every step draws its randomness from a generator seeded by the
run's seed key and the step (and, with several processes, the process), the losses go to a
JSON-lines log and a progress bar, and an atomic checkpoint is written every ``checkpoint_every``
steps, so a run resumed after a kill continues exactly as an uninterrupted one. With an
``accelerate.Accelerator`` only the main process writes logs and checkpoints; every process
reads them back.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple

import torch
from tqdm.auto import tqdm

from ..data.dataset import d4_batch
from ..seeding import seeded_generator
from .checkpoints import checkpoint_seconds, load_checkpoint, save_checkpoint

if TYPE_CHECKING:
    from accelerate import Accelerator

CHECKPOINT_DIR = "checkpoints"
LOG_EVERY = 10  # steps


def lr_factor(step: int, steps: int, decay: str = "cosine", warmup: int = 100) -> float:
    """The learning rate's multiplier at 0-based ``step`` of ``steps``: linear warm-up over
    ``warmup`` steps, then 1 (``decay`` "constant") or half a cosine from 1 to 0 at the last step
    ("cosine")."""
    if step < warmup:
        return (step + 1) / warmup
    if decay == "constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


class StepSeconds(NamedTuple):
    """A loop's training time in seconds: ``this_run``, since this process started or resumed it, and
    ``total``, over every run that contributed steps (the resumed checkpoint records its steps'
    time; steps redone after a kill count once). ``total`` is ``None`` where the run resumed from a
    checkpoint of a version that did not record its time."""

    this_run: float
    total: float | None

    def record(self, prefix: str = "") -> dict[str, float]:
        """The times as a record's entries, rounded to 0.1 s: ``<prefix>seconds_this_run`` and,
        where known, ``<prefix>seconds``."""
        out = {f"{prefix}seconds_this_run": round(self.this_run, 1)}
        if self.total is not None:
            out[f"{prefix}seconds"] = round(self.total, 1)
        return out


def recorded_seconds(record: Mapping[str, Any], prefix: str = "") -> float:
    """A training record's time in seconds: ``<prefix>seconds``, over every run that trained it, or,
    in records written before that entry (or after a resume from such a checkpoint),
    ``<prefix>seconds_this_run``."""
    return float(record.get(f"{prefix}seconds", record[f"{prefix}seconds_this_run"]))


def run_steps(
    out: Path,
    steps: int,
    seed: int | tuple[int, ...],
    checkpoint_every: int,
    modules: Mapping[str, torch.nn.Module],
    states: Mapping[str, Any],
    step_fn: Callable[[torch.Generator], dict[str, float]],
    desc: str,
    progress: bool = True,
    *,
    log_path: Path | None = None,
    checkpoint_dir: Path | None = None,
    keep: int = 1,
    accelerator: Accelerator | None = None,
) -> StepSeconds:
    """Resume from the newest checkpoint (if any) and run ``step_fn(generator)`` up to ``steps``.

    ``modules`` (unwrapped networks) and ``states`` (optimisers, schedules, EMA: anything with
    ``state_dict``) are what a checkpoint holds. ``step_fn`` does one optimisation step and
    returns its losses. Step ``s`` draws from ``seeded_generator(*seed, s)``, and from
    ``seeded_generator(*seed, s, rank)`` when an ``accelerator`` is given. The log defaults to
    ``out/log.jsonl`` and the checkpoints to ``out/checkpoints``, keeping the newest ``keep``.
    Returns the seconds spent, in this run and in all (``StepSeconds``).
    """
    key = (seed,) if isinstance(seed, int) else tuple(seed)
    rank = () if accelerator is None else (accelerator.process_index,)
    main = accelerator is None or accelerator.is_main_process
    log_path = log_path or out / "log.jsonl"
    ckdir = checkpoint_dir or out / CHECKPOINT_DIR
    log_path.parent.mkdir(parents=True, exist_ok=True)
    before = checkpoint_seconds(ckdir)  # the resumed steps' time, from earlier runs
    start = load_checkpoint(ckdir, modules, states)
    for m in modules.values():
        m.train()
    t0 = time.perf_counter()
    bar = tqdm(range(start, steps), desc=desc, disable=not (progress and main), initial=start, total=steps)
    for step in bar:
        losses = step_fn(seeded_generator(*key, step, *rank))
        if main and (step % LOG_EVERY == 0 or step == steps - 1):
            with open(log_path, "a") as fh:
                fh.write(json.dumps({"step": step, **{k: round(v, 6) for k, v in losses.items()}}) + "\n")
            bar.set_postfix({k: f"{v:.4f}" for k, v in list(losses.items())[:2]})
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            if main:
                elapsed = None if before is None else before + time.perf_counter() - t0
                save_checkpoint(ckdir, step + 1, modules, states, keep, elapsed)
            if accelerator is not None:
                accelerator.wait_for_everyone()
    bar.close()
    if accelerator is not None:
        accelerator.wait_for_everyone()
    this_run = time.perf_counter() - t0
    return StepSeconds(this_run, None if before is None else before + this_run)


def random_batch(images: torch.Tensor, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` images drawn with replacement from ``images`` ``(N, C, H, W)``, each under a random
    symmetry of the square; returns ``(indices, images)``."""
    idx = torch.randint(0, len(images), (batch,), generator=gen)
    return idx, d4_batch(images[idx], torch.randint(0, 8, (batch,), generator=gen))


def optimizer_step(
    loss: torch.Tensor, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler
) -> dict[str, float]:
    """One plain optimiser step on ``loss`` (a scalar): clear the gradients, backpropagate, step
    ``opt`` and the learning-rate schedule ``sched``; returns ``{"loss": loss}`` for ``run_steps``'s log."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return {"loss": loss.item()}
