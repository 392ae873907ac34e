"""The attention U-Net segmenter's training settings: one dataclass, the source of
``microforge segment train``'s defaults (kept apart from the trainer, which loads PyTorch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SegmenterTrainConfig:
    steps: int = 600  # ~5 min on 2 CPU cores at batch 8, 96 px crops
    batch_size: int = 8
    crop: int = 96  # random square crops of the tiles (a multiple of 8)
    lr: float = 2e-3  # AdamW
    weight_decay: float = 1e-4
    channels: tuple[int, ...] = (16, 32, 64, 128)
    modality: str | None = None  # train on OM or SEM tiles only (None: both)
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)  # by specimen: whole images held out
    split_seed: int = 0
    seed: int = 0
    checkpoint_every: int = 100  # steps between checkpoints of an interrupted run (--resume)
