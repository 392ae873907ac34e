import numpy as np
import pytest

from microforge.data.tiling import Crop, iter_tiles, normalise_grey, tile_origins
from microforge.io import to_uint8
from microforge.errors import MicroforgeError


def test_even_grid():
    origins = tile_origins(256, 192, 64)
    assert len(origins) == 4 * 3
    assert origins[:4] == [(0, 0), (0, 64), (0, 128), (64, 0)]
    assert origins[-1] == (192, 128)


def test_uneven_image_gets_flush_last_tiles():
    assert tile_origins(100, 150, 64) == [(0, 0), (0, 64), (0, 86), (36, 0), (36, 64), (36, 86)]


def test_overlap_sets_stride():
    origins = tile_origins(128, 128, 64, overlap=32)
    assert sorted({y for y, _ in origins}) == [0, 32, 64]
    assert len(origins) == 9


@pytest.mark.parametrize(
    "h,w,tile,overlap", [(300, 200, 64, 0), (129, 513, 128, 16), (64, 64, 64, 0), (1000, 777, 96, 40)]
)
def test_tiles_cover_image_and_stay_inside(h, w, tile, overlap):
    covered = np.zeros((h, w), dtype=int)
    for y, x in tile_origins(h, w, tile, overlap):
        assert 0 <= y <= h - tile and 0 <= x <= w - tile
        covered[y : y + tile, x : x + tile] += 1
    assert covered.min() >= 1


def test_iter_tiles_returns_the_slices():
    img = np.arange(100 * 90).reshape(100, 90)
    for y, x, t in iter_tiles(img, 32, 8):
        assert t.shape == (32, 32)
        assert t[0, 0] == img[y, x] and t[-1, -1] == img[y + 31, x + 31]


@pytest.mark.parametrize(
    "kwargs", [dict(tile=64, overlap=64), dict(tile=64, overlap=-1), dict(tile=0, overlap=0), dict(tile=300, overlap=0)]
)
def test_bad_tiling_is_refused(kwargs):
    with pytest.raises(MicroforgeError):
        tile_origins(256, 256, **kwargs)


def test_crop_parse_and_apply():
    crop = Crop.parse("1,24,2,3")
    assert crop == Crop(1, 24, 2, 3)
    assert crop.apply(np.zeros((100, 50))).shape == (75, 45)
    assert Crop.parse(None) == Crop()
    for bad in ("1,2,3", "a,b,c,d", "-1,0,0,0"):
        with pytest.raises(MicroforgeError):
            Crop.parse(bad)
    with pytest.raises(MicroforgeError):
        Crop(50, 50).apply(np.zeros((100, 10)))


def test_percentile_normalisation_exact():
    img = np.arange(100, dtype=float)
    out = normalise_grey(img, upper_percentile=90)  # numpy's 90th percentile of 0..99 is 89.1
    assert out[0] == 0.0
    assert out[50] == pytest.approx(50 / 89.1, rel=1e-6)
    assert out[89] == pytest.approx(89 / 89.1, rel=1e-6)
    assert (out[90:] == 1.0).all()
    lo = normalise_grey(img, upper_percentile=100, lower_percentile=10)  # 10th percentile is 9.9
    assert lo[5] == 0.0 and lo[-1] == 1.0 and lo[50] == pytest.approx((50 - 9.9) / (99 - 9.9), rel=1e-6)


def test_normalisation_edge_cases():
    assert (normalise_grey(np.full((4, 4), 7.0)) == 0).all()
    with pytest.raises(MicroforgeError):
        normalise_grey(np.zeros(3), upper_percentile=10, lower_percentile=20)
    assert to_uint8(np.array([0.0, 0.5, 1.0, 2.0])).tolist() == [0, 128, 255, 255]
