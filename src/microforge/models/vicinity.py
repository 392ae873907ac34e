"""Hard vicinity for many continuous labels (CcGAN, Ding et al. 2021; CCDM, Ding et al. 2024),
extended to K properties as TiM3's appendix A does: one bandwidth and one radius per dimension.

Labels are the normalised property vectors ``(N, K)`` of the training images, one per image
(many tiles share their specimen's vector). CcGAN's hard vicinal discriminator loss (HVDL) draws,
per step:

* target labels ``y' = y_u + sigma * eps`` around *unique* training label vectors ``y_u``
  (uniformly over the unique vectors, not over images), redrawing ``eps`` while no real image
  lies in the hard vicinity ``|y_j,d - y'_d| <= kappa_d`` for every dimension ``d``;
* one real image uniformly among those in the vicinity of each target;
* one fake label uniformly in the box ``y' +- kappa``, which the generator is given, while the
  discriminator judges the generated image under ``y'``.

TiM3's "at most 64 images per property vector" caps the *training set*: :func:`cap_per_vector`
keeps at most 64 images of each unique label vector (a seeded draw), so that specimens with many
tiles do not dominate; the vicinity itself holds every remaining image within kappa.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import MicroforgeError

MAX_PER_VECTOR = 64  # images kept per unique property vector (TiM3 appendix A)


def kernel_sigma(labels: np.ndarray) -> np.ndarray:
    """Per-dimension noise std of the vicinal labels: CcGAN's rule of thumb ``1.06 std N^(-1/5)``.

    ``labels`` ``(N, K)``, one row per training image; returns ``(K,)``. ``std`` and ``N`` are
    taken over all ``N`` image labels, repeats included, as in CcGAN."""
    labels = _as_labels(labels)
    return 1.06 * labels.std(axis=0) * len(labels) ** (-0.2)


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


def cap_per_vector(labels: np.ndarray, max_count: int = MAX_PER_VECTOR, seed: int = 0) -> np.ndarray:
    """Indices (sorted) of the images kept when each unique label vector keeps at most
    ``max_count`` images, drawn without replacement by a generator seeded with ``seed``.

    ``labels`` ``(N, K)``; returns ``(M,)`` with ``M <= N``."""
    labels = _as_labels(labels)
    if max_count < 1:
        raise MicroforgeError(f"max_per_vector must be at least 1, got {max_count}")
    _, group = np.unique(labels, axis=0, return_inverse=True)
    rng = np.random.default_rng(seed)
    keep = []
    for g in range(group.max() + 1):
        members = np.flatnonzero(group.ravel() == g)
        keep.append(members if len(members) <= max_count else rng.choice(members, max_count, replace=False))
    return np.sort(np.concatenate(keep))


def hard_vicinity(labels: np.ndarray, target: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """Indices (ascending) of the labels within ``kappa`` of ``target`` in every dimension.

    ``labels`` ``(N, K)``, ``target`` and ``kappa`` ``(K,)``."""
    labels = _as_labels(labels)
    target, kappa = np.asarray(target, dtype=np.float64), np.asarray(kappa, dtype=np.float64)
    return np.flatnonzero((np.abs(labels - target) <= kappa + 1e-12).all(axis=1))


def vicinal_batch(
    labels: np.ndarray, batch: int, sigma: np.ndarray, kappa: np.ndarray, gen: torch.Generator, max_tries: int = 100
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A training batch for the hard vicinal losses (HVDL).

    For each of ``batch`` draws: a unique label vector chosen uniformly, perturbed by
    ``sigma * N(0, 1)`` per dimension (the noise redrawn while the hard vicinity is empty), a
    real image chosen uniformly in the vicinity, and a fake label uniform in ``target +- kappa``.
    Returns ``(targets (B, K), image indices (B,), fake labels (B, K))``. Randomness comes only
    from ``gen``, so a seeded step gives the same batch.
    """
    labels = _as_labels(labels)
    unique = np.unique(labels, axis=0)
    sigma, kappa = np.asarray(sigma, dtype=np.float64), np.asarray(kappa, dtype=np.float64)
    targets, picks, fakes = [], [], []
    for _ in range(batch):
        centre = unique[int(torch.randint(0, len(unique), (1,), generator=gen))]
        for _ in range(max_tries):
            y = centre + sigma * torch.randn(labels.shape[1], generator=gen, dtype=torch.float64).numpy()
            near = hard_vicinity(labels, y, kappa)
            if len(near):
                break
        else:
            raise MicroforgeError(
                "no real image lies in the hard vicinity of the drawn labels; raise the vicinity multiplier m"
            )
        targets.append(y)
        picks.append(int(near[int(torch.randint(0, len(near), (1,), generator=gen))]))
        fakes.append(y + kappa * (2.0 * torch.rand(labels.shape[1], generator=gen, dtype=torch.float64).numpy() - 1.0))
    return np.asarray(targets), np.asarray(picks), np.asarray(fakes)


def _as_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 2 or len(labels) == 0:
        raise MicroforgeError(f"labels must be a non-empty (N, K) array, got shape {labels.shape}")
    if not np.isfinite(labels).all():
        raise MicroforgeError("labels hold NaN or infinite values")
    return labels
