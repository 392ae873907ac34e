"""The report's sample grid: generated samples for up to six held-out specimens' property
vectors, beside a real tile of each (the paper's Figures 4 and 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import resize_batch, to_uint8
from .evaluator import Evaluator

GRID_VECTORS = 6  # property vectors in the sample grids (paper's Figures 4 and 5)
GRID_SAMPLES = 4  # generated samples per grid row


def sample_grid(ev: Evaluator, report: Path) -> dict[str, Any]:
    """Samples for up to 6 held-out specimens' property vectors, beside a real tile of each."""
    ds = ev.dataset("test")
    specimens = ds.specimens
    if len(specimens) < GRID_VECTORS:
        specimens = sorted(set(specimens) | set(ev.dataset("val").specimens))
    specimens = specimens[:GRID_VECTORS]
    full = ev.dataset(None)
    first = {s: i for i, s in reversed(list(enumerate(full.table["specimen"])))}
    rows = [full[first[s]] for s in specimens]
    targets = np.repeat(np.stack([r["props_raw"].numpy().astype(np.float64) for r in rows]), GRID_SAMPLES, axis=0)
    ev.generate_into(report / "grid", targets, "grid samples", measure=False)
    real = resize_batch(torch.stack([r["image"] for r in rows]), ev.cfg.resolution)[:, 0].numpy()
    np.save(report / "grid_real.npy", to_uint8(real))
    return {
        "specimens": specimens,
        "targets": [dict(zip(ev.names, map(float, r["props_raw"].numpy()))) for r in rows],
        "samples_per_vector": GRID_SAMPLES,
    }
