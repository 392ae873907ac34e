"""Collect fingerprint-VAE variants into one JSON on stdout: per variant, its training config and
time, its held-out reconstruction quality (``reconstruction.json``) and what ``fingerprint explore
--kind vae`` read from its fingerprints (morphology accuracy and confusion, SVR R² per target).

    python benchmarks/fingerprint_variants.py NAME=TRAIN_DIR:EXPLORE_DIR [...] > benchmarks/results/X.json

Each TRAIN_DIR is a ``microforge fingerprint train --out`` folder and EXPLORE_DIR the ``fingerprint
explore --model TRAIN_DIR --kind vae --max-images 1000`` folder made from it (issue 21's protocol);
when that folder also holds ``--kind vae-d4``, its morphology accuracy and SVR R² are recorded beside.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from microforge.training.loop import recorded_seconds


def variant(train_dir: Path, explore_dir: Path) -> dict[str, Any]:
    """One variant's record (see the module docstring)."""
    config = json.loads((train_dir / "config.json").read_text())
    kinds = json.loads((explore_dir / "summary.json").read_text())["cv"]["kinds"]
    cv = kinds["vae"]
    morphology = cv["classification"]["morphology"]
    pooled = kinds.get("vae-d4")  # when explore was given --kind vae-d4 too
    return {
        "model": {k: config[k] for k in ("resolution", "width", "hidden", "latent", "alpha", "beta", "spectral")}
        | ({"spectral_window": config["spectral_window"]} if config.get("spectral") == "local" else {}),
        "steps": config["train"]["steps"],
        "train_minutes": round(recorded_seconds(config) / 60, 1),
        "reconstruction": json.loads((train_dir / "reconstruction.json").read_text()),
        "morphology_accuracy": morphology["accuracy_mean"],
        "morphology_accuracy_std": morphology["accuracy_std"],
        "classes": morphology["classes"],
        "morphology_confusion": morphology["confusion"],
        "svr_r2": {name: r["r2"] for name, r in cv["regression"].items()},
    } | (
        {
            "vae_d4_morphology_accuracy": pooled["classification"]["morphology"]["accuracy_mean"],
            "vae_d4_morphology_accuracy_std": pooled["classification"]["morphology"]["accuracy_std"],
            "vae_d4_svr_r2": {name: r["r2"] for name, r in pooled["regression"].items()},
        }
        if pooled
        else {}
    )


def main(args: list[str]) -> None:
    if not args:
        sys.exit("usage: fingerprint_variants.py NAME=TRAIN_DIR:EXPLORE_DIR [...]")
    out: dict[str, Any] = {"benchmark": "fingerprint VAE variants (issue 21)", "command": " ".join(sys.argv)}
    for arg in args:
        name, dirs = arg.split("=", 1)
        train_dir, explore_dir = dirs.split(":", 1)
        out[name] = variant(Path(train_dir), Path(explore_dir))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
