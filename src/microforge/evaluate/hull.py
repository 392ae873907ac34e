"""Is a property target inside the convex hull of the training data?

Membership is decided exactly by linear programming (scipy's HiGHS): ``x`` is in the hull of
points ``P`` when weights ``w >= 0`` with ``sum w = 1`` and ``P^T w = x`` exist. Unlike a
Delaunay triangulation this works in any dimension and for flat (degenerate) point sets.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from ..errors import MicroforgeError

TOLERANCE = 1e-6  # in normalised units: points on the boundary count as inside


def in_hull(points: np.ndarray, targets: np.ndarray, tol: float = TOLERANCE) -> np.ndarray:
    """``(M,)`` bool: whether each target row ``(M, K)`` lies in the convex hull of ``points``
    ``(N, K)`` (same, normalised units), up to ``tol`` per coordinate."""
    points = np.asarray(points, dtype=np.float64)
    targets = np.atleast_2d(np.asarray(targets, dtype=np.float64))
    if points.ndim != 2 or len(points) == 0:
        raise MicroforgeError("the hull needs at least one point")
    if targets.shape[1] != points.shape[1]:
        raise MicroforgeError(f"targets have {targets.shape[1]} values, the hull points {points.shape[1]}")
    n = len(points)
    # variables: w (n), slack s (K, >= 0) on |P^T w - x| <= s; minimise sum s
    k = points.shape[1]
    c = np.concatenate([np.zeros(n), np.ones(k)])
    a_ub = np.block([[points.T, -np.eye(k)], [-points.T, -np.eye(k)]])
    a_eq = np.concatenate([np.ones(n), np.zeros(k)])[None]
    out = []
    for x in targets:
        res = linprog(c, A_ub=a_ub, b_ub=np.concatenate([x, -x]), A_eq=a_eq, b_eq=[1.0], bounds=(0, None), method="highs")
        out.append(bool(res.status == 0 and res.fun <= tol * k))
    return np.array(out)


def sample_in_hull(points: np.ndarray, m: int, rng: np.random.Generator, rel_tol: float = 1e-9) -> np.ndarray:
    """Algorithm 1 of TiM3: ``m`` points ``(m, K)`` drawn uniformly from the convex hull of
    ``points`` ``(N, K)``.

    The hull is triangulated (``scipy.spatial.Delaunay``); a simplex is picked with probability
    proportional to its volume, and a point is drawn in it with sorted-uniform barycentric weights
    (the gaps between sorted uniforms are uniform on the simplex). A flat (degenerate) hull, whose
    points span fewer than K dimensions, is triangulated in its own subspace, found by PCA (SVD
    of the centred points; directions with singular values below ``rel_tol`` times the largest are
    dropped), and the samples are mapped back. One spanned dimension is a segment; none, a point.
    """
    from scipy.spatial import Delaunay

    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or len(points) == 0:
        raise MicroforgeError("sampling in a hull needs at least one point")
    if m < 0:
        raise MicroforgeError(f"the number of samples must be non-negative, got {m}")
    centre = points.mean(0)
    _, sing, vt = np.linalg.svd(points - centre, full_matrices=False)
    rank = int((sing > rel_tol * max(sing.max(initial=0.0), 1e-300)).sum())
    if rank == 0:
        return np.repeat(centre[None], m, axis=0)
    basis = vt[:rank]  # (rank, K): the hull's own subspace
    y = (points - centre) @ basis.T
    if rank == 1:
        lo, hi = y[:, 0].min(), y[:, 0].max()
        return centre + rng.uniform(lo, hi, (m, 1)) @ basis
    tri = Delaunay(y)
    corners = y[tri.simplices]  # (S, rank + 1, rank)
    volumes = np.abs(np.linalg.det(corners[:, 1:] - corners[:, :1]))
    pick = rng.choice(len(volumes), size=m, p=volumes / volumes.sum())
    cuts = np.sort(rng.random((m, rank)), axis=1)
    weights = np.diff(np.concatenate([np.zeros((m, 1)), cuts, np.ones((m, 1))], axis=1))  # (m, rank + 1)
    inside = np.einsum("mv,mvd->md", weights, corners[pick])
    return centre + inside @ basis


def sample_in_box(mins: np.ndarray, maxs: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """The naive alternative to Algorithm 1: ``m`` points uniform in the bounding box."""
    mins, maxs = np.asarray(mins, dtype=np.float64), np.asarray(maxs, dtype=np.float64)
    return rng.uniform(mins, maxs, (m, len(mins)))
