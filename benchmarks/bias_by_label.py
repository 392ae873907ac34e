"""Where an evaluation's property bias comes from: the regressor's signed error per group of targets,
each target grouped by the label of the training specimen nearest to it.

    python benchmarks/bias_by_label.py REPORT DATA [--label morphology] [--out JSON]

REPORT is a finished ``microforge evaluate`` report: its ``main/`` batches hold each sample's
target and the regressor's reading, in the order of metrics.json's per-property table. Evaluate
draws its targets inside the training hull, so they belong to no specimen; each is given the label
of the specimen (DATA/manifest.csv, one row per specimen) nearest to it in the properties scaled
to [0, 1] over the specimens. Per label: the number of targets and each property's mean signed
error in standard deviations of all the targets (as metrics.json's ``bias_sd``, so the groups'
biases weighted by their counts add up to it). A bias that sits in one group says which
microstructures the model draws wrong, where the overall figure only says that it does. Where
the report kept its stage-1 maps, each group also gets the maps' mean class fractions and the
share of its maps with more than 10 % primary alpha (a lamellar specimen has 2-7 %).
``by_distance`` groups the same errors by the quartile of each target's distance to its nearest
specimen, beside the specimens' own spacing (the median distance between nearest specimens): an
error that grows with the distance is the model's reach between specimens, not its drawing of
them. ``nearest_specimen_r2`` is the R² a generator would score by drawing each target's
nearest specimen, read exactly.
Writes benchmarks/results/bias_by_label.json unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from _record import write_record

from microforge.data.phase_map import CLASS_NAMES, N_CLASSES, PRIMARY_ALPHA, phase_fractions
from microforge.evaluate.batches import load_arrays

GLOBULAR = 0.10  # primary-alpha fraction above which a map is counted as globular


def _unit_scaled(specimens: pd.DataFrame, names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The specimens' properties ``names`` ``(S, K)``, and the offset and span that scale them to
    [0, 1] per property (a property without spread keeps a span of 1)."""
    x = specimens[names].to_numpy(np.float64)
    span = np.ptp(x, axis=0)
    span[span == 0] = 1.0
    return x, x.min(0), span


