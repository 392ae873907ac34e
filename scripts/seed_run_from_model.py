"""Start a TiM3 run folder from a finished model, so that `microforge train tim3 --resume` trains only
the phases that CONFIG changes:

- the adversarial fine-tune of the micrograph decoder (``vae_image``'s adversarial fields), which
  changes no latent and so leaves every other phase valid;
- each diffusion stage whose objective CONFIG changes (prediction type, min-SNR weighting, noise
  schedule, its shift, the sampler's timestep spacing: the top-level fields, which are both
  stages' unless ``stage1_objective`` gives stage 1 its own): the autoencoders (and their latents)
  are reused, the stage is trained anew;
- one stage, when CONFIG changes only its length, its learning-rate decay, its property noise, its
  batch size or its learning rate (``train.steps``, ``train.lr_decay``,
  ``train.property_noise_scale``, ``train.batch_size`` and ``train.lr``: stage 1;
  ``train.stage2_steps``, ``train.stage2_lr_decay``, ``train.stage2_property_noise_scale``,
  ``train.stage2_batch_size`` and ``train.stage2_lr``: stage 2; a stage-2 field left null follows
  stage 1's, and so does what it invalidates;
  ``train.property_noise`` off is a scale of 0 for both), or, for stage 2, its redrawn map
  conditions (``train.stage2_redrawn_maps`` and ``stage2_map_redraw_strength``);
- the map autoencoder and stage 1, when CONFIG changes the ``vae_map`` section: stage 2 reads the
  true maps (and trains its own map encoder, if any), never the map autoencoder, so it is reused;
- the micrograph autoencoder, its adversarial fine-tune and stage 2, when CONFIG changes the
  ``vae_image`` section beyond its adversarial fields (stage 2 denoises that autoencoder's
  latents); the map autoencoder and stage 1 read no micrograph, so they are reused;
- a stage, when CONFIG changes its UNet (``unet`` for stage 1, and for stage 2 unless
  ``unet_stage2`` is given): its widths, depth, or which of its levels have attention
  (``attention_max_size`` is compared by the levels it gives the stage's latent, so a limit that
  changes nothing is no change).

The sampler's settings (``sampler``, ``sampling_steps``, ``guidance_scale``, ``guidance_interval``,
``ddim_eta``, and the micrograph stage's ``stage2_guidance_scale``, ``stage2_guidance_interval``,
``stage2_ddim_eta`` and ``observation_noise_std``) are read by no phase, so CONFIG may change them without retraining
anything, except where stage 2 trains on stage 1's redraws of its maps
(``train.stage2_redrawn_maps`` above 0): those are drawn with the map stage's sampler settings and
the map phases, so a change of either retrains stage 2 too. How often the run saves resumable
state (``train.checkpoint_every``, ``train.keep_checkpoints``) may change freely as well.

    python scripts/seed_run_from_model.py MODEL CONFIG RUN [--map-phases-from OTHER]
    microforge train tim3 --data data/ti-synth --config CONFIG --out RUN --resume

``--map-phases-from OTHER`` takes the map autoencoder and stage 1 from a second model instead of
training them: the SEM and OM renderings of a specimen share its phase map, properties and split,
and these phases read no micrograph, so a model of the other modality whose config agrees with
CONFIG on every field those phases read (everything but the modality, ``vae_image``, stage 2's map
condition, steps and decay, and the sampler's settings) has exactly the phases CONFIG would train.

MODEL: a TiM3 folder or bundled:NAME. CONFIG must equal the model's own config apart from those
fields; anything else would make the copied phases wrong, and is refused. So is a change of the
adversarial fields when the model's decoder is already fine-tuned: its decoder before the
fine-tune is not kept, so the phase cannot be redone. RUN must be new or
empty. Each copied phase gets a ``.done`` marker with the model's own record of it (steps and
seconds), so the new model's config.json keeps the whole training history; a copied autoencoder's
marker also carries its latents' scaling factor as the model recorded it, which the trainer then
uses rather than measuring it anew (on weights stored in float16 it would move in the fourth digit,
and the reused stages were trained at the recorded one).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import yaml

from microforge.models.tim3 import tim3_config_from_dict
from microforge.pipelines.registry import resolve_model
from microforge.training.tim3_trainer import DONE_DIR, phases

ADVERSARIAL_FIELDS = {"adversarial_steps", "adversarial_weight", "adversarial_lr", "adversarial_condition"}
# the diffusion objective, both stages' unless stage1_objective gives stage 1 its own: changing a stage's
# retrains that stage
OBJECTIVE_FIELDS = {"prediction_type", "snr_gamma", "beta_schedule", "schedule_shift", "timestep_spacing"}
# the sampler's settings: no phase reads them, so a CONFIG may change them freely (stage 1's redraws
# of the maps, where stage 2 trains on them, are drawn with these)
SAMPLER_FIELDS = {"sampler", "sampling_steps", "guidance_scale", "guidance_interval", "ddim_eta"}
# the micrograph stage's own sampling settings: read by no phase and by no redraw
STAGE2_SAMPLER_FIELDS = {
    "stage2_guidance_scale",
    "stage2_guidance_interval",
    "stage2_ddim_eta",
    "observation_noise_std",
}
# the train section's per-stage fields, compared as each stage's (steps, decay, property noise scale, bf16,
# batch size, learning rate): TrainConfig.stage_schedule, noise_scale and stage_batch
STAGE_FIELDS = {
    "steps",
    "stage2_steps",
    "lr_decay",
    "stage2_lr_decay",
    "batch_size",
    "lr",
    "stage2_batch_size",
    "stage2_lr",
    "property_noise",
    "property_noise_scale",
    "stage2_property_noise_scale",
    "stage2_redrawn_maps",
    "stage2_map_redraw_strength",
    "bf16_stages",
}
# how often a run saves resumable state: no weight depends on it (a resumed run equals an uninterrupted one)
RUN_STATE_FIELDS = {"checkpoint_every", "keep_checkpoints"}
# the memory layout the stages train in: the same arithmetic with other float rounding, as another CPU's
# kernels give, so a CONFIG may change it freely (the bundled stages were trained contiguous)
LAYOUT_FIELDS = {"channels_last"}
PHASE_PARTS = {  # the model folder's parts each phase writes (scheduler/ is written anew by every run)
    "vae_image": {"vae_image"},
    "vae_image_adversarial": {"vae_image"},
    "vae_map": {"vae_map"},
    "stage1": {"unet_stage1", "encoder_stage1"},
    "stage2": {"unet_stage2", "encoder_stage2", "map_encoder"},
}
NOT_COPIED = {"regressor", "checkpoints", DONE_DIR}  # trained apart, or run state
MAP_PHASES = ("vae_map", "stage1")
# the fields the map phases never read: the micrograph's, stage 2's and the sampler's
NOT_READ_BY_MAP_PHASES = {
    *("modality", "vae_image", "map_condition", "map_condition_channels"),
    *SAMPLER_FIELDS,
    *STAGE2_SAMPLER_FIELDS,
}


def _adversarial(cfg) -> dict:
    """``cfg``'s vae_image adversarial fields."""
    return {k: v for k, v in cfg.to_dict()["vae_image"].items() if k in ADVERSARIAL_FIELDS}


