"""A PyTorch Dataset over a dataset folder, with specimen-level splits and D4 augmentation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import MicroforgeError
from ..properties import PropertySet
from .images import read_grey, read_image
from .manifest import MASK_TYPE_COLUMN, DatasetTable, read_dataset

SPLITS = ("train", "val", "test")
IGNORE_INDEX = -1  # mask value for tiles without a mask (torch's cross-entropy ignore_index)


def split_specimens(
    specimens: Sequence[str], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, list[str]]:
    """Assign specimens (never tiles) to train/val/test.

    The sorted unique specimens are shuffled by ``seed``; val and test get ``round(f * n)``
    specimens each, at least one when their fraction is positive and there are at least three
    specimens; train gets the rest. The result depends only on the set of specimens and ``seed``.
    """
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise MicroforgeError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    unique = sorted(set(specimens))
    n = len(unique)
    if n == 0:
        raise MicroforgeError("no specimens to split")
    order = [unique[i] for i in np.random.default_rng(seed).permutation(n)]
    sizes = [int(round(f * n)) for f in fractions[1:]]
    if n >= 3:
        sizes = [max(s, 1) if f > 0 else s for s, f in zip(sizes, fractions[1:])]
    n_val, n_test = sizes
    n_train = n - n_val - n_test
    if n_train < 1:
        raise MicroforgeError(f"{n} specimens are too few for split fractions {fractions}")
    return {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}


def d4_transform(array: np.ndarray, k: int) -> np.ndarray:
    """Element ``k`` (0..7) of the dihedral group on the last two axes: ``k % 4`` quarter turns,
    then a left-right flip when ``k >= 4``. ``k = 0`` is the identity."""
    out = np.rot90(array, k % 4, axes=(-2, -1))
    return np.flip(out, axis=-1) if k >= 4 else out


def d4_batch(x: torch.Tensor, ks: torch.Tensor) -> torch.Tensor:
    """:func:`d4_transform` for a batch of square tensors ``(B, ..., S, S)``: symmetry ``ks[i]``
    (0..7) on sample ``i``. One call per symmetry present, not per sample (a GPU batch stays cheap)."""
    out = torch.empty_like(x)
    ks = ks.to(x.device)
    for k in ks.unique().tolist():
        sel = (ks == k).nonzero().squeeze(1)
        xk = torch.rot90(x[sel], k % 4, (-2, -1))
        out[sel] = xk.flip(-1) if k >= 4 else xk
    return out


class MicrographDataset(Dataset):
    """Tiles of a dataset folder as tensors.

    Parameters
    ----------
    source : dataset folder or an already read :class:`DatasetTable`.
    split : ``"train"``, ``"val"``, ``"test"`` or ``None`` (all tiles).
    fractions, seed : the specimen split (:func:`split_specimens`).
    modality : keep only ``"OM"`` or ``"SEM"`` tiles (``None``: both).
    augment : random flips and quarter turns (the 8 symmetries of the square), applied alike to
        image and mask; default: on for the train split only.
    properties : normalise with these properties (a model's) instead of the dataset's own.

    Items are dicts: ``image`` float32 ``(1, H, W)`` in [0, 1]; ``mask`` int64 ``(H, W)`` with
    classes 0..2, or :data:`IGNORE_INDEX` everywhere when the tile has no mask; ``props``
    float32 ``(K,)`` normalised to [-1, 1]; ``props_raw`` float32 ``(K,)`` in physical units;
    ``specimen`` str; ``index`` int (row of the manifest); ``merge_alpha`` bool, True when the
    tile's mask was binary (alpha/beta) so that its class 0 stands for all alpha.
    """

    def __init__(
        self,
        source: str | Path | DatasetTable,
        split: str | None = "train",
        fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
        seed: int = 0,
        modality: str | None = None,
        augment: bool | None = None,
        properties: PropertySet | None = None,
    ) -> None:
        self.data = source if isinstance(source, DatasetTable) else read_dataset(source)
        table = self.data.table
        if modality is not None:
            table = table[table["modality"] == modality]
            if table.empty:
                raise MicroforgeError(f"{self.data.root}: no {modality} tiles")
        if split is not None:
            if split not in SPLITS:
                raise MicroforgeError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
            keep = set(split_specimens(self.data.table["specimen"], fractions, seed)[split])
            table = table[table["specimen"].isin(keep)]
        self.table = table
        self.properties = properties or self.data.properties
        missing = [n for n in self.properties.names if n not in self.data.table.columns]
        if missing:
            raise MicroforgeError(f"{self.data.root}: dataset lacks the properties {', '.join(missing)}")
        self.augment = (split == "train") if augment is None else augment
        raw = table[self.properties.names].to_numpy(dtype=np.float64)
        self._raw = raw.astype(np.float32)
        self._norm = self.properties.normalise(raw).astype(np.float32) if len(raw) else raw.astype(np.float32)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def specimens(self) -> list[str]:
        return sorted(set(self.table["specimen"]))

    def __getitem__(self, i: int) -> dict:
        row = self.table.iloc[i]
        image = read_grey(self.data.root / row["tile"]).astype(np.float32) / 255.0
        if row["mask"]:
            mask = read_image(self.data.root / row["mask"]).astype(np.int64)
        else:
            mask = np.full(image.shape, IGNORE_INDEX, dtype=np.int64)
        if self.augment:
            k = int(torch.randint(0, 8, (1,)).item())
            image, mask = d4_transform(image, k), d4_transform(mask, k)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image))[None],
            "mask": torch.from_numpy(np.ascontiguousarray(mask)),
            "props": torch.from_numpy(self._norm[i]),
            "props_raw": torch.from_numpy(self._raw[i]),
            "specimen": row["specimen"],
            "index": int(self.table.index[i]),
            "merge_alpha": bool(row.get(MASK_TYPE_COLUMN, "") == "binary_white_is_beta"),
        }


@dataclass
class TileSplit:
    """One split's tiles in memory, in manifest order (what every trainer and the evaluator read).

    ``images`` float32 ``(N, 1, R, R)`` in [0, 1], area-resized to the requested resolution;
    ``masks`` int64 ``(N, R, R)`` phase classes, nearest-resized (``None`` unless asked for);
    ``raw`` float64 ``(N, K)`` properties in their units; ``merge_alpha`` bool ``(N,)``: the
    tile's mask is binary (alpha/beta); ``dataset`` the split's :class:`MicrographDataset`;
    ``shares`` float32 ``(N, 3, R, R)``: each class's area share of every pixel, box-averaged
    from the mask at its own resolution (:func:`class_fractions`; ``None`` unless asked for).
    """

    images: torch.Tensor
    masks: torch.Tensor | None
    raw: np.ndarray
    merge_alpha: np.ndarray
    dataset: MicrographDataset
    shares: torch.Tensor | None = None

    @property
    def specimens(self) -> list[str]:
        """The specimen of each tile, ``N`` names."""
        return list(self.dataset.table["specimen"])

    def __len__(self) -> int:
        return len(self.images)


def load_split(
    source: str | Path | DatasetTable,
    split: str | None,
    fractions: tuple[float, float, float],
    seed: int,
    modality: str | None = None,
    resolution: int | None = None,
    *,
    masks: bool = False,
    shares: bool = False,
    masked_only: bool = False,
    properties: PropertySet | None = None,
    allow_empty: bool = False,
) -> TileSplit:
    """Read the tiles of one specimen split (:func:`split_specimens`) into a :class:`TileSplit`.

    ``resolution`` px (``None``: the tiles' own size); ``masks`` also reads the phase maps (a
    tile without one gets class 0 everywhere); ``shares`` also gives each class's area share per
    pixel (:func:`class_fractions` of the masks at their own size); ``masked_only`` keeps only tiles with a mask;
    ``properties`` orders and checks the properties as a model's; an empty split is an error
    unless ``allow_empty``.
    """

    from ..io import resize_batch

    ds = MicrographDataset(
        source, split=split, fractions=fractions, seed=seed, modality=modality, augment=False, properties=properties
    )
    if masked_only:
        keep = (ds.table["mask"] != "").to_numpy()
        ds.table, ds._raw, ds._norm = ds.table[keep], ds._raw[keep], ds._norm[keep]
    root, table = ds.data.root, ds.table
    if len(table) == 0 and not allow_empty:
        if masked_only:
            raise MicroforgeError(f"{root}: no {split} tiles with masks")
        raise MicroforgeError(f"{root}: the {split} split is empty; the dataset needs more specimens")
    if len(table) == 0:
        size = resolution or 1
        empty = torch.zeros((0, 1, size, size))
        return TileSplit(
            empty, empty[:, 0].long() if masks else None, np.zeros((0, len(ds.properties))), np.zeros(0, bool), ds
        )
    grey = np.stack([read_grey(root / t) for t in table["tile"]]).astype(np.float32) / 255.0
    size = resolution or grey.shape[-1]
    images = resize_batch(grey, size)
    maps, class_shares = None, None
    if masks or shares:
        m = np.stack([read_grey(root / p) if p else np.zeros(grey.shape[1:], np.uint8) for p in table["mask"]])
        maps = torch.from_numpy(m.astype(np.int64))
        if shares:
            class_shares = class_fractions(maps, size)
        maps = nearest_maps(maps, size)
    merge = (
        (table[MASK_TYPE_COLUMN] == "binary_white_is_beta").to_numpy()
        if MASK_TYPE_COLUMN in table
        else np.zeros(len(table), bool)
    )
    raw = table[ds.properties.names].to_numpy(dtype=np.float64)
    return TileSplit(images, maps if masks else None, raw, np.asarray(merge, bool), ds, class_shares)


def onehot_map(phase_map: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` class indices -> ``(B, 3, H, W)`` float one-hot."""
    import torch.nn.functional as F

    return F.one_hot(phase_map.long().clamp(0, 2), 3).permute(0, 3, 1, 2).float()


def as_class_shares(maps: torch.Tensor) -> torch.Tensor:
    """Phase maps as class shares ``(B, 3, H, W)`` float: the one-hot of class indices
    ``(B, H, W)``, or shares ``(B, 3, H, W)`` (soft maps) as they are."""
    return maps.float() if maps.dim() == 4 else onehot_map(maps)


def nearest_maps(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Phase maps ``(N, H, W)`` (class indices) nearest-resized to ``(N, size, size)`` int64: one
    source pixel per new pixel, so classes are never mixed (unchanged when already that size)."""
    import torch.nn.functional as F

    if maps.shape[-1] == size:
        return maps.long()
    return F.interpolate(maps[:, None].float(), size=(size, size), mode="nearest")[:, 0].long()


def class_fractions(maps: torch.Tensor, size: int, chunk: int = 256) -> torch.Tensor:
    """Each class's area share of every pixel: phase maps ``(N, H, W)`` (class indices 0..2) ->
    ``(N, 3, size, size)`` float32, summing to 1 over the class axis, by box-averaging the one-hot
    map (adaptive average pooling where ``size`` does not divide ``H``). Unlike a
    nearest-resized map it keeps a colony of laths thinner than the new pixel as straight bands of
    partial share, where nearest sampling aliases them into rows of dashes."""
    import torch.nn.functional as F

    out = torch.empty((len(maps), 3, size, size), dtype=torch.float32)
    for start in range(0, len(maps), chunk):  # the full-size one-hot of a whole split can be GBs
        out[start : start + chunk] = F.interpolate(
            onehot_map(maps[start : start + chunk]), size=(size, size), mode="area"
        )
    return out
