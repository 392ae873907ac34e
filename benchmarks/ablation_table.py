"""The TiM3 ablation table from the runs of benchmarks/tim3_ablation.sh.

    python benchmarks/ablation_table.py RUNS [--rows a-kl64-eps b-s2d64-eps ... gpu bundled]

For each row: the diffusion stages' training minutes (from the model's config.json), FID, KID,
mAcc, the property regressor's R² per property on the generated images, and the S2
discrepancies of the three phases. Prints a Markdown table and writes
benchmarks/results/tim3_ablation.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from microforge.training.loop import recorded_seconds

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from model_metrics import discrepancies  # noqa: E402  (scripts/ is not a package)

PROPS = ["YS", "TS", "EF", "RH", "IT", "DCS", "CFS"]


def row(run: Path) -> dict:
    """One row's numbers from ``run/eval/metrics.json`` and its model's ``config.json``."""
    report = json.loads((run / "eval" / "metrics.json").read_text())
    main = report["main"]
    model = Path(report["model"])
    if str(model).startswith("bundled:"):
        from microforge.pipelines.registry import resolve_model

        model = resolve_model(str(model))
    training = json.loads((model / "config.json").read_text()).get("training", {})
    minutes = sum(recorded_seconds(training[p]) for p in ("stage1", "stage2") if p in training) / 60
    per = main["accuracy"]["per_property"]
    return {
        "row": run.name,
        "model": str(report["model"]),
        "train_minutes_stages": round(minutes, 1),
        "steps": {p: training.get(p, {}).get("steps") for p in ("stage1", "stage2")},
        "fid": main["fid"],
        "kid": main["kid_mean"],
        "mAcc": main["accuracy"]["mAcc"],
        "r2": {p: per[p]["r2"] for p in PROPS if p in per},
        "s2_discrepancy_pct": discrepancies(report["microstructure"])["s2"],
        "n": main["n"],
        "n_reference": report["options"]["n_reference"],
    }


def markdown(rows: list[dict]) -> str:
    head = (
        "| row | stage steps (1 / 2) | minutes | FID | KID | mAcc | R² "
        + " / ".join(PROPS)
        + " | S2 disc. % α / β / α_s |\n|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        r2 = " / ".join(f"{r['r2'][p]:.2f}" for p in PROPS)
        s2 = " / ".join(f"{v:.0f}" for v in r["s2_discrepancy_pct"].values())
        lines.append(
            f"| {r['row']} | {r['steps']['stage1']} / {r['steps']['stage2']} | {r['train_minutes_stages']} | "
            f"{r['fid']:.0f} | "
            f"{r['kid']:.3f} | {r['mAcc']:.2f} | {r2} | {s2} |"
        )
    return head + "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path)
    ap.add_argument("--rows", nargs="*", help="row folders in table order [every row with a finished evaluation]")
    args = ap.parse_args()
    names = args.rows or sorted(p.name for p in args.runs.iterdir() if (p / "eval" / "metrics.json").is_file())
    rows = [row(args.runs / n) for n in names if (args.runs / n / "eval" / "metrics.json").is_file()]
    out = REPO / "benchmarks" / "results" / "tim3_ablation.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "tim3_ablation",
                "command": f"bash benchmarks/tim3_ablation.sh DATA {args.runs} ...",
                "protocol": "stage 1 1500 / stage 2 3000 steps at batch 16 on 2 CPU cores (rows a-d); "
                "evaluate -n 200 --n-reference 200 --n-describe 50 with the bundled regressor",
                "rows": rows,
            },
            indent=1,
        )
        + "\n"
    )
    print(markdown(rows))


if __name__ == "__main__":
    main()