def _comparable(cfg) -> dict:
    """``cfg`` as a dict without vae_image's adversarial fields, the checkpointing and layout fields, with the
    per-stage train fields replaced by each stage's (steps, learning-rate decay, property noise scale,
    bf16 autocast, batch size, learning rate), and the UNet
    sections by each stage's UNet as built (:func:`_comparable_unet`)."""
    d = {k: v for k, v in cfg.to_dict().items() if k not in OBJECTIVE_FIELDS | {"stage1_objective"}}
    d["objectives"] = {f"stage{i}": dataclasses.asdict(cfg.objective(i)) for i in (1, 2)}  # each stage's own
    d["vae_image"] = {k: v for k, v in d["vae_image"].items() if k not in ADVERSARIAL_FIELDS}
    d["train"] = {k: v for k, v in d["train"].items() if k not in STAGE_FIELDS | RUN_STATE_FIELDS | LAYOUT_FIELDS}
    t = cfg.train
    d["train"]["schedules"] = {
        f"stage{i}": (*t.stage_schedule(i), t.noise_scale(i), i in t.bf16_stages, *t.stage_batch(i)) for i in (1, 2)
    }
    share = cfg.train.stage2_redrawn_maps  # the strength matters only where some maps are redrawn
    d["train"]["schedules"]["stage2"] += (share, cfg.train.stage2_map_redraw_strength if share else None)
    d["redraws_maps"] = bool(share and cfg.two_stage)
    del d["unet"], d["unet_stage2"]
    d["unets"] = {"stage1": _comparable_unet(cfg, 1) if cfg.two_stage else None, "stage2": _comparable_unet(cfg, 2)}
    return d


