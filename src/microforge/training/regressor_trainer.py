"""Train the property regressor F (ResNet-18) with the random gamma/contrast augmentation of
TiM3's eq. 12, resumably, and record its held-out accuracy.

Every step draws its batch, symmetries and augmentation from a generator seeded by
``(seed, step)``, so a run resumed from a checkpoint continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import config_to_dict
from ..data.dataset import MicrographDataset, load_split
from ..io import write_json_atomic
from ..accuracy import accuracy_table
from ..models.property_regressor import PropertyRegressor, min_max_stretch
from ..models.resnet import ResNet18
from .checkpoints import prepare_run_dir
from .loop import CHECKPOINT_DIR, lr_factor, optimizer_step, random_batch, run_steps


@dataclass(frozen=True)
class RegressorTrainConfig:
    resolution: int = 64  # px; the bundled TiM3 model's output size (tiles are area-averaged to it)
    width: int = (
        16  # first-stage channels; 64 is the paper's ResNet-18 (11.2 M), 16 gives 0.7 M (0.3 s/step on 2 cores)
    )
    steps: int = 2500  # optimiser steps (36 epochs of the 2,250 SEM training tiles at batch 32)
    batch_size: int = 32
    lr: float = 2e-3  # AdamW peak rate, cosine decay to 0 after a 100-step warm-up
    weight_decay: float = 1e-4
    gamma_sigma: float = 0.2  # sigma_eta of eq. 12: eta ~ N(1, sigma_eta^2)
    contrast: tuple[float, float] = (0.8, 1.2)  # alpha of eq. 12, drawn uniformly in this range
    modality: str | None = "SEM"  # train on one modality (None: all tiles)
    split_fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)  # TiM3's: its test specimens stay unseen by both
    seed: int = 0
    checkpoint_every: int = 250  # steps


def gamma_contrast(
    x: torch.Tensor, gen: torch.Generator, sigma_eta: float, contrast: tuple[float, float]
) -> torch.Tensor:
    """Eq. 12 on a batch ``(B, 1, H, W)`` in [0, 1]: ``clip(alpha * ((x - min) / (max - min)) ** eta)``
    per image, with ``eta ~ N(1, sigma_eta^2)`` (kept in [0.3, 3]) and ``alpha ~ U(contrast)``."""
    b = x.shape[0]
    eta = (1.0 + sigma_eta * torch.randn(b, generator=gen)).clamp(0.3, 3.0).view(b, 1, 1, 1)
    alpha = (contrast[0] + (contrast[1] - contrast[0]) * torch.rand(b, generator=gen)).view(b, 1, 1, 1)
    return (alpha * min_max_stretch(x).pow(eta)).clamp(0.0, 1.0)


def _split(
    data: str | Path, cfg: RegressorTrainConfig, split: str
) -> tuple[torch.Tensor, np.ndarray, MicrographDataset]:
    tiles = load_split(data, split, cfg.split_fractions, cfg.seed, cfg.modality, cfg.resolution)
    return tiles.images, tiles.raw, tiles.dataset


def held_out_metrics(regressor: PropertyRegressor, data: str | Path, cfg: RegressorTrainConfig) -> dict[str, dict]:
    """Acc_gamma, mAcc and per-property errors of ``regressor`` on the val and test specimens of
    ``data`` (``cfg``'s split), keyed ``"val"`` and ``"test"``, each with its specimens."""
    out = {}
    for split in ("val", "test"):
        x, y, sds = _split(data, cfg, split)
        out[split] = {
            "specimens": sds.specimens,
            **accuracy_table(regressor.predict(x[:, 0].numpy()), y, regressor.properties.names),
        }
    return out


def train_regressor(
    data: str | Path,
    out: str | Path,
    cfg: RegressorTrainConfig = RegressorTrainConfig(),
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Train F on the train split of dataset ``data`` into ``out``; return (and write) its metrics.

    Writes ``out/config.json``, ``model.safetensors``, ``properties.json``, ``metrics.json``
    (Acc_gamma, mAcc and per-property errors on the val and test specimens) and
    ``log.jsonl``. A finished ``out`` is refused; an unfinished one is continued only with
    ``resume``.
    """
    out = Path(out)
    images, raw, ds = _split(data, cfg, "train")  # bad data fails before anything is written
    ds.properties.require(str(data), "train regressor")
    data_record = prepare_run_dir(out, "metrics.json", "regressor", resume, config_to_dict(cfg), [data], progress)
    props = ds.properties
    target = torch.tensor(props.normalise(raw), dtype=torch.float32)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    net = ResNet18(1, len(props), cfg.width).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.steps))

    def step(gen: torch.Generator) -> dict[str, float]:
        idx, x = random_batch(images, cfg.batch_size, gen)
        x = gamma_contrast(x, gen, cfg.gamma_sigma, cfg.contrast)
        loss = F.mse_loss(net(x.to(device)), target[idx].to(device))
        return optimizer_step(loss, opt, sched)

    seconds = run_steps(
        out,
        cfg.steps,
        cfg.seed,
        cfg.checkpoint_every,
        {"net": net},
        {"optimizer": opt, "scheduler": sched},
        step,
        "train regressor",
        progress,
    )
    regressor = PropertyRegressor(net.eval(), props, cfg.resolution)
    metrics: dict = {
        "train_tiles": len(images),
        "data_digest": data_record[str(data)],
        **seconds.record(),
        "config": config_to_dict(cfg),
    }
    metrics.update(held_out_metrics(regressor, data, cfg))
    regressor.save_pretrained(out, {"train_config": config_to_dict(cfg)})
    write_json_atomic(out / "metrics.json", metrics, indent=2)
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    return metrics
