"""``train.bf16_stages``: the diffusion stages trained under bfloat16 autocast."""

import json

import pytest
import torch

import microforge.training.tim3_trainer as trainer
from microforge.errors import MicroforgeError
from microforge.models.tim3 import load_tim3_config, tim3_config_from_dict
from microforge.pipelines.tim3 import TiM3Pipeline
from microforge.training.tim3_trainer import train_tim3

from .conftest import MICRO, assert_micro_samples_reproduce, seeded_run


def _micro(**train) -> dict:
    d = load_tim3_config(MICRO).to_dict()
    d["train"] = {**d["train"], **train}
    return d


def _predicted_dtypes(monkeypatch) -> list[torch.dtype]:
    """The dtypes of the trainer's UNet predictions, in the order they are made."""
    seen: list[torch.dtype] = []
    predict = trainer.predict_noise

    def spy(unet, *args):
        out = predict(unet, *args)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(trainer, "predict_noise", spy)
    return seen


def test_bf16_stages_are_checked_and_off_by_default():
    assert load_tim3_config(MICRO).train.bf16_stages == ()
    assert tim3_config_from_dict(_micro(bf16_stages=[2])).train.bf16_stages == (2,)
    with pytest.raises(MicroforgeError, match=r"train bf16_stages names diffusion stages 1 and 2 only, got \[3\]"):
        tim3_config_from_dict(_micro(bf16_stages=[3]))


def test_stage_2_trains_under_bf16_autocast_and_says_so(micro_model, tiny_bench, tmp_path, monkeypatch):
    """Seeding retrains only the stage whose precision changes; that stage's UNet predicts in
    bfloat16 in training (stage 1's stays fp32), its record says so, its weights are saved in fp32
    and differ from the fp32 ones, and the model samples and round-trips."""
    assert "to train: stage1" in seeded_run(micro_model, _micro(bf16_stages=[1]), tmp_path, "stage1")[2]
    config, run, stdout = seeded_run(micro_model, _micro(bf16_stages=[2]), tmp_path, "bf16")
    assert "to train: stage2" in stdout and "stage1" not in stdout.split("to train:")[1]
    seen = _predicted_dtypes(monkeypatch)
    train_tim3(tiny_bench.root, run, load_tim3_config(config), resume=True, progress=False)
    assert seen and set(seen) == {torch.bfloat16}
    record = json.loads((run / "config.json").read_text())["training"]
    assert record["stage2"]["autocast"] == "bf16" and "autocast" not in record["stage1"]
    pipe = TiM3Pipeline.from_pretrained(run)
    weights, fp32 = (p.modules["unet_stage2"].state_dict() for p in (pipe, TiM3Pipeline.from_pretrained(micro_model)))
    assert all(v.dtype == torch.float32 for v in weights.values())
    assert any(not torch.equal(weights[k], fp32[k]) for k in weights)
    assert_micro_samples_reproduce(pipe, tmp_path)


def test_an_fp32_stage_predicts_in_fp32(micro_model, tiny_bench, tmp_path, monkeypatch):
    config, run, _ = seeded_run(micro_model, _micro(steps=9), tmp_path, "fp32")
    seen = _predicted_dtypes(monkeypatch)
    train_tim3(tiny_bench.root, run, load_tim3_config(config), resume=True, progress=False)
    assert seen and set(seen) == {torch.float32}
