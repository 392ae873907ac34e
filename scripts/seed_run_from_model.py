"""Start a TiM3 run folder from a finished model, so that `microforge train tim3 --resume` trains only
the phases that CONFIG changes:

- the adversarial fine-tune of the micrograph decoder (``vae_image``'s adversarial fields), which
  changes no latent and so leaves every other phase valid;
- the two diffusion stages, when CONFIG changes the diffusion objective (prediction type, min-SNR
  weighting, noise schedule, its shift, the sampler's timestep spacing): the autoencoders (and
  their latents) are reused, stage 1 and stage 2 are trained anew;
- one stage, when CONFIG changes only its length or its learning-rate decay (``train.steps`` and
  ``train.lr_decay``: stage 1; ``train.stage2_steps`` and ``train.stage2_lr_decay``: stage 2; a
  stage-2 field left null follows stage 1's, and so does what it invalidates);
- the map autoencoder and stage 1, when CONFIG changes the ``vae_map`` section: stage 2 reads the
  true maps (and trains its own map encoder, if any), never the map autoencoder, so it is reused.

    python scripts/seed_run_from_model.py MODEL CONFIG RUN
    microforge train tim3 --data data/ti-synth --config CONFIG --out RUN --resume

MODEL: a TiM3 folder or bundled:NAME. CONFIG must equal the model's own config apart from those
fields; anything else would make the copied phases wrong, and is refused. So is a change of the
adversarial fields when the model's decoder is already fine-tuned: its decoder before the
fine-tune is not kept, so the phase cannot be redone. RUN must be new or
empty. Each copied phase gets a ``.done`` marker with the model's own record of it (steps and
seconds), so the new model's config.json keeps the whole training history.
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
# the diffusion objective: changing it retrains stage 1 and stage 2
OBJECTIVE_FIELDS = {"prediction_type", "snr_gamma", "beta_schedule", "schedule_shift", "timestep_spacing"}
STAGE_FIELDS = {"steps", "stage2_steps", "lr_decay", "stage2_lr_decay"}  # the train section's per-stage fields
PHASE_PARTS = {  # the model folder's parts each phase writes (scheduler/ is written anew by every run)
    "vae_map": {"vae_map"},
    "stage1": {"unet_stage1", "encoder_stage1"},
    "stage2": {"unet_stage2", "encoder_stage2", "map_encoder"},
}
NOT_COPIED = {"regressor", "checkpoints", DONE_DIR}  # trained apart, or run state


def _stage_schedules(train: dict) -> dict[str, tuple]:
    """Each diffusion stage's (steps, learning-rate decay), a null stage-2 field taking stage 1's."""
    return {
        "stage1": (train["steps"], train["lr_decay"]),
        "stage2": (train["stage2_steps"] or train["steps"], train["stage2_lr_decay"] or train["lr_decay"]),
    }


def _without_adversarial(cfg) -> dict:
    d = cfg.to_dict()
    d["vae_image"] = {k: v for k, v in d["vae_image"].items() if k not in ADVERSARIAL_FIELDS}
    return d


def _without_retrainable(d: dict) -> dict:
    d = {k: v for k, v in d.items() if k not in OBJECTIVE_FIELDS | {"vae_map"}}
    d["train"] = {k: v for k, v in d["train"].items() if k not in STAGE_FIELDS}
    return d


def _retrained(kept: dict, planned: dict) -> set[str]:
    """The phases that the differences between two configs (dicts, adversarial fields removed)
    invalidate; the configs must agree beyond the fields this script knows how to retrain around."""
    retrain = set()
    if any(kept[f] != planned[f] for f in OBJECTIVE_FIELDS):
        retrain |= {"stage1", "stage2"}
    old, new = _stage_schedules(kept["train"]), _stage_schedules(planned["train"])
    retrain |= {phase for phase in old if old[phase] != new[phase]}
    if kept["vae_map"] != planned["vae_map"]:
        retrain |= {"vae_map", "stage1"}
    return retrain


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit("usage: python scripts/seed_run_from_model.py MODEL CONFIG RUN")
    model, config, run = Path(resolve_model(sys.argv[1])), Path(sys.argv[2]), Path(sys.argv[3])
    record = json.loads((model / "config.json").read_text())
    have = tim3_config_from_dict(record["config"], str(model / "config.json"), saved=True)
    plan = tim3_config_from_dict(yaml.safe_load(config.read_text()), str(config))
    kept, planned = _without_adversarial(have), _without_adversarial(plan)
    if _without_retrainable(kept) != _without_retrainable(planned):
        raise SystemExit(
            f"Error: {config}: differs from {model}'s config beyond vae_image's adversarial fields, the"
            " diffusion objective, the stages' steps and learning-rate decay, and vae_map"
        )
    adversarial = {k: v for k, v in have.to_dict()["vae_image"].items() if k in ADVERSARIAL_FIELDS}
    if "vae_image_adversarial" in phases(have) and adversarial != {
        k: v for k, v in plan.to_dict()["vae_image"].items() if k in ADVERSARIAL_FIELDS
    }:
        raise SystemExit(
            f"Error: {config}: changes vae_image's adversarial fields, but {model}'s decoder is already"
            " fine-tuned and its decoder from before the fine-tune is not kept; train that from scratch"
        )
    retrain = _retrained(kept, planned)
    if run.exists() and (not run.is_dir() or any(run.iterdir())):
        raise SystemExit(f"Error: {run}: exists and is not an empty folder; choose a new one")
    run.mkdir(parents=True, exist_ok=True)
    skipped = NOT_COPIED | {"scheduler"} | {part for phase in retrain for part in PHASE_PARTS[phase]}
    for part in sorted(p for p in model.iterdir() if p.is_dir() and p.name not in skipped):
        shutil.copytree(part, run / part.name)
    for phase in retrain:  # the trainer appends to a phase's log: start the retrained phases' afresh
        (run / "logs" / f"{phase}.jsonl").unlink(missing_ok=True)
    (run / DONE_DIR).mkdir()
    reused = [p for p in phases(have) if p not in retrain]
    for phase in reused:
        marker = dict(record["training"][phase], reused_from=str(sys.argv[1]))
        (run / DONE_DIR / f"{phase}.json").write_text(json.dumps(marker))
    todo = [p for p in phases(plan) if p not in reused]  # in the trainer's order
    print(f"{run}: seeded with {', '.join(reused)} from {sys.argv[1]}; to train: {', '.join(todo) or 'nothing'}")


if __name__ == "__main__":
    main()
