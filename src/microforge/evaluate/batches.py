"""Resumable batch stores: long evaluations write one ``.npz`` per batch and skip the batches
that already exist, so an interrupted run continues without redoing finished work and no
more than one batch of images is ever held in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import MicroforgeError
from ..io import atomic_path


def batch_path(folder: Path, index: int) -> Path:
    return folder / f"batch_{index:05d}.npz"


def run_batches(
    folder: str | Path, n_batches: int, make: Callable[[int], dict[str, np.ndarray]], desc: str, progress: bool = True
) -> None:
    """Call ``make(i)`` for every batch ``i < n_batches`` without a file yet, and write its
    arrays to ``folder/batch_<i>.npz`` (through a temporary file and a rename)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(n_batches) if not batch_path(folder, i).exists()]
    for i in tqdm(
        todo, desc=desc, disable=not progress or not todo, unit="batch", initial=n_batches - len(todo), total=n_batches
    ):
        arrays = make(i)
        with atomic_path(batch_path(folder, i)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_arrays(folder: str | Path, keys: Sequence[str], limit: int | None = None) -> dict[str, np.ndarray]:
    """Concatenate ``keys`` over the batches in ``folder`` (in order), stopping after ``limit``
    rows when given. Use for per-sample numbers and features, not for all images at once."""
    folder = Path(folder)
    files = sorted(folder.glob("batch_*.npz"))
    if not files:
        raise MicroforgeError(f"{folder}: no batches")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    rows = 0
    for f in files:
        try:
            with np.load(f, allow_pickle=False) as z:
                for k in keys:
                    parts[k].append(z[k])
                rows += len(z[keys[0]])
        except (OSError, ValueError, KeyError) as exc:
            raise MicroforgeError(f"{f}: unreadable batch ({exc.__class__.__name__}); delete it to recompute") from None
        if limit is not None and rows >= limit:
            break
    return {k: np.concatenate(v)[:limit] for k, v in parts.items()}
