"""The 3-class metallographic map: class indices, colours and conversions.

A phase map is an ``(H, W)`` ``uint8`` array of class indices:

=====  ================  ======================
index  phase             colour (pseudo-RGB)
=====  ================  ======================
0      primary alpha     red    (255, 0, 0)
1      beta              cyan   (0, 255, 255)
2      secondary alpha   yellow (255, 255, 0)
=====  ================  ======================

The colours are TiM3's. On disk a map is an 8-bit greyscale PNG holding the index (0, 1, 2);
:func:`to_pseudo_rgb` gives the colour picture for people.
"""

from __future__ import annotations

import numpy as np

from ..errors import MicroforgeError

PRIMARY_ALPHA, BETA, SECONDARY_ALPHA = 0, 1, 2
N_CLASSES = 3
CLASS_NAMES = ("primary_alpha", "beta", "secondary_alpha")
PALETTE = np.array([[255, 0, 0], [0, 255, 255], [255, 255, 0]], dtype=np.uint8)

# Formats of masks that `data import` reads, by name.
MASK_TYPES = (
    "index",  # greyscale PNG with values 0, 1, 2 (this project's own format)
    "pseudo_rgb",  # TiM3 colours: red alpha, cyan beta, yellow secondary alpha
    "binary_white_is_beta",  # white = beta (incl. transformed beta), black = alpha
    "rgb_green_alpha_blue_beta_red_secondary_alpha",  # argmax channel: G alpha, B beta, R secondary alpha
)


def to_pseudo_rgb(phase_map: np.ndarray) -> np.ndarray:
    """Colour a phase map ``(H, W)`` of indices 0..2 as ``(H, W, 3)`` ``uint8`` RGB."""
    phase_map = np.asarray(phase_map)
    if phase_map.size and (phase_map.min() < 0 or phase_map.max() >= N_CLASSES):
        raise MicroforgeError(f"phase map holds values outside 0..{N_CLASSES - 1}")
    return PALETTE[phase_map.astype(np.intp)]


def phase_fractions(phase_map: np.ndarray) -> np.ndarray:
    """Area fraction of each class, ``(3,)`` summing to 1, for a map ``(..., H, W)``."""
    counts = np.bincount(np.asarray(phase_map, dtype=np.intp).ravel(), minlength=N_CLASSES)[:N_CLASSES]
    return counts / max(counts.sum(), 1)


def mask_to_phase_map(mask: np.ndarray, mask_type: str) -> np.ndarray:
    """Convert a mask image in one of :data:`MASK_TYPES` to a phase map ``(H, W)`` ``uint8``.

    Parameters
    ----------
    mask : ``(H, W)`` greyscale or ``(H, W, 3|4)`` colour array, ``uint8``.
    mask_type : one of :data:`MASK_TYPES`.

    Lossy (JPEG) masks are handled by thresholding at mid-grey (binary) or by the argmax
    channel / nearest palette colour (colour masks).
    """
    mask = np.asarray(mask)
    if mask_type not in MASK_TYPES:
        raise MicroforgeError(f"unknown mask type {mask_type!r}; expected one of {', '.join(MASK_TYPES)}")
    if mask_type in ("index", "binary_white_is_beta"):
        grey = mask if mask.ndim == 2 else mask[..., :3].mean(axis=-1)
        if mask_type == "binary_white_is_beta":
            return np.where(grey >= 128, BETA, PRIMARY_ALPHA).astype(np.uint8)
        if grey.max(initial=0) >= N_CLASSES:
            raise MicroforgeError(f"index mask holds values up to {grey.max()}, expected 0..{N_CLASSES - 1}")
        return grey.astype(np.uint8)
    if mask.ndim != 3 or mask.shape[-1] < 3:
        raise MicroforgeError(f"mask type {mask_type} needs a colour image, got shape {mask.shape}")
    rgb = mask[..., :3].astype(np.int32)
    if mask_type == "pseudo_rgb":
        dist = ((rgb[..., None, :] - PALETTE[None, None].astype(np.int32)) ** 2).sum(-1)
        return dist.argmin(-1).astype(np.uint8)
    # argmax channel: R -> secondary alpha, G -> primary alpha, B -> beta
    channel_to_class = np.array([SECONDARY_ALPHA, PRIMARY_ALPHA, BETA], dtype=np.uint8)
    return channel_to_class[rgb.argmax(-1)]
