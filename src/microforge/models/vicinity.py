"""Hard vicinity for many continuous labels (CcGAN, Ding et al. 2021; CCDM, Ding et al. 2024),
extended to K properties as TiM3's appendix A does: one bandwidth and one radius per dimension.

Labels are the normalised property vectors ``(N, K)`` of the training images. A training step
draws target labels ``y' = y_i + sigma * eps`` around real labels, and pairs each with a real
image whose label lies in the hard vicinity of ``y'``: ``|y_j,d - y'_d| <= kappa_d`` for every
dimension ``d``. At most ``max_per_vector`` (64) images, the nearest, form one vicinity, so that
a sparse K-dimensional label space does not let one vicinity swallow the data set.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import MicroforgeError

MAX_PER_VECTOR = 64  # images in one hard vicinity (TiM3 appendix A)


def kernel_sigma(labels: np.ndarray) -> np.ndarray:
    """Per-dimension noise std of the vicinal labels: Silverman's rule, ``1.06 std N^(-1/5)``.

    ``labels`` ``(N, K)``; returns ``(K,)``. ``N`` counts the distinct label vectors (many tiles
    share their specimen's label)."""
    labels = _as_labels(labels)
    unique = np.unique(labels, axis=0)
    return 1.06 * unique.std(axis=0) * len(unique) ** (-0.2)


def vicinity_kappa(labels: np.ndarray, m: float = 1.0) -> np.ndarray:
    """Per-dimension hard-vicinity radius: ``m`` times the largest gap between sorted unique values.

    ``labels`` ``(N, K)``; returns ``(K,)`` (0 for a dimension with a single value)."""
    labels = _as_labels(labels)
    if m <= 0:
        raise MicroforgeError(f"the vicinity multiplier m must be positive, got {m}")
    out = []
    for column in labels.T:
        values = np.unique(column)
        out.append(m * float(np.diff(values).max()) if len(values) > 1 else 0.0)
    return np.asarray(out)


def hard_vicinity(labels: np.ndarray, target: np.ndarray, kappa: np.ndarray, max_count: int = MAX_PER_VECTOR) -> np.ndarray:
    """Indices of the labels within ``kappa`` of ``target`` in every dimension, nearest first
    (distance in units of kappa), at most ``max_count`` of them."""
    labels = _as_labels(labels)
    target, kappa = np.asarray(target, dtype=np.float64), np.asarray(kappa, dtype=np.float64)
    diff = np.abs(labels - target)
    inside = np.flatnonzero((diff <= kappa + 1e-12).all(axis=1))
    scaled = diff[inside] / np.where(kappa > 0, kappa, 1.0)
    return inside[np.argsort((scaled ** 2).sum(axis=1), kind="stable")[:max_count]]


def vicinal_batch(labels: np.ndarray, batch: int, sigma: np.ndarray, kappa: np.ndarray, gen: torch.Generator,
                  max_count: int = MAX_PER_VECTOR, max_tries: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """A training batch for the hard vicinal losses.

    Draws ``batch`` real labels, perturbs each by ``sigma * N(0, 1)`` (per dimension) and pairs
    each perturbed label with a real image chosen uniformly in its hard vicinity; a perturbed
    label with an empty vicinity is redrawn. Returns ``(targets (B, K), image indices (B,))``.
    Randomness comes only from ``gen``, so a seeded step gives the same batch.
    """
    labels = _as_labels(labels)
    targets, picks = [], []
    for _ in range(batch):
        for _ in range(max_tries):
            i = int(torch.randint(0, len(labels), (1,), generator=gen))
            y = labels[i] + np.asarray(sigma) * torch.randn(labels.shape[1], generator=gen, dtype=torch.float64).numpy()
            near = hard_vicinity(labels, y, kappa, max_count)
            if len(near):
                targets.append(y)
                picks.append(int(near[int(torch.randint(0, len(near), (1,), generator=gen))]))
                break
        else:
            raise MicroforgeError("no real image lies in the hard vicinity of the drawn labels; raise the vicinity multiplier m")
    return np.asarray(targets), np.asarray(picks)


def _as_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 2 or len(labels) == 0:
        raise MicroforgeError(f"labels must be a non-empty (N, K) array, got shape {labels.shape}")
    if not np.isfinite(labels).all():
        raise MicroforgeError("labels hold NaN or infinite values")
    return labels
