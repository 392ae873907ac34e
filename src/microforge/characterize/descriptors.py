"""All descriptors of one micrograph in one JSON-able dict, and comparisons of two sets."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..data.phase_map import CLASS_NAMES, PRIMARY_ALPHA, SECONDARY_ALPHA, phase_fractions
from ..errors import MicroforgeError
from .lamellae import lamella_stats
from .statistics import (
    area_fraction_above,
    astm_grain_size_number,
    chord_lengths,
    condition_area_fractions,
    discrepancy,
    grey_histogram,
    lineal_path,
    two_point_correlation,
)
from .topology import persistence_diagram, persistence_image, persistence_pca

CHORD_BINS = np.arange(0, 129, 4)  # px; chords longer than 128 px fall in the last bin


def _floats(a: np.ndarray, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in np.asarray(a).ravel()]


def describe(
    grey: np.ndarray, phase_map: np.ndarray, pixel_size_um: float | None = None, r_max: int | None = None
) -> dict[str, Any]:
    """Every descriptor of one micrograph.

    Parameters
    ----------
    grey : ``(H, W)`` micrograph in [0, 1].
    phase_map : ``(H, W)`` classes 0..2 (measured or true).
    pixel_size_um : micrometres per pixel; adds lengths in um and the ASTM grain size number.
    r_max : largest distance for S2 and L, px (default ``min(H, W) // 4``).

    Returns a dict: ``phase_fractions``; ``s2`` and ``lineal_path`` (``r`` and one curve per
    class); ``chords`` (per class: mean, median and a histogram in px); ``grain_size`` (mean
    lineal intercept of primary alpha, ASTM E1382-style, and G when the pixel size is known);
    ``lamellae`` (secondary-alpha lath orientation and width); ``grey_area_fractions`` (10
    thresholds); ``persistence`` (number of H1 pairs and the 10 x 10 persistence image).
    """
    grey = np.asarray(grey, dtype=np.float64)
    phase_map = np.asarray(phase_map)
    if grey.shape != phase_map.shape or grey.ndim != 2:
        raise MicroforgeError(f"image {grey.shape} and phase map {phase_map.shape} must be the same 2-D shape")
    r_max = min(grey.shape) // 4 if r_max is None else r_max
    out: dict[str, Any] = {"shape": list(grey.shape), "pixel_size_um": pixel_size_um}
    out["phase_fractions"] = dict(zip(CLASS_NAMES, _floats(phase_fractions(phase_map))))
    s2, lp, chords = {}, {}, {}
    for c, name in enumerate(CLASS_NAMES):
        phase = phase_map == c
        r, s2[name] = two_point_correlation(phase, r_max)
        _, lp[name] = lineal_path(phase, r_max)
        lengths = chord_lengths(phase)
        hist, _ = np.histogram(np.minimum(lengths, CHORD_BINS[-1] - 1), CHORD_BINS)
        chords[name] = {
            "count": int(lengths.size),
            "mean_px": float(lengths.mean()) if lengths.size else None,
            "median_px": float(np.median(lengths)) if lengths.size else None,
            "histogram": hist.tolist(),
        }
    out["s2"] = {"r": _floats(r), **{k: _floats(v) for k, v in s2.items()}}
    out["lineal_path"] = {"r": _floats(r), **{k: _floats(v) for k, v in lp.items()}}
    out["chords"] = {"bin_edges_px": CHORD_BINS.tolist(), **chords}
    intercept = chords[CLASS_NAMES[PRIMARY_ALPHA]]["mean_px"]
    grain = {"mean_intercept_px": intercept}
    if pixel_size_um and intercept:
        grain["mean_intercept_um"] = intercept * pixel_size_um
        grain["astm_G"] = astm_grain_size_number(intercept * pixel_size_um / 1000.0)
    out["grain_size"] = grain
    lam = lamella_stats(phase_map == SECONDARY_ALPHA).as_dict()
    out["lamellae"] = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in lam.items()}
    if pixel_size_um and out["lamellae"]["width_px"] is not None:
        out["lamellae"]["width_um"] = out["lamellae"]["width_px"] * pixel_size_um
    t, f = area_fraction_above(grey)
    out["grey_area_fractions"] = {"thresholds": _floats(t), "fractions": _floats(f)}
    out["grey_histogram"] = _floats(grey_histogram(grey))
    diagram = persistence_diagram(grey, 1)
    out["persistence"] = {"h1_pairs": int(len(diagram)), "image": [_floats(row) for row in persistence_image(diagram)]}
    return out


def compare_sets(a: Sequence[dict], b: Sequence[dict], names: tuple[str, str] = ("A", "B")) -> dict[str, Any]:
    """Compare two sets of :func:`describe` outputs, taking set ``a`` as the reference.

    Returns per-class discrepancies (percent) of the mean S2 and lineal-path curves, the mean and
    std of the phase fractions in each set, the mean chord histograms, the persistence images'
    PCA (3 components fitted on set ``a``, set ``b`` projected into them; Howland et al.) with each
    image's set, and Howland et al.'s area fractions (each set's intensities scaled to [0, 1] on
    their own, then the share of pixels at or above ten thresholds).
    """
    if not a or not b:
        raise MicroforgeError("both sets need at least one image to compare")
    out: dict[str, Any] = {"sets": list(names), "counts": [len(a), len(b)]}
    for key in ("s2", "lineal_path"):
        lengths = {len(d[key]["r"]) for d in [*a, *b]}
        if len(lengths) != 1:
            raise MicroforgeError(f"{key} curves differ in length across images; use images of one size")
        r = np.asarray(a[0][key]["r"])
        block = {"r": _floats(r)}
        for name in CLASS_NAMES:
            ma = np.mean([d[key][name] for d in a], axis=0)
            mb = np.mean([d[key][name] for d in b], axis=0)
            eps = discrepancy(ma, mb, r) if np.trapezoid(np.abs(ma), r) > 0 else None
            block[name] = {"mean_" + names[0]: _floats(ma), "mean_" + names[1]: _floats(mb), "discrepancy_pct": eps}
        out[key] = block
    out["phase_fractions"] = {
        name: {
            s: {
                "mean": float(np.mean([d["phase_fractions"][name] for d in ds])),
                "std": float(np.std([d["phase_fractions"][name] for d in ds])),
            }
            for s, ds in zip(names, (a, b))
        }
        for name in CLASS_NAMES
    }
    out["chords"] = {
        "bin_edges_px": a[0]["chords"]["bin_edges_px"],
        **{
            name: {
                s: _floats(np.mean([d["chords"][name]["histogram"] for d in ds], axis=0))
                for s, ds in zip(names, (a, b))
            }
            for name in CLASS_NAMES
        },
    }
    images = [np.asarray(d["persistence"]["image"]) for d in [*a, *b]]
    if len(a) >= 2:  # Howland et al.: 3 components fitted on the reference set, the other projected into them
        scores, _, ratio = persistence_pca(images, 3, fit_count=len(a))
        out["persistence_pca"] = {
            "scores": [_floats(s) for s in scores],
            "set": [names[0]] * len(a) + [names[1]] * len(b),
            "fitted_on": names[0],
            "explained_variance_ratio": _floats(ratio),
        }
    if all("grey_histogram" in d for d in [*a, *b]):
        block: dict[str, Any] = {}
        for s, ds in zip(names, (a, b)):  # each set scaled on its own, as Howland et al. scale each condition
            t, f = condition_area_fractions(np.asarray([d["grey_histogram"] for d in ds]))
            block[s] = {"mean": _floats(f.mean(axis=0)), "std": _floats(f.std(axis=0))}
        out["area_fractions"] = {"thresholds": _floats(t), **block}
    return out