def _comparable_unet(cfg, stage: int) -> dict:
    """Diffusion ``stage``'s UNet as built: its config with the attention limit replaced by the
    levels with attention it gives the stage's latent, and the stage list of global conditioning
    by whether this stage has it."""
    unet = cfg.stage_unet(stage)
    size = cfg.map_latent_size if stage == 1 else cfg.image_latent_size
    d = {k: v for k, v in dataclasses.asdict(unet).items() if k not in ("attention_max_size", "global_condition")}
    return {**d, "attention_levels": unet.levels_with_attention(size), "global": stage in cfg.unet.global_condition}


def _without_retrainable(d: dict) -> dict:
    d = {
        k: v
        for k, v in d.items()
        if k
        not in SAMPLER_FIELDS | STAGE2_SAMPLER_FIELDS | {"objectives", "vae_map", "vae_image", "unets", "redraws_maps"}
    }
    d["train"] = {k: v for k, v in d["train"].items() if k != "schedules"}
    return d


def _read_by_map_phases(d: dict) -> dict:
    """The fields of a comparable config that the map autoencoder and stage 1 read."""
    d = {k: v for k, v in d.items() if k not in NOT_READ_BY_MAP_PHASES | {"redraws_maps"}}
    d["train"] = {**d["train"], "schedules": d["train"]["schedules"]["stage1"]}
    d["unets"] = d["unets"]["stage1"]
    d["objectives"] = d["objectives"]["stage1"]
    return d


def _retrained(kept: dict, planned: dict, forced: set[str] = frozenset()) -> set[str]:
    """The phases that the differences between two comparable configs invalidate, with the
    ``forced`` ones (``--retrain``) and what they invalidate in turn; the configs must agree beyond
    the fields this script knows how to retrain around."""
    retrain = set(forced)
    retrain |= {phase for phase in kept["objectives"] if kept["objectives"][phase] != planned["objectives"][phase]}
    old, new = kept["train"]["schedules"], planned["train"]["schedules"]
    retrain |= {phase for phase in old if old[phase] != new[phase]}
    retrain |= {phase for phase in kept["unets"] if kept["unets"][phase] != planned["unets"][phase]}
    if kept["vae_map"] != planned["vae_map"]:
        retrain |= {"vae_map", "stage1"}
    if kept["vae_image"] != planned["vae_image"]:  # compared without the adversarial fields
        retrain |= {"vae_image", "vae_image_adversarial", "stage2"}
    # a stage 2 trained on stage 1's redraws of its maps reads the map phases and the sampler too
    if planned["redraws_maps"] and (retrain & set(MAP_PHASES) or any(kept[f] != planned[f] for f in SAMPLER_FIELDS)):
        retrain.add("stage2")
    return retrain


