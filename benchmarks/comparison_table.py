"""Assemble the comparison of all models (benchmarks/comparison.sh) into JSON and a Markdown table.

Usage: python benchmarks/comparison_table.py RUNS_DIR
Reads RUNS_DIR/report/metrics.json (one `microforge evaluate` with the baselines as ablation rows)
and RUNS_DIR/train_seconds.json; writes benchmarks/results/comparison.json and prints the table
that docs/baselines.md quotes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _record import write_record

# (key in a table row, Markdown header, digits)
COLUMNS = (
    ("mAcc", "mAcc ↑", 3),
    ("oracle_mAcc", "oracle mAcc ↑", 3),
    ("fid", "FID ↓", 1),
    ("kid_mean", "KID ↓", 3),
    ("precision", "P ↑", 2),
    ("recall", "R ↑", 2),
    ("fingerprint_frechet", "fingerprint FD ↓", 1),
    ("s2_discrepancy_pct", "S2 discr. % ↓", 1),
    ("lineal_path_discrepancy_pct", "L discr. % ↓", 1),
    ("copy_mse_median", "copy MSE", 4),
)


def _fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def main(runs: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from microforge.evaluate.report import table_rows

    metrics = json.loads((runs / "report" / "metrics.json").read_text())
    trained = json.loads((runs / "train_seconds.json").read_text())
    rows = [r.to_dict() for r in table_rows(metrics)]
    rows[0]["name"], rows[0]["model"] = "TiM3 (bundled ti-sem-tiny)", metrics["model"]
    n_main, n_rows = metrics["main"]["n"], metrics["options"]["n_sweep"]
    record = {
        "benchmark": metrics["data"],
        "samples_main": n_main,
        "samples_per_baseline": n_rows,
        "reference_tiles": metrics["options"]["n_reference"],
        "described_per_set": metrics["options"]["n_describe"],
        "copy_mse_median_heldout_real": metrics["main"].get("copy_mse_median_heldout_real"),
        "regressor_ceiling_mAcc": (
            metrics.get("regressor_on_held_out") or metrics.get("regressor_on_reference") or {}
        ).get("mAcc"),
        "training": trained,
        "rows": rows,
    }
    write_record(record, Path(__file__).parent / "results" / "comparison.json")
    print()
    print("| model | " + " | ".join(h for _, h, _ in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for r in rows:
        print(f"| {r['name']} | " + " | ".join(_fmt(r.get(k), d) for k, _, d in COLUMNS) + " |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
