"""Procedural titanium microstructures: the exact 3-class phase map of a specimen field.

Written by hand because no library draws alpha/beta titanium morphologies. The building blocks
are standard: Voronoi tessellations (scipy's cKDTree) on domain-warped coordinates for grains,
globules and colonies, and cosine lath profiles for the alpha/beta lamellae. Every phase is cut
from a continuous score at a quantile, so each specimen field has exactly the requested
phase fractions (to one pixel); tiles of it vary around them, as real tiles do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..phase_map import BETA, PRIMARY_ALPHA, SECONDARY_ALPHA
from .params import SpecimenParams

# Burgers-variant-like lath directions inside one prior-beta grain, radians (three at 60 degrees).
LATH_VARIANTS = np.deg2rad([0.0, 60.0, 120.0])


@dataclass
class Microstructure:
    """One specimen field.

    Attributes
    ----------
    phase_map : ``(H, W)`` ``uint8``, classes 0 primary alpha, 1 beta, 2 secondary alpha.
    region : ``(H, W)`` ``int64``, an id per grain, globule or colony (for orientation contrast
        and etched boundaries in the renderers).
    contrast : ``(H, W)`` ``float32``, a per-region orientation value ~ N(0, 1).
    boundary : ``(H, W)`` bool, the boundaries an etchant attacks: between primary-alpha grains,
        around primary alpha, and along prior-beta grain boundaries.
    """

    phase_map: np.ndarray
    region: np.ndarray
    contrast: np.ndarray
    boundary: np.ndarray


def smooth_noise(shape: tuple[int, int], scale_px: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian random field ``shape`` with correlation length ~ ``scale_px``, zero mean, unit std.

    Large scales are filtered on a coarse grid and upsampled bilinearly, which keeps the cost
    independent of the scale.
    """
    h, w = shape
    factor = max(1, int(scale_px // 4))
    small = rng.standard_normal((h // factor + 2, w // factor + 2))
    small = ndimage.gaussian_filter(small, max(scale_px / factor, 0.5), mode="wrap")
    field = ndimage.zoom(small, factor, order=1)[:h, :w] if factor > 1 else small[:h, :w]
    std = field.std()
    return ((field - field.mean()) / (std if std > 0 else 1.0)).astype(np.float32)


def jittered_seeds(shape: tuple[int, int], spacing: float, rng: np.random.Generator, jitter: float = 0.4) -> np.ndarray:
    """Seed points ``(N, 2)`` (y, x) on a jittered square grid of ``spacing`` px covering the
    field plus one spacing of margin, so that no cell is cut short by the field's edge."""
    h, w = shape
    ys = np.arange(-spacing, h + spacing, spacing)
    xs = np.arange(-spacing, w + spacing, spacing)
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)
    return grid + rng.uniform(-jitter, jitter, size=grid.shape) * spacing


def warped_coords(shape: tuple[int, int], amplitude: float, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Pixel centres ``(H*W, 2)`` displaced by a smooth random field (curved grain boundaries)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy += amplitude * smooth_noise(shape, scale, rng)
    xx += amplitude * smooth_noise(shape, scale, rng)
    return np.stack([yy.ravel(), xx.ravel()], -1)


def voronoi(coords: np.ndarray, seeds: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances ``(P, k)`` to, and indices ``(P, k)`` of, the ``k`` nearest seeds of each point."""
    dist, idx = cKDTree(seeds).query(coords, k=k)
    if k == 1:
        dist, idx = dist[:, None], idx[:, None]
    return dist, idx


def lath_profile(
    coords: np.ndarray, theta: np.ndarray, phase: np.ndarray, spacing: float, wobble: np.ndarray
) -> np.ndarray:
    """Cosine lath profile ``(P,)`` in [-1, 1]: ``cos(2 pi u / spacing + phase + wobble)``, with
    ``u`` the coordinate across laths of direction ``theta`` (radians, per point)."""
    u = coords[:, 1] * np.sin(theta) - coords[:, 0] * np.cos(theta)
    return np.cos(2.0 * np.pi * u / spacing + phase + wobble)


def quantile_mask(score: np.ndarray, fraction: float, within: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the ``fraction`` of points (of ``within``, if given) with the lowest score.

    Ranking (not thresholding) makes the fraction exact even where scores tie.
    """
    pool = np.flatnonzero(within) if within is not None else np.arange(score.size)
    n = int(round(fraction * pool.size))
    mask = np.zeros(score.size, dtype=bool)
    if n > 0:
        order = np.argsort(score[pool], kind="stable")
        mask[pool[order[:n]]] = True
    return mask


def elongated_cells(coords: np.ndarray, seeds: np.ndarray, theta: np.ndarray, aspect: float, k: int = 8) -> np.ndarray:
    """Index ``(P,)`` of the cell of each point, where cell ``i`` is stretched by ``aspect`` along
    direction ``theta[i]`` (radians): the nearest of the ``k`` isotropically nearest seeds under
    that seed's anisotropic metric. Gives needle-like lath packets; ``aspect=1`` is Voronoi."""
    k = min(k, len(seeds))
    _, cand = voronoi(coords, seeds, k)
    dy = coords[:, None, 0] - seeds[cand, 0]
    dx = coords[:, None, 1] - seeds[cand, 1]
    c, s = np.cos(theta[cand]), np.sin(theta[cand])
    along, across = dx * c + dy * s, -dx * s + dy * c
    best = np.argmin((along / aspect) ** 2 + across**2, axis=1)
    return cand[np.arange(len(coords)), best]


def _transformed_beta(
    shape: tuple[int, int],
    coords: np.ndarray,
    transformed: np.ndarray,
    p: SpecimenParams,
    px: float,
    rng: np.random.Generator,
    grains: tuple[np.ndarray, np.ndarray] | None,
    aspect: float,
    wobble_strength: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split the transformed-beta points into retained beta and secondary-alpha laths.

    ``grains`` is ``(grain_seeds, grain_theta)``: lath directions in a prior-beta grain take one
    of three variants of the grain's direction; ``None`` draws directions freely. Colonies are
    packets stretched ``aspect`` times along their laths.

    Returns the class of every point ``(P,)`` (only ``transformed`` points are meaningful), the
    colony index ``(P,)`` and the per-colony orientation contrast ``(n_colonies,)``.
    """
    colony_size = p.colony_size_um / px
    seeds = jittered_seeds(shape, colony_size / np.sqrt(aspect), rng)
    n_col = len(seeds)
    if grains is None:
        theta = rng.uniform(0, np.pi, n_col)
    else:
        grain_seeds, grain_theta = grains
        _, seed_grain = voronoi(seeds, grain_seeds, 1)
        theta = grain_theta[seed_grain[:, 0]] + LATH_VARIANTS[rng.integers(0, 3, n_col)] + rng.normal(0, 0.08, n_col)
    cidx = elongated_cells(coords, seeds, theta, aspect)
    t_px = p.lath_thickness_um / px
    spacing = t_px / (1.0 - p.beta_in_transformed) if p.beta_in_transformed < 1 else 4 * t_px
    wobble = wobble_strength * smooth_noise(shape, 2.5 * spacing, rng).ravel()
    # laths run along the packet: their normal is theta + 90 degrees
    profile = lath_profile(coords, theta[cidx] + np.pi / 2, rng.uniform(0, 2 * np.pi, n_col)[cidx], spacing, wobble)
    beta = quantile_mask(profile, p.beta_in_transformed, within=transformed)
    classes = np.where(beta, BETA, SECONDARY_ALPHA).astype(np.uint8)
    return classes, cidx, rng.standard_normal(n_col)


def generate_microstructure(
    p: SpecimenParams, shape: tuple[int, int], pixel_size_um: float, rng: np.random.Generator
) -> Microstructure:
    """Draw the phase map of one specimen field.

    Parameters
    ----------
    p : the specimen's parameters.
    shape : field size ``(H, W)`` in pixels (square fields are what the benchmark uses).
    pixel_size_um : micrometres per pixel.
    rng : random generator; the same state gives the same field.
    """
    h, w = shape
    px = pixel_size_um
    if p.morphology in ("equiaxed", "bimodal"):
        d = p.primary_alpha_size_um / px
        coords = warped_coords(shape, 0.15 * d, 0.5 * d, rng)
        if p.morphology == "equiaxed":
            # alpha grains tile the plane; beta sits on boundaries and, most, at triple points
            dist, gidx = voronoi(coords, jittered_seeds(shape, d, rng), 3)
            score = (dist[:, 1] - dist[:, 0]) + 0.5 * (dist[:, 2] - dist[:, 0])
            score += 0.08 * d * smooth_noise(shape, 0.3 * d, rng).ravel()
            primary = ~quantile_mask(score, 1.0 - p.primary_alpha_fraction)
        else:
            # globules whose area fraction is f_p: spacing s with pi d^2 / (4 s^2) = f_p
            spacing = max(d * np.sqrt(np.pi / (4.0 * p.primary_alpha_fraction)), 0.9 * d)
            seeds = jittered_seeds(shape, spacing, rng)
            dist, gidx = voronoi(coords, seeds, 1)
            radius = rng.uniform(0.75, 1.25, len(seeds))[gidx[:, 0]]
            score = dist[:, 0] / radius + 0.06 * d * smooth_noise(shape, 0.4 * d, rng).ravel()
            primary = quantile_mask(score, p.primary_alpha_fraction)
        grain = gidx[:, 0]
        grain_contrast = rng.standard_normal(grain.max() + 1)
        classes, cidx, colony_contrast = _transformed_beta(shape, coords, ~primary, p, px, rng, None, 1.5, 0.6)
    else:
        big = p.prior_beta_grain_um / px
        coords = warped_coords(shape, 0.06 * big, 0.5 * big, rng)
        grain_seeds = jittered_seeds(shape, big, rng, jitter=0.3)
        dist, gidx = voronoi(coords, grain_seeds, 2)
        grain = gidx[:, 0]
        score = (dist[:, 1] - dist[:, 0]) + 0.3 * (p.primary_alpha_size_um / px) * smooth_noise(shape, 6.0, rng).ravel()
        primary = quantile_mask(score, p.primary_alpha_fraction)
        n_grains = grain.max() + 1
        grain_theta = rng.uniform(0, np.pi, len(grain_seeds))
        grain_contrast = rng.standard_normal(n_grains)
        # basketweave: short, broken needles; lamellar: broad colonies of straight laths
        aspect, wobble = (4.0, 1.2) if p.morphology == "basketweave" else (1.5, 0.6)
        grains = (grain_seeds, grain_theta)
        classes, cidx, colony_contrast = _transformed_beta(shape, coords, ~primary, p, px, rng, grains, aspect, wobble)
    classes[primary] = PRIMARY_ALPHA
    # Regions: each primary grain/globule, and each (grain, colony) pair of transformed beta.
    n_col = colony_contrast.size
    grain = grain.astype(np.int64)
    region = np.where(primary, grain, grain.max() + 1 + grain * n_col + cidx)
    contrast = np.where(primary, grain_contrast[grain], 0.5 * grain_contrast[grain] + colony_contrast[cidx])
    etch_key = np.where(primary, grain, -1) if p.morphology in ("equiaxed", "bimodal") else grain
    boundary = region_boundaries(etch_key.reshape(h, w))
    return Microstructure(
        classes.reshape(h, w), region.reshape(h, w), contrast.astype(np.float32).reshape(h, w), boundary
    )


def region_boundaries(region: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels whose right or lower neighbour lies in another region."""
    edge = np.zeros(region.shape, dtype=bool)
    edge[:, :-1] |= region[:, 1:] != region[:, :-1]
    edge[:-1, :] |= region[1:, :] != region[:-1, :]
    return edge
