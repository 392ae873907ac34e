"""Start a TiM3 run folder from a finished model, so that `microforge train tim3 --resume` trains only
the phases the model lacks: today, the adversarial fine-tune of the micrograph decoder
(``vae_image.adversarial_steps``), which changes no latent and so leaves every other phase valid.

    python scripts/seed_run_from_model.py MODEL CONFIG RUN
    microforge train tim3 --data data/ti-synth --config CONFIG --out RUN --resume

MODEL: a TiM3 folder or bundled:NAME. CONFIG must equal the model's own config apart from the
adversarial fields of ``vae_image``; anything else would make the copied phases wrong, and is
refused. RUN must be new or empty. Each copied phase gets a ``.done`` marker with the model's own
record of it (steps and seconds), so the new model's config.json keeps the whole training history.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import yaml

from microforge.models.tim3 import tim3_config_from_dict
from microforge.pipelines.registry import resolve_model
from microforge.training.tim3_trainer import DONE_DIR, phases

ADVERSARIAL_FIELDS = {"adversarial_steps", "adversarial_weight", "adversarial_lr", "adversarial_condition"}
NOT_COPIED = {"regressor", "checkpoints", DONE_DIR}  # trained apart, or run state


def _without_adversarial(cfg) -> dict:
    d = cfg.to_dict()
    d["vae_image"] = {k: v for k, v in d["vae_image"].items() if k not in ADVERSARIAL_FIELDS}
    return d


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit("usage: python scripts/seed_run_from_model.py MODEL CONFIG RUN")
    model, config, run = Path(resolve_model(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3])
    record = json.loads((model / "config.json").read_text())
    have = tim3_config_from_dict(record["config"], str(model / "config.json"), saved=True)
    plan = tim3_config_from_dict(yaml.safe_load(config.read_text()), str(config))
    if _without_adversarial(have) != _without_adversarial(plan):
        raise SystemExit(f"Error: {config}: differs from {model}'s config beyond vae_image's adversarial fields")
    if run.exists() and (not run.is_dir() or any(run.iterdir())):
        raise SystemExit(f"Error: {run}: exists and is not an empty folder; choose a new one")
    run.mkdir(parents=True, exist_ok=True)
    for part in sorted(p for p in model.iterdir() if p.is_dir() and p.name not in NOT_COPIED):
        shutil.copytree(part, run / part.name)
    (run / DONE_DIR).mkdir()
    for phase in phases(have):
        marker = dict(record["training"][phase], reused_from=str(sys.argv[1]))
        (run / DONE_DIR / f"{phase}.json").write_text(json.dumps(marker))
    todo = [p for p in phases(plan) if p not in phases(have)]
    print(f"{run}: seeded with {', '.join(phases(have))} from {sys.argv[1]}; to train: {', '.join(todo) or 'nothing'}")


if __name__ == "__main__":
    main()
