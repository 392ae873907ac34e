import numpy as np
import pytest

from microforge.characterize.lamellae import lamella_stats, split_grains, stripes
from microforge.characterize.topology import persistence_diagram, persistence_image, persistence_pca
from microforge.errors import MicroforgeError


def blobs():
    """Two dark rings (levels 0.1 and 0.3) around brighter cores (0.8 and 0.6) on white."""
    img = np.ones((60, 60))
    img[5:25, 5:25] = 0.1
    img[10:20, 10:20] = 0.8
    img[30:55, 30:55] = 0.3
    img[38:47, 38:47] = 0.6
    return img


def test_persistence_diagram_of_drawn_blobs():
    h1 = persistence_diagram(blobs(), 1)
    assert sorted(map(tuple, h1.tolist())) == [(0.1, 0.8), (0.3, 0.6)]
    h0 = persistence_diagram(blobs(), 0)  # the 0.3 ring is a second component until level 1
    assert h0.tolist() == [[0.3, 1.0]]
    assert persistence_diagram(np.zeros((5, 5))).shape == (0, 2)
    with pytest.raises(MicroforgeError):
        persistence_diagram(np.zeros(5))


def test_persistence_image_peaks_where_the_pairs_are():
    pi = persistence_image(np.array([[0.1, 0.8]]))  # birth 0.1, persistence 0.7
    assert pi.shape == (10, 10)
    row, col = np.unravel_index(pi.argmax(), pi.shape)
    assert (row, col) in {(6, 1), (7, 1), (6, 0), (7, 0)}
    assert persistence_image(np.zeros((0, 2))).sum() == 0.0
    heavier = persistence_image(np.array([[0.1, 0.8], [0.1, 0.8]]))
    assert heavier.sum() == pytest.approx(2 * pi.sum())


def test_persistence_pca_separates_two_kinds():
    a = [persistence_image(np.array([[0.1, 0.8 + 0.01 * i]])) for i in range(4)]
    b = [persistence_image(np.array([[0.5, 0.6 + 0.01 * i]])) for i in range(4)]
    scores, comps, ratio = persistence_pca(a + b, 2)
    assert scores.shape == (8, 2) and comps.shape == (2, 100) and ratio[0] > 0.9
    assert np.sign(scores[:4, 0]).tolist() == [np.sign(scores[0, 0])] * 4
    assert np.sign(scores[4:, 0]).tolist() == [-np.sign(scores[0, 0])] * 4
    with pytest.raises(MicroforgeError):
        persistence_pca([a[0]])


@pytest.mark.parametrize("angle", [0.0, 30.0, 45.0, 90.0, 120.0, 170.0])
@pytest.mark.parametrize("width", [4, 7])
def test_orientation_and_width_of_rotated_stripes(angle, width):
    stats = lamella_stats(stripes((200, 200), angle, width, width + 6))
    diff = (stats.orientation_deg - angle + 90) % 180 - 90
    assert abs(diff) < 1.0
    assert stats.width_px == pytest.approx(width, abs=0.1 * width + 0.3)
    assert stats.orientation_spread_deg < 5.0


def test_crossing_laths_have_spread_and_touching_discs_are_split():
    mixed = stripes((200, 200), 0, 4, 10) ^ stripes((200, 200), 90, 4, 10)
    assert lamella_stats(mixed).orientation_spread_deg > 10
    yy, xx = np.indices((60, 100))
    two = ((yy - 30) ** 2 + (xx - 30) ** 2 < 400) | ((yy - 30) ** 2 + (xx - 66) ** 2 < 400)
    assert split_grains(two).max() == 2
    assert lamella_stats(np.zeros((20, 20), bool)).count == 0


def test_orientation_spread_is_zero_not_minus_zero_and_undefined_for_one_lath():
    one = np.zeros((64, 64), bool)
    one[20:24, 5:60] = True  # a single lath: no spread to measure
    stats = lamella_stats(one)
    assert (
        stats.count == 1
        and np.isnan(stats.orientation_spread_deg)
        and stats.orientation_deg == pytest.approx(0.0, abs=1.0)
    )
    parallel = stripes((64, 64), 0.0, 3, 10)  # several parallel laths: exactly +0
    spread = lamella_stats(parallel).orientation_spread_deg
    assert spread == pytest.approx(0.0, abs=1e-5) and not np.signbit(spread)
