"""Descriptors measured on synthetic specimens against the parameters that drew them."""

import json

import numpy as np
import pytest

from microforge.characterize.descriptors import compare_sets, describe
from microforge.data.synth.config import SynthConfig
from microforge.data.phase_map import BETA, phase_fractions
from microforge.data.synth.benchmark import make_specimen
from microforge.errors import MicroforgeError

CFG = SynthConfig(field_px=384)
PX = CFG.pixel_size_um


@pytest.fixture(scope="module")
def specimens():
    return {(m, i): make_specimen(CFG, i, m) for m in ("equiaxed", "bimodal", "lamellar") for i in range(3)}


def test_fractions_and_s2_origin(specimens):
    sp = specimens[("bimodal", 0)]
    d = describe(sp.images["SEM"], sp.structure.phase_map, PX)
    truth = sp.params.target_fractions
    assert list(d["phase_fractions"].values()) == pytest.approx(truth, abs=1e-4)
    assert [d["s2"][k][0] for k in ("primary_alpha", "beta", "secondary_alpha")] == pytest.approx(truth, abs=1e-4)
    assert [d["lineal_path"][k][0] for k in ("primary_alpha", "beta", "secondary_alpha")] == pytest.approx(
        truth, abs=1e-4
    )
    json.dumps(d)  # JSON-able throughout
    assert len(d["persistence"]["image"]) == 10 and d["persistence"]["h1_pairs"] > 0


@pytest.mark.parametrize("i", range(3))
def test_globule_intercept_follows_primary_alpha_size(specimens, i):
    """Bimodal globules are near-discs of diameter d_p: mean chord of a disc is pi d / 4."""
    sp = specimens[("bimodal", i)]
    d = describe(sp.images["SEM"], sp.structure.phase_map, PX)
    expect = np.pi / 4 * sp.params.primary_alpha_size_um
    assert d["grain_size"]["mean_intercept_um"] == pytest.approx(expect, rel=0.3)


@pytest.mark.parametrize("morphology", ["lamellar", "bimodal"])
def test_lath_width_follows_lath_thickness(specimens, morphology):
    for i in range(3):
        sp = specimens[(morphology, i)]
        d = describe(sp.images["SEM"], sp.structure.phase_map, PX)
        assert d["lamellae"]["width_um"] == pytest.approx(sp.params.lath_thickness_um, rel=0.25), i


def test_bright_area_fraction_tracks_beta_in_sem(specimens):
    for sp in specimens.values():
        d = describe(sp.images["SEM"], sp.structure.phase_map, PX)
        above_065 = d["grey_area_fractions"]["fractions"][6]  # threshold 0.65: between alpha and beta levels
        assert above_065 == pytest.approx(phase_fractions(sp.structure.phase_map)[BETA], abs=0.06)


def test_compare_sets_sees_the_difference(specimens):
    eq = [
        describe(specimens[("equiaxed", i)].images["SEM"], specimens[("equiaxed", i)].structure.phase_map)
        for i in range(3)
    ]
    la = [
        describe(specimens[("lamellar", i)].images["SEM"], specimens[("lamellar", i)].structure.phase_map)
        for i in range(3)
    ]
    same = compare_sets(eq, eq, ("eq", "eq2"))
    assert same["s2"]["beta"]["discrepancy_pct"] == 0.0
    diff = compare_sets(eq, la, ("equiaxed", "lamellar"))
    assert diff["s2"]["primary_alpha"]["discrepancy_pct"] > 50
    assert diff["phase_fractions"]["primary_alpha"]["equiaxed"]["mean"] > 0.6
    assert diff["persistence_pca"]["set"] == ["equiaxed"] * 3 + ["lamellar"] * 3
    with pytest.raises(MicroforgeError):
        compare_sets(eq, [])


def test_fidelity_persistence_pca_is_fitted_on_the_reference_set_only():
    from microforge.characterize.topology import persistence_image, persistence_pca

    real = [persistence_image(np.array([[0.1 + 0.05 * i, 0.8 - 0.03 * i], [0.4, 0.2 + 0.02 * i]])) for i in range(5)]
    fake = [persistence_image(np.array([[0.7, 0.1 + 0.05 * i]])) for i in range(4)]
    alone, comps, _ = persistence_pca(real, 3)
    both, comps_both, _ = persistence_pca(real + fake, 3, fit_count=len(real))
    assert both.shape == (9, 3) and np.allclose(both[:5], alone) and np.allclose(comps_both, comps)
    refit, _, _ = persistence_pca(real + fake, 3)  # fitted on both sets, the real scores move
    assert not np.allclose(refit[:5], alone)


def test_fidelity_area_fractions_scale_each_condition_to_0_1_and_count_at_or_above():
    from microforge.characterize.statistics import condition_area_fractions, grey_histogram

    # one condition, levels 0.2 (half the pixels), 0.4 (a quarter) and 0.6: scaled to 0, 0.5, 1
    grey = np.full((8, 8), 0.2)
    grey[:2] = 0.4
    grey[2:4] = 0.6
    t, f = condition_area_fractions(np.array([grey_histogram(grey)]))
    assert np.allclose(t, np.linspace(0, 1, 10))
    assert f[0, 0] == 1.0 and f[0, -1] == pytest.approx(0.25)  # >= 1 keeps the brightest level
    assert f[0, 4] == pytest.approx(0.5) and f[0, 5] == pytest.approx(
        0.25
    )  # t = 0.44 and 0.56 around the middle level 0.5
    # a second, darker condition with the same pattern reads the same after its own scaling
    _, g = condition_area_fractions(np.array([grey_histogram(grey * 0.5)]))
    assert np.allclose(f, g, atol=0.01)
