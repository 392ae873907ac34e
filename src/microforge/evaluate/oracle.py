"""Oracle property accuracy on the synthetic benchmark.

The benchmark's properties are functions of a specimen's microstructure (its relations,
:mod:`microforge.data.synth.relations`). The oracle measures that microstructure on an image's
phase map, rebuilds the specimen parameters, and applies the same relations: a judge that needs
no trained network. Its own error, measured on real benchmark tiles, is the ceiling against
which a generator's oracle accuracy is read.

What one tile can and cannot show (documented in docs/evaluation.md):

* primary-alpha fraction and the retained-beta share: phase fractions of the map;
* primary-alpha size: the mean chord of class 0 times 4/pi (the mean chord of a disc of
  diameter d is pi d / 4);
* lath thickness: the stereological width 2A/P of class 2;
* morphology: from the primary-alpha fraction (>= 0.6 equiaxed, >= 0.12 bimodal), then lath
  thickness (>= 1.1 um lamellar, else basketweave), following the benchmark's ranges;
* colony size: colonies (20-60 um) are larger than a 32 um tile, so it is not measured; the
  midpoint of the morphology's range is used.
"""

from __future__ import annotations

import numpy as np

from ..characterize.lamellae import lamella_stats
from ..characterize.statistics import chord_lengths
from ..data.phase_map import BETA, PRIMARY_ALPHA, SECONDARY_ALPHA, phase_fractions
from ..data.synth.params import PARAM_RANGES, SpecimenParams
from ..data.synth.relations import PROPERTY_NAMES, noiseless_properties
from ..errors import MicroforgeError

EQUIAXED_MIN_FRACTION = 0.6  # primary alpha at or above: equiaxed (benchmark ranges 0.65-0.90)
BIMODAL_MIN_FRACTION = 0.12  # at or above: bimodal (0.20-0.55); below: a transformed structure
LAMELLAR_MIN_LATH_UM = 1.1  # laths at least this thick: lamellar (1-3 um), else basketweave (0.5-1.2 um)


def _mid(morphology: str, key: str) -> float:
    lo, hi = PARAM_RANGES[morphology][key]
    return 0.5 * (lo + hi)


def measure_params(phase_map: np.ndarray, pixel_size_um: float) -> SpecimenParams:
    """Specimen parameters measured on one phase map ``(H, W)`` (classes 0..2) whose pixels are
    ``pixel_size_um`` micrometres wide. See the module docstring for each estimate."""
    if pixel_size_um <= 0 or not np.isfinite(pixel_size_um):
        raise MicroforgeError(f"pixel size must be a positive number of micrometres, got {pixel_size_um}")
    phase_map = np.asarray(phase_map)
    f = phase_fractions(phase_map)
    f_p = float(min(f[PRIMARY_ALPHA], 0.95))
    transformed = max(1.0 - f_p, 1e-6)
    beta_share = float(np.clip(f[BETA] / transformed, 0.01, 1.0))
    lath = lamella_stats(phase_map == SECONDARY_ALPHA)
    lath_um = float(lath.width_px) * pixel_size_um if np.isfinite(lath.width_px) else 0.8
    lath_um = float(np.clip(lath_um, 0.2, 5.0))
    chords = chord_lengths(phase_map == PRIMARY_ALPHA)
    size_um = float(4.0 / np.pi * chords.mean() * pixel_size_um) if chords.size else 1.0
    if f_p >= EQUIAXED_MIN_FRACTION:
        morphology = "equiaxed"
    elif f_p >= BIMODAL_MIN_FRACTION:
        morphology = "bimodal"
    else:
        morphology = "lamellar" if lath_um >= LAMELLAR_MIN_LATH_UM else "basketweave"
    prior = _mid(morphology, "prior_beta_grain_um") if "prior_beta_grain_um" in PARAM_RANGES[morphology] else 0.0
    return SpecimenParams(
        morphology, f_p, max(size_um, 0.1), lath_um, _mid(morphology, "colony_size_um"), prior, beta_share
    )


def oracle_properties(phase_maps: np.ndarray, pixel_size_um: float) -> np.ndarray:
    """The benchmark's 7 properties ``(N, 7)`` (order of :data:`PROPERTY_NAMES`, their units)
    implied by each measured phase map in ``(N, H, W)``."""
    rows = []
    for m in np.asarray(phase_maps):
        values = noiseless_properties(measure_params(m, pixel_size_um))
        rows.append([values[name] for name in PROPERTY_NAMES])
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(PROPERTY_NAMES))
