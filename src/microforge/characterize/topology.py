"""Topology of grey images: sublevel-set persistent homology and persistence images.

Library choice: gudhi (INRIA's reference TDA library). Its ``CubicalComplex`` computes exact
sublevel-set persistence directly on a pixel grid (no point-cloud detour), and its
``representations.PersistenceImage`` turns diagrams into vectors, so one well-kept dependency
covers both steps; cripser would need persim beside it for the images.
"""

from __future__ import annotations

import numpy as np

from ..errors import MicroforgeError

PI_RESOLUTION = (10, 10)  # 10 x 10 persistence images (docs/characterization.md)
PI_RANGE = (0.0, 1.0, 0.0, 1.0)  # birth in [0, 1] (grey level), persistence in [0, 1]
PI_BANDWIDTH = 0.05  # Gaussian std in grey levels: half a pixel of the 10 x 10 image


def persistence_diagram(grey: np.ndarray, dimension: int = 1) -> np.ndarray:
    """Sublevel-set persistence pairs of a grey image.

    Pixels enter the filtration in order of grey level (``(H, W)``, any range; micrographs in
    [0, 1]). In dimension 1 a pair is born when a dark ring closes around a brighter region and
    dies when that region fills. Returns ``(N, 2)`` (birth, death); infinite deaths (the one
    essential H0 class) are dropped.
    """
    import gudhi

    grey = np.asarray(grey, dtype=np.float64)
    if grey.ndim != 2 or grey.size == 0:
        raise MicroforgeError(f"expected a non-empty 2-D image, got shape {grey.shape}")
    complex_ = gudhi.CubicalComplex(top_dimensional_cells=grey)
    complex_.compute_persistence(homology_coeff_field=2, min_persistence=0.0)
    pairs = np.asarray(complex_.persistence_intervals_in_dimension(dimension), dtype=np.float64).reshape(-1, 2)
    return pairs[np.isfinite(pairs[:, 1])]


def persistence_image(
    diagram: np.ndarray,
    resolution: tuple[int, int] = PI_RESOLUTION,
    bandwidth: float = PI_BANDWIDTH,
    im_range: tuple[float, float, float, float] = PI_RANGE,
) -> np.ndarray:
    """Persistence image of a diagram, ``(resolution[1], resolution[0])`` float64.

    Each pair becomes a Gaussian (std ``bandwidth``) at (birth, persistence), weighted by its
    persistence, summed on a fixed grid over ``im_range`` = (birth min, birth max, persistence
    min, persistence max). Rows run over persistence (low first), columns over birth. A fixed
    range makes images of different micrographs comparable.
    """
    from gudhi.representations import PersistenceImage

    diagram = np.asarray(diagram, dtype=np.float64).reshape(-1, 2)
    pi = PersistenceImage(
        bandwidth=bandwidth, weight=lambda x: x[1], resolution=list(resolution), im_range=list(im_range)
    )
    # gudhi takes (birth, death) and converts to (birth, persistence) itself
    flat = pi.fit_transform([diagram]) if len(diagram) else np.zeros((1, resolution[0] * resolution[1]))
    return np.asarray(flat[0]).reshape(resolution[1], resolution[0])


def persistence_pca(
    images: list[np.ndarray] | np.ndarray, n_components: int = 3, fit_count: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of a set of persistence images, fitted on the first ``fit_count`` of them (all when
    ``None``) and applied to all: Howland et al. fit the components on the experimental images and
    project the synthetic ones into them.

    Returns ``(scores (N, k), components (k, P), explained_variance_ratio (k,))`` with ``k =
    min(n_components, fit_count, P)`` and ``P`` the number of pixels of one image.
    """
    from sklearn.decomposition import PCA

    flat = np.asarray([np.asarray(i, dtype=np.float64).ravel() for i in images])
    fit = flat[: len(flat) if fit_count is None else fit_count]
    if fit.shape[0] < 2:
        raise MicroforgeError("PCA needs at least two persistence images to fit on")
    k = min(n_components, fit.shape[0], fit.shape[1])
    pca = PCA(n_components=k).fit(fit)
    return pca.transform(flat), pca.components_, pca.explained_variance_ratio_
