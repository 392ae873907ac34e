"""Is a property target inside the convex hull of the training data?

Membership is decided exactly by linear programming (scipy's HiGHS): ``x`` is in the hull of
points ``P`` when weights ``w >= 0`` with ``sum w = 1`` and ``P^T w = x`` exist. Unlike a
Delaunay triangulation this works in any dimension and for flat (degenerate) point sets.

For inverse design, :func:`nearest_in_hull` projects a target onto the hull (optionally keeping
some properties locked) and :func:`feasible_interval` gives, for one property, the values that
keep a target in the hull while the others stay fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import linprog

from .errors import MicroforgeError

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
        res = linprog(
            c, A_ub=a_ub, b_ub=np.concatenate([x, -x]), A_eq=a_eq, b_eq=[1.0], bounds=(0, None), method="highs"
        )
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


# ------------------------------------------------------------------------ feasible targets

EQUALITY_WEIGHT = 1e4  # weight of the equality rows in the penalised NNLS below


@dataclass(frozen=True)
class Projection:
    """The nearest in-hull target to a requested one (normalised units).

    ``target`` ``(K,)`` is the projected point, or ``None`` when no in-hull point keeps the
    locked values; ``distance`` its Euclidean distance to the request over the unlocked
    properties; ``moved`` ``(K,)`` the change per property (0 for the locked ones)."""

    target: np.ndarray | None
    distance: float
    moved: np.ndarray | None
    locked: tuple[int, ...]


def nearest_in_hull(
    points: np.ndarray, target: np.ndarray, locked: Sequence[int] = (), tol: float = TOLERANCE
) -> Projection:
    """Project ``target`` ``(K,)`` onto the convex hull of ``points`` ``(N, K)`` (same normalised
    units), moving only the properties not in ``locked`` (indices).

    The quadratic program ``min ||P^T w - x||^2`` over the unlocked coordinates, subject to
    ``w >= 0``, ``sum w = 1`` and ``(P^T w)_j = x_j`` for the locked ``j``, is solved as a
    non-negative least-squares problem (scipy's ``nnls``, an exact active-set QP solver for
    ``w >= 0``) with the equalities as rows weighted by 1e4: scipy has no general QP solver, and
    this keeps them to about 1e-8. Whether any in-hull point keeps the locked values is decided
    first, exactly, by linear programming.
    """
    from scipy.optimize import nnls

    points, x = _hull_inputs(points, target)
    locked = tuple(sorted({int(j) for j in locked}))
    if any(j < 0 or j >= len(x) for j in locked):
        raise MicroforgeError(f"locked property index out of range 0..{len(x) - 1}: {locked}")
    if locked and _feasible_weights(points, x, locked) is None:
        return Projection(None, float("nan"), None, locked)
    free = [j for j in range(len(x)) if j not in locked]
    rows = [points.T[free], EQUALITY_WEIGHT * np.ones((1, len(points)))]
    rhs = [x[free], [EQUALITY_WEIGHT]]
    if locked:
        rows.append(EQUALITY_WEIGHT * points.T[list(locked)])
        rhs.append(EQUALITY_WEIGHT * x[list(locked)])
    w, _ = nnls(np.vstack(rows), np.concatenate(rhs), maxiter=50 * len(points))
    projected = points.T @ (w / w.sum())
    projected[list(locked)] = x[list(locked)]
    moved = projected - x
    moved[np.abs(moved) < tol] = 0.0
    return Projection(projected, float(np.linalg.norm(moved)), moved, locked)


def feasible_interval(points: np.ndarray, target: np.ndarray, j: int) -> tuple[float, float] | None:
    """The values of property ``j`` that keep ``target`` ``(K,)`` in the hull of ``points``
    ``(N, K)`` with every other property fixed: ``(low, high)`` from two linear programs
    (minimise and maximise ``(P^T w)_j``), or ``None`` when no value does."""
    points, x = _hull_inputs(points, target)
    others = tuple(i for i in range(len(x)) if i != j)
    if not 0 <= j < len(x):
        raise MicroforgeError(f"property index out of range 0..{len(x) - 1}: {j}")
    ends = []
    for sign in (1.0, -1.0):
        w = _feasible_weights(points, x, others, objective=sign * points[:, j])
        if w is None:
            return None
        ends.append(float(points[:, j] @ w))
    return min(ends), max(ends)


def _feasible_weights(
    points: np.ndarray, x: np.ndarray, fixed: Sequence[int], objective: np.ndarray | None = None, tol: float = TOLERANCE
) -> np.ndarray | None:
    """Hull weights ``w (N,)`` with ``(P^T w)_i`` within ``tol`` of ``x_i`` for every ``i`` in
    ``fixed``, minimising ``objective . w`` (any such weights when ``None``); ``None`` if there are none."""
    n, fixed = len(points), list(fixed)
    c = np.zeros(n) if objective is None else np.asarray(objective, dtype=np.float64)
    a_ub = np.vstack([points.T[fixed], -points.T[fixed]]) if fixed else None
    b_ub = np.concatenate([x[fixed] + tol, -x[fixed] + tol]) if fixed else None
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=np.ones((1, n)), b_eq=[1.0], bounds=(0, None), method="highs")
    return res.x if res.status == 0 else None


def _hull_inputs(points: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    points = np.asarray(points, dtype=np.float64)
    x = np.asarray(target, dtype=np.float64).ravel()
    if points.ndim != 2 or len(points) == 0:
        raise MicroforgeError("the hull needs at least one point")
    if x.shape[0] != points.shape[1]:
        raise MicroforgeError(f"the target has {x.shape[0]} values, the hull points {points.shape[1]}")
    if not np.isfinite(x).all():
        raise MicroforgeError("the target holds NaN or infinite values")
    return points, x
