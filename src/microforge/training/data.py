"""Data shared by the trainers: a split's tiles in memory, and the properties.json of a trained
model (the dataset's properties plus the points of its training hull)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.dataset import MicrographDataset
from ..errors import MicroforgeError
from ..io import resize_batch
from ..properties import PropertySet, PropertySpec


def load_split(
    data: str | Path,
    split: str,
    fractions: tuple[float, float, float],
    seed: int,
    modality: str | None,
    resolution: int,
) -> tuple[torch.Tensor, np.ndarray, MicrographDataset]:
    """The tiles of one split: images ``(N, 1, R, R)`` in [0, 1] at ``resolution`` px, raw
    properties ``(N, K)`` in their units, and the dataset object (specimens, properties)."""
    ds = MicrographDataset(data, split=split, fractions=fractions, seed=seed, modality=modality, augment=False)
    if len(ds) == 0:
        raise MicroforgeError(f"{data}: the {split} split is empty; the dataset needs more specimens")
    images = resize_batch(np.stack([ds[i]["image"][0].numpy() for i in range(len(ds))]), resolution)
    return images, ds._raw.astype(np.float64), ds


def properties_with_hull(
    props: PropertySet, specimens: list[str], raw: np.ndarray, extra: list[PropertySpec] = ()
) -> PropertySet:
    """``props`` (plus ``extra`` condition specs) with ``info.hull_points``: one normalised
    property vector per training specimen, the points whose convex hull bounds the targets a
    model can be trusted with."""
    by_specimen: dict[str, np.ndarray] = {}
    for s, row in zip(specimens, np.asarray(raw)):
        by_specimen.setdefault(s, row)
    hull = props.normalise(np.array(list(by_specimen.values())))
    info = {
        **props.info,
        "hull_points": np.round(hull, 6).tolist(),
        "hull_space": "normalised [-1, 1], dataset properties only",
    }
    return PropertySet([*props.specs, *extra], [], info)
