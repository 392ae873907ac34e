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
Writes benchmarks/results/bias_by_label.json unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from _record import write_record

from microforge.data.phase_map import CLASS_NAMES, N_CLASSES, PRIMARY_ALPHA
from microforge.evaluate.batches import load_arrays

GLOBULAR = 0.10  # primary-alpha fraction above which a map is counted as globular


def nearest_labels(targets: np.ndarray, specimens: pd.DataFrame, names: list[str], label: str) -> np.ndarray:
    """The ``label`` of the specimen nearest to each target ``(N, K)``, in the properties ``names``
    scaled to [0, 1] over the specimens (one row each). Returns ``(N,)`` labels."""
    x = specimens[names].to_numpy(np.float64)
    lo, span = x.min(0), np.ptp(x, axis=0)
    span[span == 0] = 1.0
    d = (((targets - lo) / span)[:, None, :] - ((x - lo) / span)[None]) ** 2
    return specimens[label].to_numpy()[d.sum(-1).argmin(1)]


def bias_by_label(pred: np.ndarray, targets: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    """Per label (and ``all``): ``n`` and each property's mean signed error ``pred - target``
    in standard deviations of all the ``targets`` ``(N, K)``."""
    sd = targets.std(0)
    sd[sd == 0] = np.nan
    err = (pred - targets) / sd
    groups = {"all": np.ones(len(labels), bool)} | {str(v): labels == v for v in np.unique(labels)}
    return {
        g: {"n": int(k.sum()), "bias_sd": {n: round(float(err[k, j].mean()), 3) for j, n in enumerate(names)}}
        for g, k in groups.items()
    }


def maps_by_label(maps: np.ndarray, labels: np.ndarray) -> dict:
    """Per label (and ``all``) of stage-1 maps ``(N, H, W)`` (class ids): the mean area fraction
    of each class and ``globular_share``, the share of maps whose primary-alpha fraction exceeds
    ``GLOBULAR``."""
    frac = np.stack([(maps == c).mean((1, 2)) for c in range(N_CLASSES)], 1)  # (N, classes)
    groups = {"all": np.ones(len(labels), bool)} | {str(v): labels == v for v in np.unique(labels)}
    return {
        g: {
            "class_fraction": {CLASS_NAMES[c]: round(float(frac[k, c].mean()), 4) for c in range(N_CLASSES)},
            "globular_share": round(float((frac[k, PRIMARY_ALPHA] > GLOBULAR).mean()), 4),
        }
        for g, k in groups.items()
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
    labels = nearest_labels(arrays["targets"], specimens, names, args.label)
    record = {
        "command": f"python benchmarks/bias_by_label.py {args.report} {args.data} --label {args.label}",
        "report": str(args.report),
        "label": args.label,
        "groups": bias_by_label(arrays["pred"], arrays["targets"], labels, names),
    }
    first = np.load(sorted((args.report / "main").glob("batch_*.npz"))[0])
    if "maps" in first.files:
        record["maps"] = maps_by_label(load_arrays(args.report / "main", ["maps"])["maps"], labels)
    write_record(record, args.out)


if __name__ == "__main__":
    main()
