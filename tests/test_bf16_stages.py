"""``train.bf16_stages``: the diffusion stages trained under bfloat16 autocast."""

import json

import pytest
import torch
from click.testing import CliRunner

import microforge.cpu_features as cpu_features
import microforge.training.tim3_trainer as trainer
from microforge.cli import cli
from microforge.errors import MicroforgeError
from microforge.models.tim3 import load_tim3_config, tim3_config_from_dict
from microforge.pipelines.tim3 import TiM3Pipeline
from microforge.training.tim3_trainer import train_tim3

from .conftest import MICRO, assert_micro_samples_reproduce, micro_with_train, seeded_run


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
    assert tim3_config_from_dict(micro_with_train(bf16_stages=[2])).train.bf16_stages == (2,)
    with pytest.raises(MicroforgeError, match=r"train bf16_stages names diffusion stages 1 and 2 only, got \[3\]"):
        tim3_config_from_dict(micro_with_train(bf16_stages=[3]))


def test_stage_2_trains_under_bf16_autocast_and_says_so(micro_model, tiny_bench, tmp_path, monkeypatch):
    """Seeding retrains only the stage whose precision changes; that stage's UNet predicts in
    bfloat16 in training (stage 1's stays fp32), its record says so, its weights are saved in fp32
    and differ from the fp32 ones, and the model samples and round-trips."""
    assert "to train: stage1" in seeded_run(micro_model, micro_with_train(bf16_stages=[1]), tmp_path, "stage1")[2]
    config, run, stdout = seeded_run(micro_model, micro_with_train(bf16_stages=[2]), tmp_path, "bf16")
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
    config, run, _ = seeded_run(micro_model, micro_with_train(steps=9), tmp_path, "fp32")
    seen = _predicted_dtypes(monkeypatch)
    train_tim3(tiny_bench.root, run, load_tim3_config(config), resume=True, progress=False)
    assert seen and set(seen) == {torch.float32}


@pytest.mark.parametrize(
    ("machine", "avx512_bf16", "amx", "expected"),
    [
        ("x86_64", False, False, False),
        ("x86_64", True, False, True),
        ("AMD64", False, True, True),
        ("arm64", True, True, None),
    ],
)
def test_native_bf16_reads_the_cpu_probes_on_x86_only(monkeypatch, machine, avx512_bf16, amx, expected):
    monkeypatch.setattr(cpu_features.platform, "machine", lambda: machine)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert cpu_features.native_bf16() is expected


@pytest.mark.parametrize(
    ("asked", "native", "warned"),
    [(True, False, True), (True, True, False), (True, None, False), (False, False, False)],
)
def test_bf16_warning_only_where_bf16_is_asked_on_a_cpu_that_emulates_it(monkeypatch, asked, native, warned):
    monkeypatch.setattr(cpu_features, "native_bf16", lambda: native)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    message = cpu_features.bf16_warning(asked)
    assert (message is not None) is warned
    if warned:
        assert message.startswith("this CPU has no bfloat16 units (AVX512-BF16 or AMX)")


@pytest.mark.parametrize(
    ("command", "config"),
    [
        (["train", "tim3"], "benchmarks/candidates/x-stage2-bf16.yaml"),
        (["fingerprint", "train"], "configs/fingerprint-tiny-bf16.yaml"),
    ],
)
def test_training_commands_warn_before_a_bf16_run_on_a_cpu_without_bf16_units(monkeypatch, tmp_path, command, config):
    """The warning is one stderr line; the run goes on (here to the missing data folder's error)."""
    monkeypatch.setattr(cpu_features, "native_bf16", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = [*command, "--data", str(tmp_path / "missing"), "--config", config, "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("warning: this CPU has no bfloat16 units") and lines[1].startswith("Error: ")
    monkeypatch.setattr(cpu_features, "native_bf16", lambda: True)
    assert "warning" not in CliRunner().invoke(cli, args).stderr
