"""A dataset's content digest: one SHA-256 over what microforge reads from a dataset folder.

Two folders with the same digest give a trainer the same tiles, masks, properties and splits, so a
model's recorded digest says whether a dataset rebuilt elsewhere (``microforge data synth`` on
another machine, with other library versions) is the one it was trained on. The digest reads the
decoded pixels, not the PNG files' bytes, so re-encoding a PNG (another zlib, another compression
level) leaves it unchanged while any changed pixel changes it. hashlib's SHA-256 does the hashing;
the only hand-written part is the order in which the dataset's parts are fed to it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .images import read_grey
from .manifest import DatasetTable, read_dataset

DIGEST_PREFIX = "sha256:"


def _update_array(h: "hashlib._Hash", array: np.ndarray) -> None:
    """Feed an array's shape, dtype and bytes (C order) to ``h``, so that arrays of other shapes
    holding the same bytes differ."""
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).tobytes())


def dataset_digest(source: str | Path | DatasetTable, progress: bool = False) -> str:
    """The content digest of a dataset folder, ``"sha256:"`` and 64 hex digits.

    It covers, in this order: ``properties.json`` (its specs as JSON with sorted keys), the
    manifest (every column and row, in file order, floats at 17 significant digits), then each
    tile's greyscale pixels ``(H, W)`` uint8 and each mask's, in manifest order (a row without a
    mask adds nothing). ``progress`` shows a bar over the rows (about 1.5 ms a tile with its mask on 2 cores).
    """
    ds = source if isinstance(source, DatasetTable) else read_dataset(source)
    h = hashlib.sha256()
    h.update(json.dumps(ds.properties.to_json(), sort_keys=True).encode())
    h.update(ds.table.to_csv(index=False, float_format="%.17g", lineterminator="\n").encode())
    for _, row in tqdm(ds.table.iterrows(), total=len(ds.table), desc="digest", unit="tile", disable=not progress):
        _update_array(h, read_grey(ds.root / row["tile"]))
        if row["mask"]:
            _update_array(h, read_grey(ds.root / row["mask"]))
    return DIGEST_PREFIX + h.hexdigest()


def data_digests(*sources: str | Path, progress: bool = False) -> dict[str, str]:
    """Each dataset folder's path and :func:`dataset_digest`, in the order given (what a trainer
    records in its run folder and checks on ``--resume``)."""
    return {str(s): dataset_digest(s, progress=progress) for s in sources}
