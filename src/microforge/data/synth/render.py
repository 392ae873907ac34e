"""Rendering a phase map as an optical-like (OM) or SEM-like micrograph.

Written by hand: the contrast mechanisms are simple image operations (look-up, Gaussian blur,
Poisson and Gaussian noise from numpy/scipy) but their combination is specific to
metallography. All outputs are ``(H, W)`` ``float32`` in [0, 1].
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..phase_map import BETA, PRIMARY_ALPHA, SECONDARY_ALPHA
from .morphology import Microstructure, smooth_noise

MODALITIES = ("OM", "SEM")


def _grey_levels(phase_map: np.ndarray, levels: dict[int, float]) -> np.ndarray:
    lut = np.zeros(3, dtype=np.float32)
    for cls, value in levels.items():
        lut[cls] = value
    return lut[phase_map]


def render_sem(ms: Microstructure, rng: np.random.Generator) -> np.ndarray:
    """SEM-like backscatter image: beta (V-rich) bright, alpha dark with per-grain channelling
    contrast, a slow brightness drift, a 0.7 px probe blur and shot noise (~80 electrons/px)."""
    img = _grey_levels(ms.phase_map, {PRIMARY_ALPHA: 0.30, BETA: 0.86, SECONDARY_ALPHA: 0.40})
    alpha = ms.phase_map != BETA
    img += np.where(alpha, 0.075, 0.02) * ms.contrast  # orientation (channelling) contrast
    img += 0.04 * smooth_noise(img.shape, img.shape[0] / 3, rng)  # detector / charging drift
    img = ndimage.gaussian_filter(img, 0.7)
    dose = 80.0  # electrons per pixel: sets the shot-noise level
    img = rng.poisson(np.clip(img, 0, None) * dose).astype(np.float32) / dose
    img += rng.normal(0.0, 0.01, img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def render_om(ms: Microstructure, rng: np.random.Generator) -> np.ndarray:
    """Optical-like image of an etched (Kroll's reagent) section: alpha light, transformed beta
    darker, etched grain boundaries, mottled etching, a 1.3 px optical blur, uneven illumination
    (vignetting and a ramp) and camera noise."""
    img = _grey_levels(ms.phase_map, {PRIMARY_ALPHA: 0.70, BETA: 0.44, SECONDARY_ALPHA: 0.62})
    img += 0.02 * ms.contrast  # faint orientation-dependent etch tint
    img = np.where(ndimage.binary_dilation(ms.boundary), img * 0.75, img)
    img += 0.035 * smooth_noise(img.shape, 12.0, rng)  # uneven etching: mottled patches
    img = ndimage.gaussian_filter(img, 1.3)
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (0.5 * (h * h + w * w))
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (xx / w - 0.5) + np.sin(angle) * (yy / h - 0.5)).astype(np.float32)
    img *= 1.0 - 0.18 * r2 + 0.08 * ramp  # vignetting and tilted illumination
    img += rng.normal(0.0, 0.02, img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def render(ms: Microstructure, modality: str, rng: np.random.Generator) -> np.ndarray:
    """Render ``ms`` in ``modality`` (``"OM"`` or ``"SEM"``); ``(H, W)`` float32 in [0, 1]."""
    if modality == "SEM":
        return render_sem(ms, rng)
    if modality == "OM":
        return render_om(ms, rng)
    raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
