"""Reading and writing micrograph files with clear errors (Pillow underneath)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import MicroforgeError
from ..io import atomic_path


def check_image_header(path: str | Path, min_side: int = 1) -> tuple[int, int]:
    """Open only the header of an image file and return its ``(width, height)``.

    Raises :class:`MicroforgeError` naming the file when it is missing, not an image, or smaller
    than ``min_side`` px on a side. Cheap: the pixels are not decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise MicroforgeError(f"image {path} not found")
    try:
        with Image.open(path) as im:
            size = im.size
    except (OSError, ValueError) as exc:
        raise MicroforgeError(f"{path}: not a readable image ({exc.__class__.__name__})") from None
    if min(size) < min_side:
        raise MicroforgeError(
            f"{path}: {size[0]}x{size[1]} px is too small; images need at least {min_side}x{min_side} px"
        )
    return size


def read_image(path: str | Path, where: str = "") -> np.ndarray:
    """Read an image file as ``uint8``: ``(H, W)`` greyscale or ``(H, W, 3)`` RGB.

    Greyscale-looking RGB (R == G == B) stays RGB here; use :func:`read_grey` for micrographs.
    Raises :class:`MicroforgeError` naming the file (and ``where``, e.g. a table row) when the
    file is missing, empty, unreadable, or has zero width or height.
    """
    path = Path(path)
    prefix = f"{where}: " if where else ""
    if not path.is_file():
        raise MicroforgeError(f"{prefix}image {path} not found")
    if path.stat().st_size == 0:
        raise MicroforgeError(f"{prefix}image {path} is an empty file")
    try:
        with Image.open(path) as im:
            im.load()
            if im.width == 0 or im.height == 0:
                raise MicroforgeError(f"{prefix}image {path} has zero size")
            if im.mode in ("L", "RGB"):
                arr = np.asarray(im)
            elif im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                wide = np.asarray(im, dtype=np.float64)
                hi = wide.max()
                arr = (wide * (255.0 / hi) if hi > 0 else wide).round().astype(np.uint8)
            else:
                arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MicroforgeError(f"{prefix}image {path} cannot be read ({exc.__class__.__name__}: {exc})") from None
    if arr.size == 0:
        raise MicroforgeError(f"{prefix}image {path} has zero size")
    return arr


def read_grey(path: str | Path, where: str = "") -> np.ndarray:
    """Read a micrograph as ``(H, W)`` ``uint8`` greyscale (colour is averaged with Rec. 601 weights)."""
    arr = read_image(path, where)
    if arr.ndim == 3:
        arr = np.rint(arr[..., :3] @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    return arr


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write ``(H, W)`` or ``(H, W, 3)`` ``uint8`` as PNG, atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")
