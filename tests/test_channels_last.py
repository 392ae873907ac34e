"""``train.channels_last``: the diffusion stages' UNets train and sample, and the autoencoders train, in
the channels-last memory layout, which changes the float rounding and nothing else."""

import json
import subprocess
import sys

import numpy as np
import torch

from microforge.models.tim3 import load_tim3_config, tim3_config_from_dict
from microforge.pipelines.tim3 import TiM3Pipeline
from microforge.training.tim3_trainer import train_tim3

from .conftest import MICRO, REPO, assert_micro_samples_reproduce, micro_with_train, run_seed_script, seeded_run


def _channels_last(module: torch.nn.Module) -> bool:
    """Whether ``module``'s last convolution (several input channels: unambiguous) is channels-last."""
    return module.conv_out.weight.is_contiguous(memory_format=torch.channels_last)


def test_the_stages_train_channels_last_by_default_and_say_so(micro_model):
    assert load_tim3_config(MICRO).train.channels_last is True
    record = json.loads((micro_model / "config.json").read_text())["training"]
    phases = ("vae_image", "vae_map", "stage1", "stage2")
    assert [record[p]["memory_format"] for p in phases] == ["channels_last"] * 4
    pipe = TiM3Pipeline.from_pretrained(micro_model)  # sampling reads the UNets in the same layout
    assert _channels_last(pipe.modules["unet_stage1"]) and _channels_last(pipe.modules["unet_stage2"])
    assert not _channels_last(pipe.modules["vae_image"].encoder)


def test_a_stage_retrained_in_either_layout_differs_by_rounding_only(micro_model, tiny_bench, tmp_path):
    """``--retrain stage2`` under the model's own config trains stage 2 again and nothing else, and
    reproduces it exactly (same seeds, same layout); in the contiguous layout the weights differ,
    but only by float rounding, and the record says which layout trained the stage."""
    config, same, stdout = seeded_run(micro_model, micro_with_train(), tmp_path, "same", "--retrain", "stage2")
    assert stdout.rstrip().endswith("to train: stage2")
    train_tim3(tiny_bench.root, same, load_tim3_config(config), resume=True, progress=False)
    config, flat, stdout = seeded_run(
        micro_model, micro_with_train(channels_last=False), tmp_path, "flat", "--retrain", "stage2"
    )
    train_tim3(tiny_bench.root, flat, load_tim3_config(config), resume=True, progress=False)
    record = json.loads((flat / "config.json").read_text())["training"]
    assert "memory_format" not in record["stage2"] and record["stage1"]["memory_format"] == "channels_last"
    weights = [TiM3Pipeline.from_pretrained(m).modules["unet_stage2"].state_dict() for m in (micro_model, same, flat)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert any(not torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
    worst = max(float((weights[0][k] - weights[2][k]).abs().max() / weights[0][k].abs().max()) for k in weights[0])
    assert worst < 1e-4
    assert_micro_samples_reproduce(TiM3Pipeline.from_pretrained(flat), tmp_path)


def test_autoencoders_trained_in_either_layout_differ_by_rounding_only(micro_model, tiny_bench, tmp_path):
    """The micro model trained from scratch in the contiguous layout: its autoencoders' weights are
    not the channels-last ones, but agree with them to float rounding, and their records say which
    layout trained them."""
    flat = tmp_path / "flat"
    train_tim3(tiny_bench.root, flat, tim3_config_from_dict(micro_with_train(channels_last=False)), progress=False)
    record = json.loads((flat / "config.json").read_text())["training"]
    assert not any("memory_format" in record[p] for p in ("vae_image", "vae_map", "stage1", "stage2"))
    for name in ("vae_image", "vae_map"):
        want, got = (TiM3Pipeline.from_pretrained(m).modules[name].state_dict() for m in (micro_model, flat))
        assert any(not torch.equal(want[k], got[k]) for k in want)
        assert max(float((want[k] - got[k]).abs().max() / want[k].abs().max().clamp(min=1e-12)) for k in want) < 1e-4


def test_seeding_lets_the_layout_change_freely(micro_model, tmp_path):
    stdout = seeded_run(micro_model, micro_with_train(channels_last=False), tmp_path, "free")[2]
    assert stdout.rstrip().endswith("to train: nothing")
    config = seeded_run(micro_model, micro_with_train(), tmp_path, "config")[0]
    done = run_seed_script(
        micro_model, config, tmp_path / "both", "--retrain", "stage1", "--map-phases-from", str(micro_model)
    )
    assert done.returncode == 1 and done.stderr.strip() == (
        "Error: --retrain stage1: stage 1 comes from --map-phases-from; give one of the two"
    )
    assert not (tmp_path / "both").exists()


def test_the_speed_benchmark_times_both_layouts(tmp_path):
    """``benchmarks/tim3_speed.py --contiguous`` times each stage's training step in both layouts,
    three rounds each taken in turn, and the sampling in both; the medians are the rounds'."""
    out = tmp_path / "speed.json"
    args = ["--configs", str(MICRO), "--sample-configs", MICRO.stem, "--contiguous", "--train-repeats", "1"]
    args += ["--batches", "2", "--budget", "0.01", "--steps", "2", "--out", str(out)]
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "tim3_speed.py"), *args], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    rec = json.loads(out.read_text())["results"][MICRO.stem]
    for stage in (1, 2):
        for layout in ("channels_last", "contiguous"):
            rounds = rec[f"train_step_seconds_stage{stage}_{layout}_rounds"]
            assert len(rounds) == 3 and all(s > 0 for s in rounds)
            assert rec[f"train_step_seconds_stage{stage}_{layout}"] == float(np.median(rounds))
    assert rec["images_per_second_batch2"] > 0 and rec["images_per_second_batch2_contiguous"] > 0


def test_the_speed_benchmark_times_the_autoencoders_in_both_layouts(tmp_path):
    """``--autoencoders`` times each autoencoder's training step in both layouts, three rounds each."""
    out = tmp_path / "speed.json"
    args = ["--configs", str(MICRO), "--sample-configs", "--autoencoders", "--train-repeats", "1", "--out", str(out)]
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "tim3_speed.py"), *args], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    rec = json.loads(out.read_text())["results"][MICRO.stem]
    for which in ("vae_image", "vae_map"):
        for layout in ("channels_last", "contiguous"):
            rounds = rec[f"train_step_seconds_{which}_{layout}_rounds"]
            assert len(rounds) == 3 and all(s > 0 for s in rounds)
            assert rec[f"train_step_seconds_{which}_{layout}"] == float(np.median(rounds))
    assert not any(key.startswith("images_per_second") for key in rec)
