"""Contact sheets: grids of tiles with their phase maps, for people to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .images import read_grey, read_image  # noqa: E402
from .manifest import DatasetTable  # noqa: E402
from .phase_map import to_pseudo_rgb  # noqa: E402


def image_grid(
    images: Sequence[np.ndarray | None],
    titles: Sequence[str],
    ncols: int,
    out: str | Path,
    row_labels: Sequence[str] = (),
    cell_inches: float = 1.6,
) -> None:
    """Save a grid of images (``(H, W)`` greyscale in [0, 255] or ``(H, W, 3)`` RGB) as a PNG.

    ``None`` leaves a cell empty.

    ``row_labels`` (optional) label the rows at the left edge.
    """
    nrows = max(1, int(np.ceil(len(images) / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell_inches * ncols, cell_inches * nrows + 0.2), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (img, title) in enumerate(zip(images, titles)):
        if img is None:
            continue
        ax = axes.ravel()[i]
        ax.imshow(img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=7)
    for r, label in enumerate(row_labels):
        axes[r, 0].text(
            -0.08, 0.5, label, transform=axes[r, 0].transAxes, rotation=90, ha="right", va="center", fontsize=8
        )
    fig.tight_layout(pad=0.3)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def synth_contact_sheet(dataset: DatasetTable, out: str | Path, per_morphology: int = 2) -> None:
    """One row per morphology: for ``per_morphology`` specimens, the phase map and each modality
    of one tile, titled with the specimen and its yield strength and elongation."""
    table = dataset.table
    modalities = [m for m in ("OM", "SEM") if m in set(table["modality"])]
    images: list[np.ndarray | None] = []
    titles, labels = [], []
    for morphology in ("equiaxed", "bimodal", "lamellar", "basketweave"):
        rows = table[table["morphology"] == morphology]
        if rows.empty:
            continue
        labels.append(morphology)
        specimens = list(dict.fromkeys(rows["specimen"]))[:per_morphology]
        for k in range(per_morphology):
            if k >= len(specimens):
                images += [None] * (1 + len(modalities))
                titles += [""] * (1 + len(modalities))
                continue
            first = rows[rows["specimen"] == specimens[k]].iloc[0]
            tile_rows = rows[(rows["specimen"] == specimens[k]) & (rows["y"] == first["y"]) & (rows["x"] == first["x"])]
            images.append(to_pseudo_rgb(read_image(dataset.root / first["mask"])))
            titles.append(f"{specimens[k]} map\nYS {first['YS']:.0f} EF {first['EF']:.1f}")
            for m in modalities:
                images.append(read_grey(dataset.root / tile_rows[tile_rows["modality"] == m].iloc[0]["tile"]))
                titles.append(m)
    image_grid(images, titles, per_morphology * (1 + len(modalities)), out, labels)
