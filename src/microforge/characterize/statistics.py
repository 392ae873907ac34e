"""Spatial statistics of a phase: two-point correlation, lineal path, chords, grain size.

Written by hand (numpy/scipy) because the library that has them, PoreSpy, pulls in about
0.85 GB (vtk and others) and its lineal path is a chord-length distribution rather than
Torquato's L(r). The definitions follow Torquato, *Random Heterogeneous Materials* (2002).
All lengths are in pixels unless a pixel size is given.
"""

from __future__ import annotations

import numpy as np

from ..errors import MicroforgeError


def _as_binary(phase: np.ndarray) -> np.ndarray:
    phase = np.asarray(phase)
    if phase.ndim != 2:
        raise MicroforgeError(f"expected a 2-D binary image, got shape {phase.shape}")
    return phase.astype(bool)


def radial_average(field: np.ndarray, r_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Average a centred 2-D field over rings of integer radius ``0..r_max``.

    The field's centre is at ``(H // 2, W // 2)``; pixel ``(y, x)`` falls in ring
    ``round(hypot(y - cy, x - cx))``. Returns ``(r, mean)`` with ``r = 0..r_max``.
    """
    h, w = field.shape
    yy, xx = np.indices((h, w))
    ring = np.rint(np.hypot(yy - h // 2, xx - w // 2)).astype(np.intp).ravel()
    keep = ring <= r_max
    sums = np.bincount(ring[keep], weights=field.ravel()[keep], minlength=r_max + 1)
    counts = np.bincount(ring[keep], minlength=r_max + 1)
    return np.arange(r_max + 1), sums / np.maximum(counts, 1)


def two_point_correlation_map(phase: np.ndarray, periodic: bool = False) -> np.ndarray:
    """S2 for every displacement: ``(H, W)`` map, centred (displacement 0 at ``(H//2, W//2)``).

    ``S2[H//2 + dy, W//2 + dx]`` is the probability that pixels ``p`` and ``p + (dy, dx)`` both
    lie in the phase. ``periodic``: the image wraps around (exact for periodic structures);
    otherwise it is zero-padded and each displacement is normalised by the number of pixel
    pairs that fit inside the image.
    """
    img = _as_binary(phase).astype(np.float64)
    h, w = img.shape
    if periodic:
        spectrum = np.fft.rfft2(img)
        auto = np.fft.irfft2(spectrum * np.conj(spectrum), s=img.shape) / img.size
        return np.fft.fftshift(auto)
    shape = (2 * h, 2 * w)
    spectrum = np.fft.rfft2(img, s=shape)
    window = np.fft.rfft2(np.ones_like(img), s=shape)
    pairs = np.fft.irfft2(spectrum * np.conj(spectrum), s=shape)
    overlap = np.fft.irfft2(window * np.conj(window), s=shape)
    auto = np.fft.fftshift(pairs / np.maximum(np.rint(overlap), 1.0))
    return auto[h - h // 2 : 2 * h - h // 2, w - w // 2 : 2 * w - w // 2]


def two_point_correlation(
    phase: np.ndarray, r_max: int | None = None, periodic: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Two-point correlation S2(r) of a phase, by FFT, radially averaged.

    S2(r) is the probability that two points a distance ``r`` apart both lie in the phase.
    S2(0) equals the phase's area fraction; for a random structure S2 tends to its square.

    Parameters
    ----------
    phase : ``(H, W)`` binary image (True/1 = the phase).
    r_max : largest radius, px; default ``min(H, W) // 2``.
    periodic : see :func:`two_point_correlation_map`.

    Returns
    -------
    ``(r, s2)``: radii ``0..r_max`` in px and S2 at each radius.
    """
    h, w = np.shape(phase)
    r_max = min(h, w) // 2 if r_max is None else int(r_max)
    if not 0 <= r_max <= min(h, w) // 2:
        raise MicroforgeError(f"r_max must be in 0..{min(h, w) // 2}, got {r_max}")
    return radial_average(two_point_correlation_map(phase, periodic), r_max)


def lineal_path(
    phase: np.ndarray, r_max: int | None = None, axes: tuple[int, ...] = (0, 1)
) -> tuple[np.ndarray, np.ndarray]:
    """Lineal path function L(r): probability that a segment of length ``r`` px, dropped at
    random along the image axes, lies wholly in the phase.

    A segment of length ``r`` covers ``r + 1`` pixels, so L(0) is the area fraction. Counting
    is exact: a run of ``l`` phase pixels holds ``max(0, l - r)`` such segments, and a line of
    ``n`` pixels offers ``n - r`` positions (no periodicity). Axes are averaged by positions.

    Returns ``(r, L)`` with ``r = 0..r_max`` (default ``min(H, W) // 2``).
    """
    img = _as_binary(phase)
    longest = min(img.shape[1] if axis == 1 else img.shape[0] for axis in axes)  # shortest line used
    r_max = min(img.shape) // 2 if r_max is None else int(r_max)
    if not 0 <= r_max < longest:
        raise MicroforgeError(f"r_max must be in 0..{longest - 1}, got {r_max}")
    r = np.arange(r_max + 1)
    hits = np.zeros(r_max + 1)
    positions = np.zeros(r_max + 1)
    for axis in axes:
        lines = img if axis == 1 else img.T
        runs = run_lengths(lines)
        counts = np.bincount(runs, minlength=r_max + 2)
        lengths = np.arange(counts.size)
        # segments of length r inside runs of length l: sum over l > r of (l - r) * count(l)
        tail_count = np.cumsum(counts[::-1])[::-1]  # number of runs with length >= l
        tail_sum = np.cumsum((lengths * counts)[::-1])[::-1]  # total length of runs with length >= l
        hits += tail_sum[r + 1] - r * tail_count[r + 1]
        positions += lines.shape[0] * (lines.shape[1] - r)
    return r, hits / positions


def run_lengths(lines: np.ndarray, drop_edge_runs: bool = False) -> np.ndarray:
    """Lengths (px) of the runs of True along the rows of a 2-D boolean array.

    With ``drop_edge_runs``, runs that touch either end of a row are left out (their true
    length is unknown), as line-intercept methods require.
    """
    lines = np.asarray(lines, dtype=bool)
    padded = np.zeros((lines.shape[0], lines.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = lines
    diff = np.diff(padded, axis=1)
    rows_s, starts = np.nonzero(diff == 1)
    _, ends = np.nonzero(diff == -1)
    lengths = ends - starts
    if drop_edge_runs:
        keep = (starts > 0) & (ends < lines.shape[1])
        lengths = lengths[keep]
    return lengths.astype(np.intp)


def chord_lengths(phase: np.ndarray, axes: tuple[int, ...] = (0, 1), drop_edge_runs: bool = True) -> np.ndarray:
    """All chord lengths (px) of the phase along the given image axes (0: vertical lines,
    1: horizontal lines); chords cut by the image edge are dropped by default."""
    img = _as_binary(phase)
    parts = [run_lengths(img if axis == 1 else img.T, drop_edge_runs) for axis in axes]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)


def mean_lineal_intercept(labels: np.ndarray, spacing: int = 1) -> float:
    """Mean lineal intercept length (px) of a grain structure, ASTM E1382-style.

    Test lines are every ``spacing``-th row and column; the intercept length is the total test
    line length divided by the number of boundary crossings (label changes between neighbours
    along the lines). ``labels`` is ``(H, W)`` integer grain labels (0 may be a grain too).
    """
    labels = np.asarray(labels)
    rows, cols = labels[::spacing, :], labels[:, ::spacing]
    crossings = int((rows[:, 1:] != rows[:, :-1]).sum() + (cols[1:, :] != cols[:-1, :]).sum())
    length = rows.shape[0] * (rows.shape[1] - 1) + cols.shape[1] * (cols.shape[0] - 1)
    return float(length / crossings) if crossings else float("inf")


def astm_grain_size_number(mean_intercept_mm: float) -> float:
    """ASTM E112 grain size number G from the mean lineal intercept in millimetres:
    ``G = -6.643856 log10(l) - 3.288``."""
    if not mean_intercept_mm > 0:
        raise MicroforgeError(f"mean intercept must be positive, got {mean_intercept_mm}")
    return float(-6.643856 * np.log10(mean_intercept_mm) - 3.288)


def discrepancy(reference: np.ndarray, other: np.ndarray, r: np.ndarray | None = None) -> float:
    """Discrepancy between two curves, percent: area between them over area under ``reference``,
    times 100 (trapezoid rule over ``r``, default unit spacing)."""
    reference, other = np.asarray(reference, dtype=np.float64), np.asarray(other, dtype=np.float64)
    if reference.shape != other.shape:
        raise MicroforgeError(f"curves differ in length: {reference.shape} vs {other.shape}")
    x = np.arange(reference.size, dtype=np.float64) if r is None else np.asarray(r, dtype=np.float64)
    under = np.trapezoid(np.abs(reference), x)
    if under <= 0:
        raise MicroforgeError("the reference curve has zero area; discrepancy is undefined")
    return float(100.0 * np.trapezoid(np.abs(reference - other), x) / under)


def area_fraction_above(grey: np.ndarray, thresholds: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Area fraction of pixels brighter than each threshold.

    ``grey`` is ``(H, W)`` in [0, 1]; default thresholds are the 10 levels 0.05, 0.15, ..., 0.95.
    Returns ``(thresholds, fractions)``.
    """
    grey = np.asarray(grey, dtype=np.float64)
    t = np.linspace(0.05, 0.95, 10) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    return t, (grey.ravel()[None, :] > t[:, None]).mean(axis=1)


def grey_histogram(grey: np.ndarray) -> np.ndarray:
    """Share of the pixels of ``grey`` ``(H, W)`` in [0, 1] at each of the 256 8-bit levels ``(256,)``."""
    levels = np.clip(np.round(np.asarray(grey, dtype=np.float64) * 255), 0, 255).astype(np.int64)
    return np.bincount(levels.ravel(), minlength=256) / levels.size


def condition_area_fractions(histograms: np.ndarray, n_thresholds: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Howland et al.'s area fractions of one condition (a set of images): intensities scaled to
    [0, 1] over the whole set (its darkest level to 0, its brightest to 1), then the share of each
    image's pixels with scaled intensity ``>= t`` at ``n_thresholds`` evenly spaced ``t`` in [0, 1].

    ``histograms`` ``(N, 256)`` from :func:`grey_histogram`; returns ``(thresholds (T,), fractions (N, T))``.
    The paper also centres each condition's mean; after the scaling to [0, 1] that changes nothing.
    """
    h = np.asarray(histograms, dtype=np.float64)
    present = np.flatnonzero(h.sum(axis=0) > 0)
    t = np.linspace(0.0, 1.0, n_thresholds)
    if not len(present):
        raise MicroforgeError("no pixels to measure area fractions on")
    lo, hi = present[0], present[-1]
    scaled = (np.arange(256) - lo) / max(hi - lo, 1)
    above = scaled[None, :] >= t[:, None] - 1e-12  # (T, 256)
    return t, h @ above.T.astype(np.float64)
