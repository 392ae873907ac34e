"""``train.stage2_batch_size`` / ``train.stage2_lr``: stage 2's own batch size and learning rate,
so that a new stage 2 can train at a large batch on a finished model's stage 1."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import microforge.training.tim3_trainer as trainer
from microforge.errors import MicroforgeError
from microforge.models.tim3 import TrainConfig, load_tim3_config, tim3_config_from_dict
from microforge.training.tim3_trainer import train_tim3

from .conftest import MICRO, micro_with_train, run_seed_script, seeded_run

GPU_PLAN = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_train_plan.py"


def test_stage_2_follows_stage_1_unless_it_has_its_own():
    assert TrainConfig().stage_batch(1) == TrainConfig().stage_batch(2) == (16, 3e-4)
    own = TrainConfig(batch_size=8, lr=1e-3, stage2_batch_size=128, stage2_lr=4e-4)
    assert own.stage_batch(1) == (8, 1e-3) and own.stage_batch(2) == (128, 4e-4)
    assert TrainConfig(batch_size=8, stage2_lr=4e-4).stage_batch(2) == (8, 4e-4)


@pytest.mark.parametrize(
    ("field", "value"), [("stage2_batch_size", 0), ("batch_size", -4), ("stage2_lr", 0.0), ("lr", float("nan"))]
)
def test_batch_sizes_and_learning_rates_must_be_positive(field, value):
    with pytest.raises(MicroforgeError, match=f"train {field} must be a positive number"):
        tim3_config_from_dict(micro_with_train(**{field: value}))


@pytest.mark.parametrize(
    ("train", "retrained"),
    [
        ({"stage2_batch_size": 2, "stage2_lr": 1e-3}, "stage2"),
        ({"batch_size": 2}, "stage1, stage2"),  # stage 2's is null: it follows
        ({"batch_size": 2, "stage2_batch_size": 4}, "stage1"),  # 4 is the micro model's batch already
        ({"checkpoint_every": 2, "keep_checkpoints": 5}, "nothing"),
    ],
)
def test_seeding_retrains_the_stages_whose_batch_or_rate_changes(micro_model, tmp_path, train, retrained):
    stdout = seeded_run(micro_model, micro_with_train(**train), tmp_path, "run")[2]
    assert stdout.rstrip().endswith(f"to train: {retrained}"), stdout


def test_stage_2_trains_at_its_own_batch_size_and_rate(micro_model, tiny_bench, tmp_path, monkeypatch):
    config, run, _ = seeded_run(micro_model, micro_with_train(stage2_batch_size=3, stage2_lr=1e-3), tmp_path, "own")
    sizes: list[int] = []
    rates: dict[str, float] = {}
    sample, loop = trainer.TiM3Trainer._sample_idx, trainer.TiM3Trainer._loop

    def spy_sample(self, gen, batch):
        sizes.append(batch)
        return sample(self, gen, batch)

    def spy_loop(self, i, phase, modules, loss_fn, steps, lr, *args, **kwargs):
        rates[phase] = lr
        return loop(self, i, phase, modules, loss_fn, steps, lr, *args, **kwargs)

    monkeypatch.setattr(trainer.TiM3Trainer, "_sample_idx", spy_sample)
    monkeypatch.setattr(trainer.TiM3Trainer, "_loop", spy_loop)
    train_tim3(tiny_bench.root, run, load_tim3_config(config), resume=True, progress=False)
    assert rates == {"stage2": 1e-3}
    assert len(sizes) == 10 and set(sizes) == {3}  # the micro config's 10 stage-2 steps


def test_the_gpu_plan_gives_stage_2_the_budget_and_leaves_stage_1_to_the_seeded_model(micro_model, tmp_path):
    """benchmarks/gpu_run.sh's stage-2 plan: stage 2's steps, batch, rate and (asked here) UNet
    widths change, nothing of stage 1's, so seeding from the model retrains stage 2 alone. (One
    plan: the script times 20 steps, which is most of this test's time.)"""
    plan, widths = tmp_path / "plan.yaml", (24, 48, 48)
    args = ["--config", str(MICRO), "--seconds", "1", "--batch-size", "6", "--lr", "5e-4", "--stage2-only"]
    args += ["--stage2-widths", "24,48,48"]
    done = subprocess.run(
        [sys.executable, str(GPU_PLAN), *args, "--device", "cpu", "--out", str(plan)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    planned = yaml.safe_load(plan.read_text())
    train, micro = planned["train"], load_tim3_config(MICRO).train
    assert tuple(planned["unet_stage2"]["block_out_channels"]) == widths
    assert planned["unet"] == load_tim3_config(MICRO).to_dict()["unet"]
    assert (train["stage2_batch_size"], train["stage2_lr"]) == (6, 5e-4) and train["stage2_steps"] >= 1
    assert (train["steps"], train["batch_size"], train["lr"]) == (micro.steps, micro.batch_size, micro.lr)
    seeded = run_seed_script(micro_model, plan, tmp_path / "run")
    assert seeded.returncode == 0 and seeded.stdout.rstrip().endswith("to train: stage2"), seeded.stderr
