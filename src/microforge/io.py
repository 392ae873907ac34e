"""Small file and array helpers that every layer shares: reading JSON, writing files atomically,
reading YAML mappings, quantising images to 8 bits and resizing image batches.

Atomic writes go through a temporary sibling (``NAME.tmp``) and a rename, so a killed process
never leaves half a file under the final name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .errors import MicroforgeError

if TYPE_CHECKING:
    import torch

TMP_SUFFIX = ".tmp"  # the temporary sibling of an atomic write: NAME.tmp


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise MicroforgeError(f"{path}: config file not found")
    import yaml  # PyYAML, imported on first use

    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise MicroforgeError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(loaded, dict):
        raise MicroforgeError(f"{path}: expected a mapping of config keys")
    return loaded


def read_json_file(path: str | Path, what: str) -> dict[str, Any]:
    """Read a JSON object from ``path``; a missing or malformed file is an error naming it and
    saying what it should have been (``what``)."""
    path = Path(path)
    if not path.is_file():
        raise MicroforgeError(f"{path}: not found; is {path.parent} {what}?")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MicroforgeError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MicroforgeError(f"{path}: expected a JSON object")
    return data


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield the temporary sibling ``NAME.tmp`` of ``path`` to write; when the block ends without
    error it is renamed over ``path``, otherwise it is removed."""
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(
    path: str | Path, data: Any, indent: int | None = 1, default: Callable[[Any], Any] | None = None
) -> Path:
    """Write ``data`` as JSON (and a final newline) to ``path`` atomically; returns ``path``."""
    return write_text_atomic(path, json.dumps(data, indent=indent, default=default) + "\n")


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Quantise a [0, 1] float image (any shape) to ``uint8`` 0..255, rounding to nearest."""
    return np.clip(np.rint(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)


def resize_batch(images: np.ndarray | torch.Tensor, resolution: int) -> torch.Tensor:
    """Greyscale images ``(N, H, W)`` or ``(N, 1, H, W)`` in [0, 1] -> float32 ``(N, 1, R, R)``,
    area-averaged (or bilinearly enlarged) to ``resolution`` px."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(
        np.asarray(images, dtype=np.float32) if isinstance(images, np.ndarray) else images, dtype=torch.float32
    )
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise MicroforgeError(f"expected greyscale images (N, H, W), got shape {tuple(x.shape)}")
    if x.shape[-2:] != (resolution, resolution):
        mode = "area" if x.shape[-1] >= resolution else "bilinear"
        x = F.interpolate(
            x, size=(resolution, resolution), mode=mode, **({} if mode == "area" else {"align_corners": False})
        )
    return x
