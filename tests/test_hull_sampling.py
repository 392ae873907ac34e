"""Algorithm 1: uniform sampling inside the convex hull of property vectors."""

import numpy as np
import pytest
from scipy.spatial import Delaunay

from microforge.errors import MicroforgeError
from microforge.evaluate.hull import in_hull, sample_in_box, sample_in_hull


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
    plane = np.c_[rng.random((30, 2)), np.zeros(30)] @ np.array([[1, 0, 1], [0, 1, -1], [0, 0, 1]], float)  # flat in 3-D
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