def nearest_specimens(targets: np.ndarray, specimens: pd.DataFrame, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The row of the specimen nearest to each target ``(N, K)`` and its distance, in the
    properties ``names`` scaled to [0, 1] over the specimens (one row each). Returns ``(N,)``
    row indices and ``(N,)`` distances (0 .. sqrt(K))."""
    x, lo, span = _unit_scaled(specimens, names)
    d = np.sqrt(((((targets - lo) / span)[:, None, :] - ((x - lo) / span)[None]) ** 2).sum(-1))
    return d.argmin(1), d.min(1)


def specimen_spacing(specimens: pd.DataFrame, names: list[str]) -> float:
    """The median distance from a specimen to its nearest other specimen, in the scaled properties
    of :func:`nearest_specimens`: how far apart the training data's property vectors lie."""
    x, _, span = _unit_scaled(specimens, names)
    d = np.sqrt((((x[:, None, :] - x[None]) / span) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(1)))


def label_groups(labels: np.ndarray) -> dict[str, np.ndarray]:
    """``all`` and each distinct label of ``labels`` ``(N,)``, as boolean masks ``(N,)``."""
    return {"all": np.ones(len(labels), bool)} | {str(v): labels == v for v in np.unique(labels)}


def distance_quartiles(distance: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Each target's quartile of ``distance`` ``(N,)`` to its nearest specimen, as labels ``"q1"``
    (nearest) to ``"q4"`` (a distance on an edge belongs to the lower quartile), and the three
    quartile edges."""
    edges = np.percentile(distance, [25, 50, 75])
    labels = np.array([f"q{i + 1}" for i in np.digitize(distance, edges, right=True)])
    return labels, [round(float(e), 4) for e in edges]


def nearest_specimen_r2(targets: np.ndarray, nearest: np.ndarray, names: list[str]) -> dict[str, float]:
    """Per property, the R² of the nearest specimens' properties ``nearest`` ``(N, K)`` against
    the ``targets`` ``(N, K)``: what a generator that drew each target's nearest training specimen
    would score under a regressor that reads every specimen exactly."""
    ss_res = ((nearest - targets) ** 2).sum(0)
    ss_tot = ((targets - targets.mean(0)) ** 2).sum(0)
    return {n: round(float(1 - ss_res[j] / ss_tot[j]), 3) for j, n in enumerate(names)}


def bias_by_label(pred: np.ndarray, targets: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    """Per label (and ``all``): ``n``, each property's mean signed error ``pred - target``
    (``bias_sd``) and mean absolute error (``abs_error_sd``), both in standard deviations of all
    the ``targets`` ``(N, K)``."""
    sd = targets.std(0)
    sd[sd == 0] = np.nan
    err = (pred - targets) / sd
    return {
        g: {
            "n": int(k.sum()),
            "bias_sd": {n: round(float(err[k, j].mean()), 3) for j, n in enumerate(names)},
            "abs_error_sd": {n: round(float(np.abs(err[k, j]).mean()), 3) for j, n in enumerate(names)},
        }
        for g, k in label_groups(labels).items()
    }


def maps_by_label(maps: np.ndarray, labels: np.ndarray) -> dict:
    """Per label (and ``all``) of stage-1 maps ``(N, H, W)`` (class ids): the mean area fraction
    of each class and ``globular_share``, the share of maps whose primary-alpha fraction exceeds
    ``GLOBULAR``."""
    frac = np.stack([phase_fractions(m) for m in maps])  # (N, classes)
    return {
        g: {
            "class_fraction": {CLASS_NAMES[c]: round(float(frac[k, c].mean()), 4) for c in range(N_CLASSES)},
            "globular_share": round(float((frac[k, PRIMARY_ALPHA] > GLOBULAR).mean()), 4),
        }
        for g, k in label_groups(labels).items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", type=Path)
    ap.add_argument("data", type=Path)
    ap.add_argument("--label", default="morphology", help="a categorical column of DATA/manifest.csv")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bias_by_label.json"))
    args = ap.parse_args()
    metrics = json.loads((args.report / "metrics.json").read_text())
    if not metrics["main"].get("accuracy"):
        raise SystemExit(f"Error: {args.report / 'metrics.json'}: no property accuracy (evaluated without a regressor)")
    names = list(metrics["main"]["accuracy"]["per_property"])
    arrays = load_arrays(args.report / "main", ["targets", "pred"])
    manifest = pd.read_csv(args.data / "manifest.csv")
    missing = [c for c in [*names, args.label] if c not in manifest.columns]
    if missing:
        raise SystemExit(f"Error: {args.data / 'manifest.csv'}: no column {', '.join(missing)}")
    specimens = manifest.groupby("specimen")[[*names, args.label]].first()
    rows, distance = nearest_specimens(arrays["targets"], specimens, names)
    labels = specimens[args.label].to_numpy()[rows]
    quartiles, edges = distance_quartiles(distance)
    record = {
        "command": f"python benchmarks/bias_by_label.py {args.report} {args.data} --label {args.label}",
        "report": str(args.report),
        "label": args.label,
        "groups": bias_by_label(arrays["pred"], arrays["targets"], labels, names),
        "by_distance": {
            "specimen_spacing": round(specimen_spacing(specimens, names), 4),
            "quartile_edges": edges,
            "groups": bias_by_label(arrays["pred"], arrays["targets"], quartiles, names),
        },
        "nearest_specimen_r2": nearest_specimen_r2(arrays["targets"], specimens[names].to_numpy()[rows], names),
    }
    first = np.load(sorted((args.report / "main").glob("batch_*.npz"))[0])
    if "maps" in first.files:
        record["maps"] = maps_by_label(load_arrays(args.report / "main", ["maps"])["maps"], labels)
    write_record(record, args.out)


if __name__ == "__main__":
    main()
