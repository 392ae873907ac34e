"""Shared by the benchmarks that compare a model's samples with held-out real tiles: the tiles, and
one sample per tile drawn at that tile's own properties (the same seeds for every model)."""

from __future__ import annotations

import numpy as np
import torch

from microforge.data.dataset import MicrographDataset
from microforge.io import resize_batch
from microforge.pipelines.tim3 import TiM3Pipeline


def held_out_tiles(
    pipe: TiM3Pipeline, data: str, splits: tuple[str, ...], n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``n`` seeded tiles of the model's held-out ``splits`` (by specimen, as the model split the
    data): images ``(n, R, R)`` in [0, 1] area-resized to the model's resolution R, properties
    ``(n, K)`` in their units, and each tile's morphology label ("" where the dataset has none)."""
    cfg = pipe.cfg
    pool = []  # (dataset, row) of every tile of the splits
    for split in splits:
        ds = MicrographDataset(
            data,
            split=split,
            fractions=tuple(cfg.split_fractions),
            seed=cfg.train.seed,
            modality=cfg.modality,
            augment=False,
            properties=pipe.condition_properties,
        )
        pool += [(ds, i) for i in range(len(ds))]
    pick = np.sort(np.random.default_rng(seed).choice(len(pool), min(n, len(pool)), replace=False))
    items = [pool[k][0][pool[k][1]] for k in pick]
    rows = [pool[k][0].table.iloc[pool[k][1]] for k in pick]
    tiles = torch.stack([it["image"] for it in items])
    props = np.stack([it["props_raw"].numpy() for it in items]).astype(np.float64)
    morphology = [str(r["morphology"]) if "morphology" in r.index else "" for r in rows]
    return resize_batch(tiles, cfg.resolution)[:, 0].numpy(), props, morphology


def samples_at(pipe: TiM3Pipeline, raw: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
    """One sample ``(n, R, R)`` in [0, 1] per property row of ``raw`` ``(n, K)``; batch ``b`` starting
    at row ``i`` uses seed ``seed + i``, so every model draws from the same noise."""
    b = batch_size
    return np.concatenate([pipe(raw[i : i + b], batch_size=b, seed=seed + i).images for i in range(0, len(raw), b)])