def _load(model: str) -> tuple[Path, dict, object]:
    """A model's folder, its config.json record and its TiM3Config."""
    folder = Path(resolve_model(model))
    record = json.loads((folder / "config.json").read_text())
    return folder, record, tim3_config_from_dict(record["config"], str(folder / "config.json"), saved=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a TiM3 folder or bundled:NAME")
    parser.add_argument("config", type=Path, help="the config the run will train with")
    parser.add_argument("run", type=Path, help="a new or empty folder")
    parser.add_argument("--map-phases-from", metavar="OTHER", help="take vae_map and stage 1 from this model")
    parser.add_argument(
        "--retrain",
        action="append",
        default=[],
        choices=["stage1", "stage2"],
        help="also train this diffusion stage anew though CONFIG does not change it (to measure it under another"
        " memory layout, say); repeatable",
    )
    args = parser.parse_args()
    if "stage1" in args.retrain and args.map_phases_from:
        raise SystemExit("Error: --retrain stage1: stage 1 comes from --map-phases-from; give one of the two")
    config, run = args.config, args.run
    model, record, have = _load(args.model)
    plan = tim3_config_from_dict(yaml.safe_load(config.read_text()), str(config))
    kept, planned = _comparable(have), _comparable(plan)
    if _without_retrainable(kept) != _without_retrainable(planned):
        raise SystemExit(
            f"Error: {config}: differs from {model}'s config beyond vae_image, the diffusion objective,"
            " the stages' steps, learning-rate decay, property noise and UNets, vae_map and the sampler"
        )
    retrain = _retrained(kept, planned, set(args.retrain))
    if (
        "vae_image_adversarial" in phases(have)
        and "vae_image" not in retrain
        and _adversarial(have) != _adversarial(plan)
    ):
        raise SystemExit(
            f"Error: {config}: changes vae_image's adversarial fields, but {model}'s decoder is already"
            " fine-tuned and its decoder from before the fine-tune is not kept; train that from scratch"
        )
    sources = {phase: (model, record, args.model) for phase in phases(have)}
    if args.map_phases_from:
        other, other_record, other_cfg = _load(args.map_phases_from)
        if not other_cfg.two_stage or _read_by_map_phases(_comparable(other_cfg)) != _read_by_map_phases(planned):
            raise SystemExit(
                f"Error: --map-phases-from {args.map_phases_from}: its config differs from {config} in fields"
                " that the map autoencoder or stage 1 read"
            )
        retrain -= set(MAP_PHASES)
        if planned["redraws_maps"]:  # its redraws would come from the other model's map phases
            retrain.add("stage2")
        sources.update({phase: (other, other_record, args.map_phases_from) for phase in MAP_PHASES})
    if run.exists() and (not run.is_dir() or any(run.iterdir())):
        raise SystemExit(f"Error: {run}: exists and is not an empty folder; choose a new one")
    run.mkdir(parents=True, exist_ok=True)
    taken = {part for phase in MAP_PHASES if sources[phase][0] != model for part in PHASE_PARTS[phase]}
    skipped = NOT_COPIED | {"scheduler"} | taken | {part for phase in retrain for part in PHASE_PARTS[phase]}
    for part in sorted(p for p in model.iterdir() if p.is_dir() and p.name not in skipped):
        shutil.copytree(part, run / part.name)
    for phase in retrain:  # the trainer appends to a phase's log: start the retrained phases' afresh
        (run / "logs" / f"{phase}.jsonl").unlink(missing_ok=True)
    (run / DONE_DIR).mkdir()
    reused = [p for p in phases(plan) if p in sources and p not in retrain]
    for phase in reused:
        folder, phase_record, name = sources[phase]
        if folder != model:  # the other model's parts and log of this phase
            for part in PHASE_PARTS[phase] & {p.name for p in folder.iterdir()}:
                shutil.copytree(folder / part, run / part)
            log = folder / "logs" / f"{phase}.jsonl"
            (run / "logs").mkdir(exist_ok=True)
            (run / "logs" / log.name).unlink(missing_ok=True)
            if log.exists():
                shutil.copy(log, run / "logs" / log.name)
        marker = dict(phase_record["training"][phase], reused_from=name)
        if phase in phase_record.get("scaling_factors", {}):  # an autoencoder: its latents' factor, as trained at
            marker["scaling_factor"] = phase_record["scaling_factors"][phase]
        (run / DONE_DIR / f"{phase}.json").write_text(json.dumps(marker))
    todo = [p for p in phases(plan) if p not in reused]  # in the trainer's order
    print(
        f"{run}: seeded with {', '.join(reused)} from {args.model}"
        + (f" (vae_map, stage1 from {args.map_phases_from})" if args.map_phases_from else "")
        + f"; to train: {', '.join(todo) or 'nothing'}"
    )


if __name__ == "__main__":
    main()
