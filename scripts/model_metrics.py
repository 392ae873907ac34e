"""Write a model folder's ``metrics.json``: the summary of one ``microforge evaluate`` report.

    python scripts/model_metrics.py REPORT_DIR MODEL_DIR --command "microforge evaluate ..." [--report-link PATH]

Reads REPORT_DIR/metrics.json (the full report) and writes MODEL_DIR/metrics.json in the
``microforge-metrics/1`` format the bundled models carry: the Table-1 row, per-property errors,
the regressor's ceiling on real tiles, oracle accuracies, S2 / lineal-path discrepancies of the
generated images and of the stage-1 maps, data copying and the DDIM step sweep.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from microforge.data.phase_map import CLASS_NAMES
from microforge.models.tim3 import tim3_config_from_dict


def discrepancies(block: dict) -> dict:
    """Per-class S2 and lineal-path discrepancies (percent) of one microstructure block of a report."""
    return {
        curve: {name: block[curve][name]["discrepancy_pct"] for name in CLASS_NAMES} for curve in ("s2", "lineal_path")
    }


def summary(
    report: dict,
    command: str,
    report_link: str,
    default_guidance: float | None = None,
    tiles: str = "SEM tiles at 64 px",
    default_stage2_guidance: float | None = None,
    etas: tuple[float, float] = (0.0, 0.0),
) -> dict:
    """The ``microforge-metrics/1`` summary of a full evaluation report ``report``; the guidance scale
    is the report's option, or ``default_guidance`` (the model's own) when the report used the default,
    and ``stage2_guidance_scale`` is the micrograph stage's own (``default_stage2_guidance``, the
    model's ``stage2_guidance_scale``) where the report used the default and the model has one.
    ``tiles``: what the model was trained on. ``etas``: the model's DDIM eta per stage (map,
    micrograph), recorded as ``ddim_eta`` / ``stage2_ddim_eta`` where not 0. A report made without
    a property regressor (the OM model has none) gives no Acc_gamma, mAcc, domain Fréchet distance
    or per-property block: those fields are None."""
    main, options = report["main"], report["options"]
    acc = main.get("accuracy") or {"acc": {str(g): None for g in (0.1, 0.2, 0.3)}, "mAcc": None, "per_property": None}
    out = {
        "format": "microforge-metrics/1",
        "command": command,
        "data": f"default synthetic benchmark (microforge data synth --out data/ti-synth), {tiles}",
        **({"data_digest": report["data_digest"]} if "data_digest" in report else {}),
        "guidance_scale": default_guidance if options.get("guidance_scale") is None else options["guidance_scale"],
        **(
            {"stage2_guidance_scale": default_stage2_guidance}
            if options.get("guidance_scale") is None and default_stage2_guidance is not None
            else {}
        ),
        **({"ddim_eta": etas[0]} if etas[0] else {}),
        **({"stage2_ddim_eta": etas[1]} if etas[1] != etas[0] else {}),
        "n_generated": main["n"],
        "n_reference": options["n_reference"],
        "table1": {
            **{f"acc_{g}": v for g, v in acc["acc"].items()},
            "mAcc": acc["mAcc"],
            "fid": main["fid"],
            "kid": main["kid_mean"],
            "precision": main["precision"],
            "recall": main["recall"],
            "domain_frechet": main.get("domain_frechet"),
        },
        "per_property": acc["per_property"],
        "regressor_ceiling_mAcc_on_real": (
            report.get("regressor_on_held_out") or report.get("regressor_on_reference") or {}
        ).get("mAcc"),
        "oracle_mAcc": {k: v["mAcc"] for k, v in report.get("oracle", {}).items()},
        "discrepancy_pct": discrepancies(report["microstructure"]),
        "copy_mse": {
            "min": main["copy_mse_min"],
            "median": main["copy_mse_median"],
            "median_heldout_real": main["copy_mse_median_heldout_real"],
        },
        "steps_sweep": report.get("sweeps", {}).get("steps", []),
        "report": report_link,
    }
    if "microstructure_maps" in report:
        out["stage1_map_discrepancy_pct"] = discrepancies(report["microstructure_maps"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", type=Path)
    ap.add_argument("model", type=Path)
    ap.add_argument("--command", required=True, help="the evaluate command that made the report")
    ap.add_argument("--report-link", default="docs/example-report/index.html")
    args = ap.parse_args()
    for needed in (args.model / "config.json", args.report / "metrics.json"):
        if not needed.is_file():
            raise SystemExit(f"Error: {needed}: not found (MODEL is a TiM3 model folder, REPORT an evaluate report)")
    cfg = json.loads((args.model / "config.json").read_text())["config"]
    # every setting read through the parsed config, whose dataclass holds the defaults a saved config omits
    model = tim3_config_from_dict(cfg, str(args.model / "config.json"), saved=True)
    tiles = f"{model.modality} tiles at {model.resolution} px"
    report = json.loads((args.report / "metrics.json").read_text())
    etas = (model.stage_eta(1), model.stage_eta(2))
    record = summary(
        report, args.command, args.report_link, model.guidance_scale, tiles, model.stage2_guidance_scale, etas
    )
    (args.model / "metrics.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record["table1"], indent=1))


if __name__ == "__main__":
    main()
