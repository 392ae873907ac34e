"""Train the attention U-Net and score it against the classical segmenter on held-out images.

    python scripts/segmentation_report.py [--steps 600] [--work /tmp/mf-seg]

Datasets: the real alpha/beta Ti set (imported from ../shared/data at half resolution; 6 train,
1 val, 2 test images by specimen, with two split seeds: seed 0 holds out two binary-mask images,
seed 3 holds out one 3-class image) and the synthetic benchmark's SEM tiles (24 specimens of
384 px, 6 of each morphology; 5 test specimens held out). Writes benchmarks/results/segmentation.json, the source of
the table in docs/characterization.md. The U-Net trained on the synthetic benchmark is saved
under --work (it is our own data); the one trained on the Ti set is not kept in the repository,
because those images carry no licence.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from microforge.characterize.segmentation import segment_classical
from microforge.training.segmenter_trainer import SegmenterTrainConfig, evaluate_segmentation, train_segmenter
from microforge.data.synth.config import SynthConfig
from microforge.data.importer import ImportOptions, import_dataset
from microforge.data.synth.benchmark import build_benchmark
from microforge.data.tiling import Crop
from microforge.models.attention_unet import predict_phase_map

REPO = Path(__file__).resolve().parents[1]
TI = REPO.parent / "shared" / "data" / "ti_ab_heat_treatment"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--work", type=Path, default=Path("/tmp/mf-seg"))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "segmentation.json")
    args = ap.parse_args()
    ti = args.work / "ti-ab"
    if not (ti / "manifest.csv").exists():
        import_dataset(
            ImportOptions(
                images=TI,
                table=TI / "labels.csv",
                out=ti,
                key_column="micrograph",
                specimen_column="condition",
                properties=["temperature_C", "time_h", "cooling"],
                categorical=["cooling"],
                meta_columns=["alpha_vol_pct", "beta_vol_pct", "secondary_alpha_vol_pct"],
                mask_column="mask",
                mask_type_column="mask_type",
                crop=Crop(0, 24, 0, 0),
                scale=0.5,
                overwrite=True,
            )
        )
    synth = args.work / "synth"
    if not (synth / "manifest.csv").exists():
        build_benchmark(synth, SynthConfig(n_specimens=24, field_px=384), workers=2, overwrite=True)
    results = {}
    for name, data, modality, seed in (
        ("ti_ab_split0", ti, "SEM", 0),
        ("ti_ab_split3", ti, "SEM", 3),
        ("synthetic_sem", synth, "SEM", 0),
    ):
        cfg = replace(SegmenterTrainConfig(), steps=args.steps, modality=modality, split_seed=seed)
        model = train_segmenter([data], args.work / f"unet-{name}", cfg)
        kw = dict(fractions=cfg.split_fractions, seed=cfg.split_seed, modality=modality)
        results[name] = {
            "classical": evaluate_segmentation(lambda g: segment_classical(g, modality), data, **kw),
            "attention_unet": evaluate_segmentation(lambda g: predict_phase_map(model, g), data, **kw),
            "unet_train_seconds": json.loads((args.work / f"unet-{name}" / "config.json").read_text())["training"][
                "train_seconds"
            ],
            "steps": args.steps,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
