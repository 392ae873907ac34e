"""Microstructure fingerprints: White et al.'s ResNet18-VAE (:mod:`.vae`), the other kinds beside
it (:mod:`.kinds`), their cross-validated reading of labels (:mod:`.crossval`), and the
``encode`` and ``explore`` jobs (:mod:`.encode`, :mod:`.explore`)."""

from ..models.fingerprint import MODEL_TYPE
from .crossval import classify_cv, regress_cv
from .encode import encode_images
from .explore import GAMMAS, explore
from .kinds import KINDS, make_kind
from .vae import (
    RECONSTRUCTION_FILE,
    FingerprintTrainConfig,
    fingerprints,
    load_fingerprint_config,
    load_fingerprint_model,
    reconstruction_quality,
    symmetry_fingerprints,
    train_fingerprints,
)

__all__ = [
    "GAMMAS",
    "KINDS",
    "MODEL_TYPE",
    "RECONSTRUCTION_FILE",
    "FingerprintTrainConfig",
    "classify_cv",
    "encode_images",
    "explore",
    "fingerprints",
    "load_fingerprint_config",
    "load_fingerprint_model",
    "make_kind",
    "reconstruction_quality",
    "regress_cv",
    "symmetry_fingerprints",
    "train_fingerprints",
]
