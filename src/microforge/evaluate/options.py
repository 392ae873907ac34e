"""The options of ``microforge evaluate``: one dataclass, the source of the CLI's defaults.

Kept apart from :mod:`.run` (which loads PyTorch and the models) so that the command line reads
its defaults without importing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import MicroforgeError

STEPS_SWEEP = (1, 5, 10, 15, 20)  # DDIM steps of the paper's sweep


@dataclass
class EvaluationOptions:
    n: int = 500  # generated samples, one per Algorithm-1 target
    n_reference: int = 500  # real tiles (seeded subset) for FID, KID and precision/recall
    n_describe: int = 100  # samples (of each set) measured with every microstructure descriptor
    batch_size: int = 16
    steps: int | None = None  # sampling steps (None: the model's, 20)
    guidance_scale: float | None = None  # None: the model's
    seed: int = 0
    sweep_steps: tuple[int, ...] = ()  # e.g. STEPS_SWEEP; empty: no sweep
    n_sweep: int = 100  # samples per sweep point and per ablation model
    brightness: bool = False  # the 21-level brightness experiment (models trained with brightness)
    n_brightness: int = 8  # samples per brightness level
    ablation: dict[str, str] = field(default_factory=dict)  # row name -> model folder or bundled:NAME
    fingerprint: str | None = None  # a fingerprint VAE folder: adds the Fréchet distance on its fingerprints
    fid: bool = True  # FID, KID and precision/recall on Inception features (False: skipped, reported as null)

    def check(self) -> None:
        for name in ("n", "n_reference", "batch_size", "n_sweep", "n_brightness"):
            if getattr(self, name) < 1:
                raise MicroforgeError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.n < 4 or self.n_reference < 4:
            raise MicroforgeError(
                "evaluation needs at least 4 generated and 4 reference images (precision/recall use k = 3)"
            )
        if self.n_describe < 0:
            raise MicroforgeError(f"n-describe must be non-negative, got {self.n_describe}")
        if any(s < 1 for s in self.sweep_steps):
            raise MicroforgeError(f"sweep steps must be positive, got {list(self.sweep_steps)}")
