"""Specimen parameters of the synthetic titanium benchmark, and how they are drawn.

Lengths are in micrometres. The phase-map classes are those of :mod:`microforge.data.phase_map`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ...errors import MicroforgeError

MORPHOLOGIES = ("equiaxed", "bimodal", "lamellar", "basketweave")

# How lamellar each morphology is, 0..1. Raises impact toughness and CFS, lowers elongation.
LAMELLARITY = {"equiaxed": 0.0, "bimodal": 0.35, "basketweave": 0.7, "lamellar": 1.0}


@dataclass(frozen=True)
class SpecimenParams:
    """The physical parameters of one synthetic specimen.

    Attributes
    ----------
    morphology : one of :data:`MORPHOLOGIES`.
    primary_alpha_fraction : area fraction of class 0: globular primary alpha (equiaxed, bimodal)
        or grain-boundary alpha (lamellar, basketweave).
    primary_alpha_size_um : primary-alpha globule diameter (equiaxed, bimodal), or the mean
        grain-boundary alpha thickness (lamellar, basketweave; derived, see :func:`sample_params`).
    lath_thickness_um : thickness of the secondary-alpha laths in transformed beta.
    colony_size_um : size of a colony (lamellar) or packet (basketweave, bimodal, equiaxed) of
        parallel laths.
    prior_beta_grain_um : prior-beta grain size (lamellar, basketweave; 0 where not applicable).
    beta_in_transformed : fraction of the transformed-beta area (all that is not class 0) that is
        retained beta; the rest is secondary alpha.
    """

    morphology: str
    primary_alpha_fraction: float
    primary_alpha_size_um: float
    lath_thickness_um: float
    colony_size_um: float
    prior_beta_grain_um: float
    beta_in_transformed: float

    def __post_init__(self) -> None:
        if self.morphology not in MORPHOLOGIES:
            raise MicroforgeError(f"unknown morphology {self.morphology!r}; expected one of {', '.join(MORPHOLOGIES)}")
        if not 0.0 <= self.primary_alpha_fraction < 1.0 or not 0.0 < self.beta_in_transformed <= 1.0:
            raise MicroforgeError(f"phase fractions out of range in {self}")
        if min(self.primary_alpha_size_um, self.lath_thickness_um, self.colony_size_um) <= 0:
            raise MicroforgeError(f"sizes must be positive in {self}")

    @property
    def target_fractions(self) -> np.ndarray:
        """Requested area fractions ``(3,)`` of (primary alpha, beta, secondary alpha)."""
        f_p = self.primary_alpha_fraction
        f_beta = (1.0 - f_p) * self.beta_in_transformed
        return np.array([f_p, f_beta, 1.0 - f_p - f_beta])

    @property
    def lamellarity(self) -> float:
        return LAMELLARITY[self.morphology]

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)

    def replace(self, **changes: float | str) -> "SpecimenParams":
        """A copy with some fields changed (for sensitivity studies and tests)."""
        return replace(self, **changes)  # type: ignore[arg-type]


# Uniform ranges (lo, hi) of each parameter by morphology. Sizes in micrometres.
PARAM_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "equiaxed": {
        "primary_alpha_fraction": (0.65, 0.90),  # mostly globular alpha, beta at triple points
        "primary_alpha_size_um": (5.0, 15.0),
        "lath_thickness_um": (0.5, 0.9),  # few, fine laths in the small beta pockets
        "colony_size_um": (4.0, 10.0),
        "beta_in_transformed": (0.55, 0.85),  # intergranular beta is mostly retained beta
    },
    "bimodal": {
        "primary_alpha_fraction": (0.20, 0.55),
        "primary_alpha_size_um": (4.0, 12.0),
        "lath_thickness_um": (0.5, 1.6),
        "colony_size_um": (6.0, 20.0),
        "beta_in_transformed": (0.15, 0.35),
    },
    "lamellar": {
        "primary_alpha_fraction": (0.02, 0.07),  # grain-boundary alpha
        "lath_thickness_um": (1.0, 3.0),
        "colony_size_um": (20.0, 60.0),
        "prior_beta_grain_um": (80.0, 160.0),
        "beta_in_transformed": (0.10, 0.25),
    },
    "basketweave": {
        "primary_alpha_fraction": (0.01, 0.04),  # thin, broken grain-boundary alpha
        "lath_thickness_um": (0.5, 1.2),
        "colony_size_um": (4.0, 12.0),
        "prior_beta_grain_um": (60.0, 140.0),
        "beta_in_transformed": (0.12, 0.30),
    },
}


def sample_params(rng: np.random.Generator, morphology: str) -> SpecimenParams:
    """Draw one specimen's parameters uniformly from :data:`PARAM_RANGES` for ``morphology``.

    For lamellar and basketweave specimens the grain-boundary alpha thickness is not drawn but
    follows from its area fraction and the grain size: a Voronoi grain structure of size D has
    about 2/D of boundary length per unit area, so thickness ~ f_p * D / 2.
    """
    if morphology not in PARAM_RANGES:
        raise MicroforgeError(f"unknown morphology {morphology!r}; expected one of {', '.join(MORPHOLOGIES)}")
    ranges = PARAM_RANGES[morphology]
    # Draw in a fixed order so a seed always gives the same specimen.
    drawn = {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in ranges.items()}
    grain = drawn.get("prior_beta_grain_um", 0.0)
    size = drawn.get("primary_alpha_size_um", drawn["primary_alpha_fraction"] * grain / 2.0)
    return SpecimenParams(
        morphology=morphology,
        primary_alpha_fraction=drawn["primary_alpha_fraction"],
        primary_alpha_size_um=size,
        lath_thickness_um=drawn["lath_thickness_um"],
        colony_size_um=drawn["colony_size_um"],
        prior_beta_grain_um=grain,
        beta_in_transformed=drawn["beta_in_transformed"],
    )
