import numpy as np
import pytest

from microforge.data.phase_map import (
    BETA,
    PALETTE,
    PRIMARY_ALPHA,
    SECONDARY_ALPHA,
    mask_to_phase_map,
    phase_fractions,
    to_pseudo_rgb,
)
from microforge.errors import MicroforgeError


def test_fraction_of_a_drawn_disc():
    yy, xx = np.mgrid[0:400, 0:400]
    disc = ((yy - 199.5) ** 2 + (xx - 199.5) ** 2 <= 100.0**2).astype(np.uint8)  # class 1 inside
    f = phase_fractions(disc)
    assert f[1] == pytest.approx(np.pi * 100**2 / 400**2, rel=2e-3)
    assert f.sum() == pytest.approx(1.0)
    assert f[2] == 0.0


def test_pseudo_rgb_round_trip_and_colours():
    rng = np.random.default_rng(0)
    m = rng.integers(0, 3, (20, 30)).astype(np.uint8)
    rgb = to_pseudo_rgb(m)
    assert rgb.shape == (20, 30, 3)
    assert tuple(PALETTE[PRIMARY_ALPHA]) == (255, 0, 0) and tuple(PALETTE[BETA]) == (0, 255, 255)
    assert tuple(PALETTE[SECONDARY_ALPHA]) == (255, 255, 0)
    assert (mask_to_phase_map(rgb, "pseudo_rgb") == m).all()
    noisy = np.clip(rgb.astype(int) + rng.integers(-40, 40, rgb.shape), 0, 255).astype(np.uint8)  # JPEG-like
    assert (mask_to_phase_map(noisy, "pseudo_rgb") == m).all()
    assert (mask_to_phase_map(m, "index") == m).all()


def test_binary_and_argmax_masks():
    grey = np.array([[0, 20, 127], [128, 200, 255]], dtype=np.uint8)
    assert mask_to_phase_map(grey, "binary_white_is_beta").tolist() == [[0, 0, 0], [1, 1, 1]]
    rgb = np.array([[[200, 10, 10], [10, 200, 10], [10, 10, 200]]], dtype=np.uint8)
    out = mask_to_phase_map(rgb, "rgb_green_alpha_blue_beta_red_secondary_alpha")
    assert out.tolist() == [[SECONDARY_ALPHA, PRIMARY_ALPHA, BETA]]


def test_bad_masks():
    with pytest.raises(MicroforgeError):
        mask_to_phase_map(np.zeros((2, 2)), "nonsense")
    with pytest.raises(MicroforgeError):
        mask_to_phase_map(np.full((2, 2), 7, np.uint8), "index")
    with pytest.raises(MicroforgeError):
        mask_to_phase_map(np.zeros((2, 2), np.uint8), "pseudo_rgb")
    with pytest.raises(MicroforgeError):
        to_pseudo_rgb(np.array([[3]]))
