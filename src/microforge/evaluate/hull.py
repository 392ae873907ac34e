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
