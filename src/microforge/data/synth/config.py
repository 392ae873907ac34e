"""The synthetic benchmark's configuration, loadable from YAML (configs/synth-*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import MicroforgeError
from .params import MORPHOLOGIES


@dataclass(frozen=True)
class SynthConfig:
    """The synthetic titanium benchmark (docs/synthetic_benchmark.md)."""

    n_specimens: int = 100  # docs/synthetic_benchmark.md: about 100 specimens
    field_px: int = 640  # side of each specimen's field; 25 tiles of 128 px without overlap
    tile_size: int = 128  # tiles at 64-128 px keep tiny models trainable on a CPU
    overlap: int = 0  # tiles of one specimen do not overlap: no duplicated pixels across tiles
    pixel_size_um: float = 0.25  # 0.5-3 um laths are 2-12 px wide: resolved, not aliased
    modalities: tuple[str, ...] = ("OM", "SEM")  # both renderings of every specimen
    # Share of each morphology among specimens; equal by default so no class is rare.
    morphology_weights: dict[str, float] = field(
        default_factory=lambda: {"equiaxed": 1.0, "bimodal": 1.0, "lamellar": 1.0, "basketweave": 1.0}
    )
    specimen_noise: bool = True  # specimen-to-specimen scatter on the properties, as real tests have
    seed: int = 0  # the benchmark is a pure function of this config

    def __post_init__(self) -> None:
        if self.n_specimens < 1:
            raise MicroforgeError(f"n_specimens must be at least 1, got {self.n_specimens}")
        if self.field_px < self.tile_size:
            raise MicroforgeError(f"field_px {self.field_px} is smaller than tile_size {self.tile_size}")
        if not 0 <= self.overlap < self.tile_size:
            raise MicroforgeError(f"overlap must be in [0, tile size), got {self.overlap} for tile {self.tile_size}")
        if self.pixel_size_um <= 0:
            raise MicroforgeError(f"pixel_size_um must be positive, got {self.pixel_size_um}")
        bad = [m for m in self.modalities if m not in ("OM", "SEM")]
        if bad or not self.modalities:
            raise MicroforgeError(f"modalities must be OM and/or SEM, got {list(self.modalities)}")
        unknown = [m for m in self.morphology_weights if m not in MORPHOLOGIES]
        if unknown:
            raise MicroforgeError(f"unknown morphologies {unknown}; expected {', '.join(MORPHOLOGIES)}")
        weights = list(self.morphology_weights.values())
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise MicroforgeError("morphology_weights must be non-negative with a positive sum")
