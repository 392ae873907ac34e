"""Re-measure a trained regressor's held-out accuracy with the current ``predict`` and record it.

    python scripts/remeasure_regressor.py REGRESSOR DATA

Reads the regressor's own split (its config's fractions and seed), predicts the val and test
specimens' tiles, and replaces ``val`` and ``test`` in REGRESSOR/metrics.json, keeping the old
figures under ``before_remeasure`` with the reason. Used once when the regressor began to read
min-max stretched images at inference (docs/departures.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from microforge.config import load_config
from microforge.models.property_regressor import PropertyRegressor
from microforge.training.regressor_trainer import RegressorTrainConfig, held_out_metrics


def main(folder: str, data: str) -> None:
    folder_path = Path(folder)
    metrics = json.loads((folder_path / "metrics.json").read_text())
    cfg = load_config(RegressorTrainConfig, None, **metrics["config"])
    before = {k: metrics[k] for k in ("val", "test")}
    metrics.update(held_out_metrics(PropertyRegressor.from_pretrained(folder_path), data, cfg))
    for split in ("val", "test"):
        print(split, "mAcc", round(before[split]["mAcc"], 3), "->", round(metrics[split]["mAcc"], 3))
    metrics["before_remeasure"] = {
        "reason": "predict now min-max stretches each image, as in training (TiM3 eq. 12)",
        **before,
    }
    (folder_path / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
