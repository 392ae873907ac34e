"""Cutting large micrographs into square tiles, and grey-level normalisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..errors import MicroforgeError


@dataclass(frozen=True)
class Crop:
    """Pixels removed from each edge before tiling (to drop a burned-in scale bar, say)."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    @classmethod
    def parse(cls, text: str | None) -> "Crop":
        """Parse ``"top,bottom,left,right"`` in pixels (``None`` or ``""``: no crop)."""
        if not text:
            return cls()
        parts = text.split(",")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise MicroforgeError(f"--crop {text!r}: expected four integers top,bottom,left,right") from None
        if len(values) != 4 or min(values) < 0:
            raise MicroforgeError(f"--crop {text!r}: expected four non-negative integers top,bottom,left,right")
        return cls(*values)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Crop an ``(H, W, ...)`` array; raises if nothing would be left."""
        h, w = image.shape[:2]
        if self.top + self.bottom >= h or self.left + self.right >= w:
            raise MicroforgeError(f"crop {self} leaves nothing of a {w}x{h} image")
        return image[self.top : h - self.bottom, self.left : w - self.right]


def tile_origins(height: int, width: int, tile: int, overlap: int = 0) -> list[tuple[int, int]]:
    """Top-left corners ``(y, x)`` of square tiles covering an image, row by row.

    Tiles step by ``stride = tile - overlap`` from the top-left corner. Where the image does not
    divide evenly, one last row/column of tiles is added flush with the bottom/right edge, so the
    whole image is covered and no tile leaves the image.

    Parameters
    ----------
    height, width : image size in pixels.
    tile : tile side in pixels.
    overlap : pixels shared by neighbouring tiles, ``0 <= overlap < tile``.
    """
    if tile <= 0:
        raise MicroforgeError(f"tile size must be positive, got {tile}")
    if not 0 <= overlap < tile:
        raise MicroforgeError(f"overlap must be in [0, tile size), got {overlap} for tile {tile}")
    if height < tile or width < tile:
        raise MicroforgeError(f"image of {width}x{height} px is smaller than one {tile}x{tile} tile")
    stride = tile - overlap

    def starts(n: int) -> list[int]:
        s = list(range(0, n - tile + 1, stride))
        if s[-1] != n - tile:
            s.append(n - tile)
        return s

    return [(y, x) for y in starts(height) for x in starts(width)]


def iter_tiles(image: np.ndarray, tile: int, overlap: int = 0) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(y, x, tile_array)`` for the tiles of an ``(H, W, ...)`` array (see :func:`tile_origins`)."""
    for y, x in tile_origins(image.shape[0], image.shape[1], tile, overlap):
        yield y, x, image[y : y + tile, x : x + tile]


def normalise_grey(image: np.ndarray, upper_percentile: float = 90.0, lower_percentile: float = 0.0) -> np.ndarray:
    """Percentile grey-level normalisation to [0, 1].

    Values are rescaled so that the ``lower_percentile`` grey level maps to 0 and the
    ``upper_percentile`` level maps to 1, then clipped. With the defaults this is White et al.'s
    normalisation by the 90th-percentile intensity.

    Parameters
    ----------
    image : ``(H, W)`` greyscale array, any numeric dtype.

    Returns
    -------
    ``(H, W)`` ``float32`` in [0, 1]. A constant image maps to all zeros.
    """
    if not 0 <= lower_percentile < upper_percentile <= 100:
        raise MicroforgeError(
            f"percentiles must satisfy 0 <= lower < upper <= 100, got {lower_percentile}, {upper_percentile}"
        )
    image = np.asarray(image, dtype=np.float64)
    lo, hi = np.percentile(image, [lower_percentile, upper_percentile])
    if hi <= lo:
        return np.zeros(image.shape, dtype=np.float32)
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
