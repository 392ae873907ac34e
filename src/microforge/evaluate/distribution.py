"""Distances between two sets of features: Fréchet (FID), kernel (KID), and improved
precision/recall (Kynkäänniemi et al. 2019).

FID and KID are computed by torchmetrics from features that were extracted (and cached) once;
the metric objects receive them through an identity "feature extractor".
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from ..errors import MicroforgeError


class _Precomputed(nn.Module):
    """An identity module that tells torchmetrics the feature width."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _check(a: np.ndarray, b: np.ndarray, least: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = np.atleast_2d(np.asarray(a, dtype=np.float64)), np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape[1] != b.shape[1]:
        raise MicroforgeError(f"feature widths differ: {a.shape[1]} and {b.shape[1]}")
    if len(a) < least or len(b) < least:
        raise MicroforgeError(f"each set needs at least {least} samples, got {len(a)} and {len(b)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise MicroforgeError("features hold NaN or infinite values")
    return torch.from_numpy(a), torch.from_numpy(b)


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to features ``(N, D)`` and ``(M, D)``:
    ``|mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2))``. With Inception pool3 features this is FID."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    a, b = _check(real, fake)
    metric = FrechetInceptionDistance(feature=_Precomputed(a.shape[1]))
    metric.update(a, real=True)
    metric.update(b, real=False)
    return max(float(metric.compute()), 0.0)


def kernel_distance(
    real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID: the unbiased MMD^2 with the cubic polynomial kernel, mean and std over ``subsets``
    random subsets of ``min(subset_size, N, M)`` samples. Returns ``(mean, std)``."""
    from torchmetrics.image.kid import KernelInceptionDistance

    a, b = _check(real, fake)
    size = min(subset_size, len(a), len(b))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features": ours are already in memory
        metric = KernelInceptionDistance(feature=_Precomputed(a.shape[1]), subsets=subsets, subset_size=size)
    metric.update(a, real=True)
    metric.update(b, real=False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def _kth_radius(x: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """Distance from each row of ``x`` to its ``k``-th nearest other row."""
    radii = []
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i : i + chunk], x)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # +1: the row itself is at distance 0
    return torch.cat(radii)


def _covered(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    out = []
    for i in range(0, len(points), chunk):
        out.append((torch.cdist(points[i : i + chunk], centres) <= radii[None]).any(dim=1))
    return torch.cat(out)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of ``fake`` against ``real`` features.

    Each set's manifold is the union of balls around its points with radius the distance to the
    ``k``-th nearest neighbour in that set. Precision is the fraction of fake points inside the
    real manifold; recall the fraction of real points inside the fake manifold. Written here
    because no maintained package offers it without torchvision (torch-fidelity needs it).
    """
    a, b = _check(real, fake, least=k + 1)
    ra, rb = _kth_radius(a, k), _kth_radius(b, k)
    return float(_covered(b, a, ra).double().mean()), float(_covered(a, b, rb).double().mean())
