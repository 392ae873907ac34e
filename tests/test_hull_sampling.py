"""Algorithm 1: uniform sampling inside the convex hull of property vectors."""

import numpy as np
import pytest
from scipy.spatial import Delaunay

from microforge.errors import MicroforgeError
from microforge.hull import feasible_interval, in_hull, nearest_in_hull, sample_in_box, sample_in_hull


def test_uniform_over_a_square_of_two_unequal_triangles():
    # corners of the unit square plus a point on its bottom edge: Delaunay cuts it into
    # triangles of different areas, yet the samples must cover the square uniformly
    pts = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.8, 0.0]])
    tri = Delaunay(pts)
    areas = sorted(0.5 * abs(np.linalg.det(pts[s][1:] - pts[s][0])) for s in tri.simplices)
    assert len(set(np.round(areas, 6))) > 1  # unequal triangles
    x = sample_in_hull(pts, 40000, np.random.default_rng(0))
    assert in_hull(pts, x[:200]).all()
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=4, range=[[0, 1], [0, 1]])
    expected = 40000 / 16
    assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)  # 5 sigma per cell
    assert x.mean(0) == pytest.approx([0.5, 0.5], abs=0.01)
    assert x.var(0) == pytest.approx([1 / 12, 1 / 12], rel=0.03)


def test_triangle_area_weighting():
    pts = np.array([[0, 0], [3, 0], [0, 1], [3, 1], [1, 0]])  # a 3x1 rectangle with an extra edge point
    x = sample_in_hull(pts, 30000, np.random.default_rng(1))
    assert (x[:, 0] < 1).mean() == pytest.approx(1 / 3, abs=0.01)


def test_degenerate_hulls_use_their_subspace():
    rng = np.random.default_rng(2)
    plane = np.c_[rng.random((30, 2)), np.zeros(30)] @ np.array(
        [[1, 0, 1], [0, 1, -1], [0, 0, 1]], float
    )  # flat in 3-D
    x = sample_in_hull(plane, 500, rng)
    normal = np.cross(plane[1] - plane[0], plane[2] - plane[0])
    assert np.abs((x - plane[0]) @ normal).max() < 1e-9
    assert in_hull(plane, x[:50]).all()
    line = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.5, 1.0, 1.5]])
    y = sample_in_hull(line, 300, rng)
    assert np.allclose(y[:, 1], 2 * y[:, 0]) and y[:, 0].min() >= 0 and y[:, 0].max() <= 1
    assert np.allclose(sample_in_hull(np.ones((4, 3)), 5, rng), 1.0)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_few_properties(k):
    rng = np.random.default_rng(3)
    pts = rng.random((20, k))
    x = sample_in_hull(pts, 300, rng)
    assert x.shape == (300, k) and in_hull(pts, x[:40]).all()


def test_seven_properties_and_box():
    rng = np.random.default_rng(4)
    pts = rng.random((60, 7))
    x = sample_in_hull(pts, 50, rng)
    assert in_hull(pts, x).all()
    box = sample_in_box(pts.min(0), pts.max(0), 200, rng)
    assert box.shape == (200, 7) and not in_hull(pts, box).all()  # the box is bigger than the hull
    with pytest.raises(MicroforgeError):
        sample_in_hull(np.zeros((0, 3)), 5, rng)


# ------------------------------------------------------------------------ feasible targets

SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
SIMPLEX = np.eye(3)  # a flat hull: the triangle x + y + z = 1


def test_nearest_in_hull_on_a_square():
    p = nearest_in_hull(SQUARE, [2.0, 0.5])
    assert (
        np.allclose(p.target, [1.0, 0.5], atol=1e-7)
        and np.allclose(p.moved, [-1.0, 0.0], atol=1e-7)
        and p.distance == pytest.approx(1.0)
    )
    inside = nearest_in_hull(SQUARE, [0.3, 0.6])
    assert np.allclose(inside.target, [0.3, 0.6], atol=1e-7) and inside.distance == pytest.approx(0.0, abs=1e-7)
    corner = nearest_in_hull(SQUARE, [-1.0, 3.0])
    assert np.allclose(corner.target, [0.0, 1.0], atol=1e-7) and corner.distance == pytest.approx(np.sqrt(5.0))


def test_nearest_in_hull_keeps_locked_properties_or_says_it_cannot():
    p = nearest_in_hull(SQUARE, [0.5, 3.0], locked=[0])
    assert np.allclose(p.target, [0.5, 1.0], atol=1e-7) and p.moved[0] == 0.0 and p.locked == (0,)
    # locking y at 3 leaves no in-hull point: say so instead of moving a locked value
    stuck = nearest_in_hull(SQUARE, [0.5, 3.0], locked=[1])
    assert stuck.target is None and stuck.moved is None
    with pytest.raises(MicroforgeError, match="index"):
        nearest_in_hull(SQUARE, [0.5, 0.5], locked=[2])


def test_nearest_in_hull_on_a_flat_simplex():
    p = nearest_in_hull(SIMPLEX, [1.0, 1.0, 1.0])  # onto the plane x + y + z = 1, at its centre
    assert np.allclose(p.target, [1 / 3] * 3, atol=1e-7)
    q = nearest_in_hull(SIMPLEX, [0.2, 0.2, 0.9], locked=[0, 1])  # only z may move: to 0.6
    assert np.allclose(q.target, [0.2, 0.2, 0.6], atol=1e-7)
    r = nearest_in_hull(SIMPLEX, [2.0, -1.0, 0.0])  # beyond the edge: the nearest vertex
    assert np.allclose(r.target, [1.0, 0.0, 0.0], atol=1e-7)


def test_feasible_intervals_with_the_others_fixed():
    assert feasible_interval(SQUARE, [0.5, 0.5], 0) == pytest.approx((0.0, 1.0), abs=1e-7)
    assert feasible_interval(SQUARE, [7.0, 0.5], 1) is None  # x = 7 is outside whatever y is
    tri = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])  # x + y <= 2
    assert feasible_interval(tri, [0.5, 0.0], 1) == pytest.approx((0.0, 1.5), abs=1e-6)
    # on a flat hull, fixing two coordinates fixes the third
    lo, hi = feasible_interval(SIMPLEX, [0.9, 0.3, 0.5], 0)
    assert lo == pytest.approx(0.2, abs=1e-5) and hi == pytest.approx(0.2, abs=1e-5)
    spans = [
        feasible_interval(SIMPLEX, [0.2, 0.3, 0.9], j) for j in range(3)
    ]  # x = -0.2 and y = -0.1 would be needed: empty
    assert spans[0] is None and spans[1] is None and spans[2] == pytest.approx((0.5, 0.5), abs=1e-5)
