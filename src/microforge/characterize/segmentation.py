"""Classical segmentation into the 3-class metallographic map, White et al.'s normalisation
and binarisation, and segmentation scores.

The classical method, step by step (scikit-image and scipy do each step):

1. flatten the illumination with a Fourier high-pass (subtract a Gaussian low-pass),
2. threshold beta: the brightest of three multi-Otsu classes in SEM backscatter (dark primary
   alpha, mid secondary alpha, bright beta); the darker Otsu class in etched optical images,
3. clean the beta mask by area opening and area closing (drop specks, fill pinholes),
4. separate globular primary alpha from the laths of transformed beta by a granulometric
   texture cue: a morphological opening of the non-beta pixels by a disc wider than a lath
   keeps the wide, globular regions and removes the narrow laths (an opening is the classical
   granulometry texture measure of Matheron and Serra),
5. area-close the primary alpha; the non-beta pixels it does not cover are secondary alpha.

A local-standard-deviation texture cue was tried for step 4 and lowered the primary-alpha IoU on
the synthetic benchmark (0.88 vs 0.95 on equiaxed SEM), so it is not used.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..data.phase_map import BETA, N_CLASSES, PRIMARY_ALPHA, SECONDARY_ALPHA
from ..errors import MicroforgeError


def white_normalise(grey: np.ndarray, percentile: float = 90.0) -> np.ndarray:
    """White et al.'s greyscale normalisation: divide by the ``percentile`` grey level and clip
    to [0, 1]. ``(H, W)`` any range -> float32 ``(H, W)``."""
    grey = np.asarray(grey, dtype=np.float64)
    level = np.percentile(grey, percentile)
    if level <= 0:
        raise MicroforgeError(f"the {percentile}th percentile grey level is {level}; cannot normalise")
    return np.clip(grey / level, 0.0, 1.0).astype(np.float32)


def binarise(grey: np.ndarray) -> np.ndarray:
    """White et al.'s binarisation: Otsu's threshold on the normalised image. ``(H, W)`` bool,
    True where brighter than the threshold."""
    from skimage.filters import threshold_otsu

    norm = white_normalise(grey)
    if norm.min() == norm.max():
        return np.zeros(norm.shape, dtype=bool)
    return norm > threshold_otsu(norm)


def flatten_illumination(grey: np.ndarray, sigma_frac: float = 0.125) -> np.ndarray:
    """Remove slow illumination changes: subtract a Gaussian low-pass computed in the Fourier
    domain (std ``sigma_frac`` of the shorter side), keep the mean. ``(H, W)`` float64."""
    grey = np.asarray(grey, dtype=np.float64)
    sigma = sigma_frac * min(grey.shape)
    low = np.fft.irfft2(ndimage.fourier_gaussian(np.fft.rfft2(grey), sigma, n=grey.shape[1]), s=grey.shape)
    return grey - low + grey.mean()


def lath_halfwidth_px(pixel_size_um: float | None) -> int:
    """The opening radius, px, that :func:`segment_classical` reads images of ``pixel_size_um``
    micrometres per pixel with: 1.5 um (a little more than half the widest secondary-alpha lath of
    the titanium benchmark), at least 1 px; 3 px when the pixel size is unknown."""
    return max(1, round(1.5 / pixel_size_um)) if pixel_size_um else 3


def segment_classical(grey: np.ndarray, modality: str = "SEM", lath_halfwidth_px: int = 6) -> np.ndarray:
    """Classical 3-class segmentation of a micrograph (see the module docstring).

    Parameters
    ----------
    grey : ``(H, W)`` greyscale micrograph, any range.
    modality : ``"SEM"`` (beta bright) or ``"OM"`` (etched: beta dark).
    lath_halfwidth_px : radius of the opening disc, px: a little more than half the widest
        secondary-alpha lath; primary alpha narrower than twice this is taken for laths.

    Returns
    -------
    ``(H, W)`` uint8 phase map (0 primary alpha, 1 beta, 2 secondary alpha).
    """
    from skimage.filters import threshold_multiotsu, threshold_otsu
    from skimage.morphology import disk, opening, remove_small_holes, remove_small_objects

    if modality not in ("SEM", "OM"):
        raise MicroforgeError(f"modality must be SEM or OM, got {modality!r}")
    grey = np.asarray(grey, dtype=np.float64)
    if grey.ndim != 2 or min(grey.shape) < 8:
        raise MicroforgeError(f"expected a 2-D image of at least 8x8 px, got shape {grey.shape}")
    flat = ndimage.gaussian_filter(flatten_illumination(grey), 0.7)  # tame shot noise first
    if np.ptp(flat) < 1e-9:
        return np.zeros(grey.shape, dtype=np.uint8)
    if modality == "SEM":
        beta = flat > threshold_multiotsu(flat, 3)[-1]
    else:
        beta = flat < threshold_otsu(flat)
    beta = remove_small_holes(remove_small_objects(beta, max_size=2), max_size=2)
    primary = opening(~beta, disk(lath_halfwidth_px))
    primary = remove_small_holes(primary, max_size=lath_halfwidth_px**2) & ~beta
    out = np.full(grey.shape, SECONDARY_ALPHA, dtype=np.uint8)
    out[primary] = PRIMARY_ALPHA
    out[beta] = BETA
    return out


def segmentation_scores(pred: np.ndarray, truth: np.ndarray, merge_alpha: bool = False) -> dict[str, object]:
    """Per-class IoU and volume-fraction error of a predicted phase map against the truth.

    ``merge_alpha``: the truth does not tell primary from secondary alpha (binary masks), so
    classes 0 and 2 are scored as one alpha class (reported under ``primary_alpha``).
    Returns ``{"iou": [3], "fraction_pred": [3], "fraction_true": [3], "fraction_error_pts": [3]}``
    with NaN where a class is absent from both maps; fraction errors are in percentage points.
    """
    pred, truth = np.asarray(pred).astype(np.intp), np.asarray(truth).astype(np.intp)
    if pred.shape != truth.shape:
        raise MicroforgeError(f"prediction {pred.shape} and truth {truth.shape} differ in shape")
    if merge_alpha:
        pred = np.where(pred == SECONDARY_ALPHA, PRIMARY_ALPHA, pred)
        truth = np.where(truth == SECONDARY_ALPHA, PRIMARY_ALPHA, truth)
    iou, fp, ft = [], [], []
    for c in range(N_CLASSES):
        p, t = pred == c, truth == c
        union = (p | t).sum()
        iou.append(float((p & t).sum() / union) if union else float("nan"))
        fp.append(float(p.mean()))
        ft.append(float(t.mean()))
    if merge_alpha:
        iou[SECONDARY_ALPHA] = fp[SECONDARY_ALPHA] = ft[SECONDARY_ALPHA] = float("nan")
    return {
        "iou": iou,
        "fraction_pred": fp,
        "fraction_true": ft,
        "fraction_error_pts": [100.0 * (a - b) for a, b in zip(fp, ft)],
    }
