"""Data copying: for each generated image, the closest training image by pixel MSE."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from ..errors import MicroforgeError


def nearest_training(generated: np.ndarray, training_batches: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Minimum pixel MSE of each generated image to a training set streamed in batches.

    Parameters
    ----------
    generated : ``(N, H, W)`` images in [0, 1].
    training_batches : iterable of ``(M_b, H, W)`` arrays in [0, 1], same H and W; the batches
        together form the training set, indexed in order.

    Returns ``(mse, index)``: ``(N,)`` float64 minimum MSE (in [0, 1]^2 grey units) and the
    ``(N,)`` int index of the closest training image.
    """
    g = torch.from_numpy(np.asarray(generated, dtype=np.float64).reshape(len(generated), -1))
    best = torch.full((len(g),), np.inf, dtype=torch.float64)
    where = torch.full((len(g),), -1, dtype=torch.long)
    g2 = (g * g).sum(1, keepdim=True)
    offset = 0
    for batch in training_batches:
        t = torch.from_numpy(np.asarray(batch, dtype=np.float64).reshape(len(batch), -1))
        if t.shape[1] != g.shape[1]:
            raise MicroforgeError(
                f"training images have {t.shape[1]} pixels, generated ones {g.shape[1]}; use the same size"
            )
        d = (g2 + (t * t).sum(1)[None] - 2.0 * g @ t.T).clamp_min(0) / g.shape[1]
        m, i = d.min(dim=1)
        better = m < best
        best[better], where[better] = m[better], i[better] + offset
        offset += len(t)
    if offset == 0:
        raise MicroforgeError("the training set for the data-copying check is empty")
    return best.numpy(), where.numpy()
