"""Spatial statistics against exact, known cases."""

import numpy as np
import pytest

from microforge.characterize.statistics import (
    area_fraction_above,
    astm_grain_size_number,
    chord_lengths,
    discrepancy,
    lineal_path,
    mean_lineal_intercept,
    radial_average,
    run_lengths,
    two_point_correlation,
    two_point_correlation_map,
)
from microforge.errors import MicroforgeError


def checkerboard(n, cell):
    yy, xx = np.indices((n, n))
    return ((yy // cell + xx // cell) % 2).astype(bool)


@pytest.mark.parametrize("periodic", [True, False])
def test_s2_at_zero_is_the_volume_fraction(periodic):
    img = np.random.default_rng(0).random((64, 80)) < 0.3
    _, s2 = two_point_correlation(img, periodic=periodic)
    assert s2[0] == pytest.approx(img.mean(), abs=1e-12)


def test_s2_of_a_checkerboard():
    board = checkerboard(64, 1)
    r, s2 = two_point_correlation(board, r_max=4, periodic=True)
    # ring 0: the phase fraction; ring 1: 4 edge neighbours (opposite colour, 0) and
    # 4 diagonal ones at 1.41 -> ring 1 (same colour, 1/2): (4*0 + 4*0.5) / 8
    assert s2[0] == pytest.approx(0.5)
    assert s2[1] == pytest.approx(0.25)


@pytest.mark.parametrize("periodic,tol", [(True, 1e-9), (False, 0.02)])
def test_s2_map_of_a_checkerboard_is_exact(periodic, tol):
    # cells of a px: S2(dx, dy) = (1 + rho(dx) rho(dy)) / 4 with the triangle-wave
    # autocorrelation rho(d) = 1 - 2|d|/a for |d| <= a (periodic in 2a)
    a, n = 8, 64
    s2 = two_point_correlation_map(checkerboard(n, a), periodic=periodic)
    rho = lambda d: 1 - 2 * abs(((d + a) % (2 * a)) - a) / a  # noqa: E731
    for dy, dx in [(0, 0), (0, 4), (0, 8), (0, 16), (8, 8), (4, 4), (2, 6), (12, 0)]:
        expect = (1 + rho(dx) * rho(dy)) / 4
        # exact when periodic; without wrap-around the window holds partial periods
        assert s2[n // 2 + dy, n // 2 + dx] == pytest.approx(expect, abs=tol), (dy, dx)


def test_s2_non_periodic_random_tends_to_phi_squared():
    img = np.random.default_rng(1).random((128, 128)) < 0.4
    _, s2 = two_point_correlation(img, r_max=20)
    assert s2[5:].mean() == pytest.approx(img.mean() ** 2, abs=0.005)


def test_radial_average_of_a_constant():
    r, m = radial_average(np.full((9, 9), 2.0), 4)
    assert r.tolist() == [0, 1, 2, 3, 4] and np.allclose(m, 2.0)


def test_lineal_path_of_a_single_disc():
    n, radius = 400, 60.0
    yy, xx = np.indices((n, n))
    disc = (yy - 199.5) ** 2 + (xx - 199.5) ** 2 <= radius**2
    r, L = lineal_path(disc, r_max=110, axes=(1,))
    assert L[0] == pytest.approx(disc.mean(), rel=1e-12)
    # start points of a horizontal segment of length r inside a disc form the lens where the
    # disc overlaps its copy shifted by r: area 2R^2 acos(r/2R) - (r/2) sqrt(4R^2 - r^2)
    for k in (10, 40, 80, 110):
        lens = 2 * radius**2 * np.arccos(k / (2 * radius)) - k / 2 * np.sqrt(4 * radius**2 - k**2)
        assert L[k] == pytest.approx(lens / (n * (n - k)), rel=0.03), k
    assert lineal_path(disc, r_max=125, axes=(1,))[1][122:].max() == 0.0  # longer than the diameter


def test_lineal_path_exact_on_a_short_line():
    line = np.array([[1, 1, 1, 0, 1, 1, 0, 0]], dtype=bool)
    r, L = lineal_path(line, r_max=3, axes=(1,))
    # r=0: 5 of 8; r=1: (2 + 1) of 7; r=2: 1 of 6; r=3: 0 of 5
    assert L.tolist() == pytest.approx([5 / 8, 3 / 7, 1 / 6, 0.0])


def test_chords_of_drawn_stripes():
    img = np.zeros((100, 120), dtype=bool)
    for x0 in range(3, 120, 12):
        img[:, x0 : x0 + 5] = True  # stripes 5 px wide, 7 px apart
    chords = chord_lengths(img, axes=(1,))
    assert chords.size == 100 * 10 and set(chords.tolist()) == {5}
    assert chord_lengths(img, axes=(0,)).size == 0  # vertical chords all touch the edges
    assert set(chord_lengths(~img, axes=(1,)).tolist()) == {7}
    assert run_lengths(np.array([[1, 0, 1, 1]], bool)).tolist() == [1, 2]


def test_mean_lineal_intercept_of_square_grains():
    yy, xx = np.indices((100, 100))
    labels = (yy // 10) * 10 + xx // 10  # 10 x 10 px grains
    # each 100 px line crosses 9 boundaries over 99 px of length
    assert mean_lineal_intercept(labels) == pytest.approx(99 / 9)
    assert mean_lineal_intercept(np.zeros((5, 5))) == float("inf")


def test_astm_grain_size_number():
    assert astm_grain_size_number(0.113) == pytest.approx(3.0, abs=0.01)  # E112 table: G 3 <-> 0.113 mm
    assert astm_grain_size_number(0.0113) == pytest.approx(9.64, abs=0.01)
    with pytest.raises(MicroforgeError):
        astm_grain_size_number(0.0)


def test_discrepancy():
    ref = np.ones(11)
    assert discrepancy(ref, 1.1 * ref) == pytest.approx(10.0)
    assert discrepancy(ref, ref) == 0.0
    r = np.linspace(0, 1, 101)
    assert discrepancy(r, np.zeros_like(r), r) == pytest.approx(100.0)
    with pytest.raises(MicroforgeError):
        discrepancy(np.zeros(3), np.ones(3))


def test_area_fraction_above_thresholds():
    grey = np.linspace(0, 1, 1001)[None, :]
    t, f = area_fraction_above(grey)
    assert t.tolist() == pytest.approx([0.05 + 0.1 * i for i in range(10)])
    assert f == pytest.approx(1 - t, abs=1e-3)


def test_noise_std_reads_white_noise_and_ignores_planes():
    """Immerkær's estimator: white Gaussian noise of std s on a tilted plane reads s (within 3 %
    at 128 x 128), the plane alone reads 0, and a non-image is a named error."""
    from microforge.characterize.noise import noise_std

    yy, xx = np.mgrid[0:128, 0:128]
    plane = 0.3 + 0.002 * xx + 0.001 * yy
    assert noise_std(plane) == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    for s in (0.01, 0.03, 0.1):
        assert noise_std(plane + rng.normal(0.0, s, plane.shape)) == pytest.approx(s, rel=0.03)
    with pytest.raises(MicroforgeError, match=r"noise_std needs a 2-d image of at least 3 x 3 px, got shape \(2, 5\)"):
        noise_std(np.zeros((2, 5)))
