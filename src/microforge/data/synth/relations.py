"""Property relations of the synthetic titanium benchmark.

These are documented, physically *motivated* relations chosen so that a model must read the
microstructure to predict the properties. They are a benchmark, not a materials model: the
coefficients are tuned to land in the ranges of TiM3's Table 4, not fitted to any alloy.
docs/synthetic_benchmark.md writes them out as equations.
"""

from __future__ import annotations

import numpy as np

from ...properties import TITANIUM_PROPERTIES
from .params import SpecimenParams

PROPERTY_NAMES = tuple(s.name for s in TITANIUM_PROPERTIES)

# Specimen-to-specimen scatter added to the noiseless relations (std, in each property's unit).
# Smaller than the training augmentation noise of TiM3's Table 4.
SPECIMEN_NOISE_STD = {"YS": 15.0, "TS": 15.0, "EF": 0.5, "RH": 0.8, "IT": 1.5, "DCS": 20.0, "CFS": 0.005}


def yield_strength(p: SpecimenParams) -> float:
    """YS in MPa: Hall-Petch terms mixed by phase fraction (rule of mixtures).

    sigma_p = 600 + 620 / sqrt(d_p)               primary alpha, d_p in um
    sigma_t = 560 + 420 / sqrt(t) + 380 / sqrt(D_c)  transformed beta, lath t and colony D_c in um
    YS      = f_p * sigma_p + (1 - f_p) * sigma_t
    """
    sigma_p = 600.0 + 620.0 / np.sqrt(p.primary_alpha_size_um)
    sigma_t = 560.0 + 420.0 / np.sqrt(p.lath_thickness_um) + 380.0 / np.sqrt(p.colony_size_um)
    f_p = p.primary_alpha_fraction
    return float(f_p * sigma_p + (1.0 - f_p) * sigma_t)


def noiseless_properties(p: SpecimenParams) -> dict[str, float]:
    """The 7 properties of a specimen before specimen noise, in their units.

    ==== ======================================================================
    YS   :func:`yield_strength`
    TS   YS * (1.04 + 0.10 f_p)                  work hardening, more with primary alpha
    EF   24 - 0.03 (YS - 800) - 5 L - 0.1 L D_c, clipped to [1.5, 20]   (%)
    RH   0.045 TS - 12                            (HRC), monotone in strength
    IT   2 + 1.4 EF + L (10 + 40 D_c / (D_c + 20)) - 0.02 (YS - 800)   (J/cm^2); lamellae deflect cracks
    DCS  150 + 1.15 YS + 12 EF                    (MPa)
    CFS  0.01 + 0.012 EF + 0.05 L                 (dimensionless)
    ==== ======================================================================

    ``L`` is the morphology's lamellarity (:data:`~.params.LAMELLARITY`), ``f_p`` the primary
    alpha fraction and ``D_c`` the colony size in um.
    """
    ys = yield_strength(p)
    f_p, lam, colony = p.primary_alpha_fraction, p.lamellarity, p.colony_size_um
    ts = ys * (1.04 + 0.10 * f_p)
    ef = float(np.clip(24.0 - 0.03 * (ys - 800.0) - 5.0 * lam - 0.1 * lam * colony, 1.5, 20.0))
    rh = 0.045 * ts - 12.0
    it = 2.0 + 1.4 * ef + lam * (10.0 + 40.0 * colony / (colony + 20.0)) - 0.02 * (ys - 800.0)
    dcs = 150.0 + 1.15 * ys + 12.0 * ef
    cfs = 0.01 + 0.012 * ef + 0.05 * lam
    return {"YS": ys, "TS": ts, "EF": ef, "RH": rh, "IT": it, "DCS": dcs, "CFS": cfs}


def specimen_properties(p: SpecimenParams, rng: np.random.Generator | None) -> dict[str, float]:
    """Properties with specimen noise (:data:`SPECIMEN_NOISE_STD`) added; ``rng=None`` adds none."""
    values = noiseless_properties(p)
    if rng is not None:
        noise = rng.normal(0.0, 1.0, size=len(PROPERTY_NAMES))
        values = {k: v + SPECIMEN_NOISE_STD[k] * z for (k, v), z in zip(values.items(), noise)}
        values["EF"] = max(values["EF"], 0.5)
        values["CFS"] = max(values["CFS"], 0.01)
    return values
