"""One source of truth for defaults: every config file that the help calls a command's default
equals the dataclass defaults that the command uses without --config."""

import dataclasses
import json

import pytest

from microforge.config import load_config, plain_data
from microforge.io import read_yaml_mapping
from microforge.data.synth.config import SynthConfig
from microforge.fingerprint import FingerprintTrainConfig, load_fingerprint_config
from microforge.models.baselines import BASELINE_KINDS, baseline_config_from_dict, baseline_defaults
from microforge.models.tim3 import TiM3Config, load_tim3_config, tim3_config_from_dict
from microforge.pipelines.registry import resolve_model
from microforge.training.regressor_trainer import RegressorTrainConfig


def plain(cfg) -> dict:
    return plain_data(dataclasses.asdict(cfg))


def test_tim3_defaults_are_the_tiny_config():
    assert plain(load_tim3_config(None)) == plain(TiM3Config()) == plain(load_tim3_config("configs/tim3-tiny.yaml"))


def test_om_config_is_the_tiny_recipe_on_the_om_renderings():
    """Since candidate u (docs/tim3.md) the OM model is trained as the SEM one, only on what it is
    shown; since 2026-12-07 it also samples its micrograph stage stochastically (DDIM eta 1), which
    its measurement favoured and the SEM model's did not."""
    om = {**plain(TiM3Config()), "modality": "OM", "stage2_ddim_eta": 1.0}
    assert plain(load_tim3_config("configs/tim3-tiny-om.yaml")) == om


@pytest.mark.parametrize("base", ["tim3-tiny", "tim3-tiny-om"])
def test_each_bf16_config_is_its_recipe_with_stage_2_under_bf16(base):
    """The bundled models' recipes since 2026-12-08 (candidate x, docs/tim3.md): stage 2 under bf16
    autocast, which CPUs with bf16 units train faster, and nothing else."""
    recipe = plain(load_tim3_config(f"configs/{base}.yaml"))
    bf16 = plain(load_tim3_config(f"configs/{base}-bf16.yaml"))
    assert recipe["train"]["bf16_stages"] == [] and bf16 == {**recipe, "train": {**recipe["train"], "bf16_stages": [2]}}


@pytest.mark.parametrize(("name", "config"), [("ti-sem-tiny", "tim3-tiny-bf16"), ("ti-om-tiny", "tim3-tiny-om-bf16")])
def test_bundled_models_were_trained_with_their_config_files(name, config):
    saved = json.loads((resolve_model(f"bundled:{name}") / "config.json").read_text())["config"]
    assert plain(tim3_config_from_dict(saved)) == plain(load_tim3_config(f"configs/{config}.yaml"))


@pytest.mark.parametrize("kind", BASELINE_KINDS)
def test_each_baseline_defaults_are_its_tiny_config(kind):
    assert (
        baseline_defaults(kind).to_dict()
        == baseline_config_from_dict(read_yaml_mapping(f"configs/{kind}-tiny.yaml")).to_dict()
    )


def test_ddpm_without_a_config_gets_lee_and_yun_T():
    assert (
        baseline_defaults("ddpm").num_train_timesteps == 4000 and baseline_defaults("ccdm").num_train_timesteps == 1000
    )


def test_fingerprint_regressor_and_synth_defaults_are_their_config_files():
    assert FingerprintTrainConfig().to_dict() == load_fingerprint_config("configs/fingerprint-tiny.yaml").to_dict()
    assert FingerprintTrainConfig().steps == 3000
    # the bf16 recipe is the tiny one with the forward pass under bf16 autocast, and nothing else
    bf16 = load_fingerprint_config("configs/fingerprint-tiny-bf16.yaml").to_dict()
    assert bf16 == {**FingerprintTrainConfig().to_dict(), "autocast": "bf16"}
    refined = load_fingerprint_config("configs/fingerprint-tiny-refined.yaml").to_dict()
    assert refined == {**FingerprintTrainConfig().to_dict(), "refiner_steps": 4000}
    assert plain(RegressorTrainConfig()) == plain(load_config(RegressorTrainConfig, "configs/regressor-tiny.yaml"))
    # the OM regressor is the same recipe on the OM renderings
    om = plain(load_config(RegressorTrainConfig, "configs/regressor-tiny-om.yaml"))
    assert om == {**plain(RegressorTrainConfig()), "modality": "OM"}
    assert plain(SynthConfig()) == plain(load_config(SynthConfig, "configs/synth-default.yaml"))


def test_a_partial_section_keeps_the_section_defaults():
    cfg = load_tim3_config("tests/data/tim3-micro.yaml")
    # the micro config gives vae_map's steps but not its lr: the map section's own default applies
    assert cfg.vae_map.lr == TiM3Config().vae_map.lr and cfg.vae_map.steps == 8


def test_cli_defaults_are_the_dataclasses():
    """The help of `evaluate` and `segment train` shows the dataclasses' defaults, not copies."""
    from microforge.cli import cli
    from microforge.evaluate.options import EvaluationOptions
    from microforge.training.segmenter_config import SegmenterTrainConfig

    def defaults(*path: str) -> dict:
        command = cli
        for name in path:
            command = command.commands[name]
        return {p.name: p.default for p in command.params}

    ev, opts = defaults("evaluate"), EvaluationOptions()
    for name in ("n", "n_reference", "n_describe", "batch_size", "seed", "n_sweep"):
        assert ev[name] == getattr(opts, name), name
    seg, cfg = defaults("segment", "train"), SegmenterTrainConfig()
    for name in ("steps", "batch_size", "crop", "seed"):
        assert seg[name] == getattr(cfg, name), name


def test_cli_guidance_range_is_the_configs():
    """cli.py writes the guidance range out (it may not import config before it sets the threads);
    it must stay the range config.check_guidance enforces."""
    from microforge.cli import GUIDANCE
    from microforge.config import GUIDANCE_MAX

    assert (GUIDANCE.lo, GUIDANCE.hi) == (0.0, GUIDANCE_MAX)
