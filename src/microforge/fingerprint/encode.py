"""``microforge fingerprint encode``: the fingerprint of every image, one CSV row each."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.images import read_grey
from ..errors import MicroforgeError
from ..io import atomic_path, resize_batch
from .kinds import VAEKind, make_kind


def encode_images(
    paths: Sequence[str | Path],
    out_csv: str | Path,
    kind: str = "vae",
    model_dir: str | Path | None = None,
    pca: int | None = None,
    modality: str = "SEM",
    progress: bool = False,
) -> int:
    """Write the ``kind`` fingerprint of every image in ``paths`` (files, folders, datasets) to a
    CSV: ``name, image`` and one column per feature (``f0 ...``; named descriptors for
    ``descriptors``). Returns the number of images.

    Images are read as greyscale in [0, 1]; for ``vae`` and ``vae-d4`` each is area-resized to the model's
    resolution, for ``inception`` to 299 px inside the network; ``descriptors`` need images of one
    size (the PCA of their persistence images is fitted on the set).
    """
    from ..characterize.run import collect_images

    out_csv = Path(out_csv)
    if out_csv.exists():
        raise MicroforgeError(f"{out_csv}: already exists; choose another --out")
    fingerprint = make_kind(kind, model_dir, pca, modality)
    items = collect_images(paths)
    images = [read_grey(it.path).astype(np.float32) / 255.0 for it in items]
    if isinstance(fingerprint, VAEKind):  # vae, vae-d4: images of any size, each resized to the model's
        size = fingerprint.model.cfg.resolution
        images = [resize_batch(im[None], size)[0, 0].numpy() for im in images]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise MicroforgeError(
            f"--kind {kind} needs images of one size; got {len(shapes)} sizes "
            f"({', '.join(f'{w}x{h}' for h, w in sorted(shapes)[:3])} ...)"
        )
    f = fingerprint.encode(np.stack(images), progress)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "image", *fingerprint.column_names()])
        for it, row in zip(items, f):
            w.writerow([it.name, str(it.path), *[f"{v:.6g}" for v in row]])
    return len(items)
