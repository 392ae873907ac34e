"""TiM3's config levers: the lossless space-to-depth codec and map condition, the shifted noise
schedule, v-prediction and min-SNR-gamma weighting, the learning-rate decay, and a model that uses
all of them."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler

from microforge.data.dataset import d4_batch, onehot_map
from microforge.errors import MicroforgeError
from microforge.models.tim3 import SpaceToDepth, build_unet, map_condition, tim3_config_from_dict
from microforge.pipelines.tim3 import TiM3Pipeline
from microforge.training.loop import lr_factor
from microforge.training.tim3_trainer import TiM3Trainer, make_scheduler, shifted_betas, train_tim3

from .conftest import assert_micro_samples_reproduce, micro_with_train, seeded_run

LEVERS = {
    "resolution": 32,
    "vae_image": {"kind": "space_to_depth", "factor": 2},
    "vae_map": {"kind": "space_to_depth", "factor": 4},
    "map_condition": "space_to_depth",
    "prediction_type": "v_prediction",
    "snr_gamma": 5.0,
    "beta_schedule": "squaredcos_cap_v2",
    "schedule_shift": 2.0,
    "timestep_spacing": "trailing",
    "unet_stage2": None,  # both stages from unet
    "unet": {
        "block_out_channels": [16, 32, 32],
        "norm_num_groups": 8,
        "attention_head_dim": 4,
        "attention_max_size": 8,
    },
    "encoder": {"dim": 16, "n_tokens": 2, "hidden": 32},
    "train": {"steps": 4, "stage2_steps": 6, "batch_size": 4, "checkpoint_every": 4},
    "split_fractions": [0.5, 0.25, 0.25],
}


def test_space_to_depth_is_lossless_and_saves_without_weights(tmp_path):
    codec = SpaceToDepth(channels=3, factor=4)
    x = torch.randn(2, 3, 16, 16)
    post = codec.encode(x).latent_dist
    assert post.mean.shape == (2, 48, 4, 4) and post.std.abs().max() == 0 and post.kl().abs().max() == 0
    assert torch.equal(post.mean[0, :, 0, 0].view(3, 4, 4), x[0, :, :4, :4])  # each 4 x 4 block becomes 16 channels
    assert torch.equal(codec.decode(post.sample()).sample, x)
    codec.save_pretrained(tmp_path / "c")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["config.json"]
    assert SpaceToDepth.from_pretrained(tmp_path / "c").config.factor == 4


def test_space_to_depth_config_sizes_the_unets():
    cfg = tim3_config_from_dict(LEVERS)
    assert (cfg.image_latent_size, cfg.map_latent_size) == (16, 8)
    s1, s2 = build_unet(cfg, 1), build_unet(cfg, 2)
    assert (s1.config.in_channels, s1.config.out_channels) == (48, 48)  # one-hot map, 3 x 4^2
    assert (s2.config.in_channels, s2.config.out_channels) == (4 + 12, 4)  # image 1 x 2^2 + lossless map 3 x 2^2
    for bad, match in [
        ({"vae_map": {"kind": "pca"}}, "vae_map kind"),
        ({"vae_image": {"kind": "space_to_depth", "factor": 3}}, "power of 2"),
        ({"prediction_type": "x0"}, "prediction_type"),
        ({"beta_schedule": "sigmoid"}, "beta_schedule"),
        ({"schedule_shift": 0}, "schedule_shift"),
        ({"snr_gamma": -1}, "snr_gamma"),
        ({"timestep_spacing": "x"}, "timestep_spacing"),
        ({"vae_map": {"kind": "space_to_depth", "signal_scale": 0}}, "vae_map signal_scale"),
    ]:
        with pytest.raises(MicroforgeError, match=match):
            tim3_config_from_dict({**LEVERS, **bad})


def test_lossless_map_condition_keeps_every_pixel():
    maps = torch.tensor(np.random.default_rng(0).integers(0, 3, (2, 8, 8)))
    onehot = onehot_map(maps)
    cond = map_condition(onehot, 4, None, lossless=True)
    assert cond.shape == (2, 12, 4, 4) and set(cond.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(F.pixel_shuffle(cond, 2).argmax(1), maps)
    area = map_condition(onehot, 4, None)  # the default: class shares per 2 x 2 cell
    assert area.shape == (2, 3, 4, 4) and torch.allclose((area[:, :, 0, 0] + 1) / 2, onehot[:, :, :2, :2].mean((2, 3)))


def test_shifted_schedule_divides_the_snr_by_the_shift_squared():
    base = make_scheduler(tim3_config_from_dict({**LEVERS, "schedule_shift": 1.0})).alphas_cumprod.double()
    shifted = make_scheduler(tim3_config_from_dict(LEVERS)).alphas_cumprod.double()
    snr = lambda a: a / (1 - a)  # noqa: E731
    t = torch.tensor([0, 100, 500, 900])
    assert torch.allclose(
        snr(shifted[t]) / snr(base[t]), torch.full((4,), 0.25, dtype=torch.float64), rtol=2e-3
    )  # float32 storage
    assert torch.allclose(
        shifted_betas(base, 1.0),
        make_scheduler(tim3_config_from_dict({**LEVERS, "schedule_shift": 1.0})).betas.double(),
        atol=1e-6,
    )
    # the sampler built from the saved config uses the same shifted schedule and the trailing spacing
    ddim = DDIMScheduler.from_config(make_scheduler(tim3_config_from_dict(LEVERS)).config)
    assert torch.allclose(ddim.alphas_cumprod.double(), shifted, atol=1e-6)
    ddim.set_timesteps(20)
    assert int(ddim.timesteps[0]) == 999 and ddim.config.prediction_type == "v_prediction"


def test_min_snr_weights_and_v_target(tiny_bench, tmp_path):
    trainer = TiM3Trainer(tiny_bench.root, tmp_path / "unused", tim3_config_from_dict(LEVERS), progress=False)
    a = trainer.stage_schedulers[2].alphas_cumprod
    t = torch.tensor([0, 400, 999])
    snr = a[t] / (1 - a[t])
    assert torch.allclose(
        trainer._loss_weights(t), snr.clamp(max=5.0) / (snr + 1), rtol=1e-5
    )  # v target: min(SNR, 5) / (SNR + 1)
    eps = tim3_config_from_dict({**LEVERS, "prediction_type": "epsilon"})
    trainer.cfg = eps
    assert torch.allclose(trainer._loss_weights(t), snr.clamp(max=5.0) / snr, rtol=1e-5)
    trainer.cfg = tim3_config_from_dict({**LEVERS, "snr_gamma": None})
    assert torch.equal(trainer._loss_weights(t), torch.ones(3))
    # v = sqrt(a) eps - sqrt(1 - a) x0 (Salimans & Ho), what the loss regresses on
    x0, noise = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    v = trainer.stage_schedulers[2].get_velocity(x0, noise, t)
    assert torch.allclose(v, a[t].sqrt().view(3, 1, 1, 1) * noise - (1 - a[t]).sqrt().view(3, 1, 1, 1) * x0, atol=1e-6)


def test_learning_rate_warms_up_then_holds_or_falls_as_half_a_cosine():
    # 100-step linear warm-up, then (cosine) 0.5 (1 + cos(pi (s - 100) / (steps - 100)))
    assert [lr_factor(s, 1100, "constant") for s in (0, 49, 99, 100, 1099)] == [0.01, 0.5, 1.0, 1.0, 1.0]
    assert lr_factor(0, 1100, "cosine") == 0.01 and lr_factor(100, 1100, "cosine") == 1.0
    assert lr_factor(600, 1100, "cosine") == pytest.approx(0.5)  # half-way down
    assert lr_factor(350, 1100, "cosine") == pytest.approx(0.5 * (1 + np.cos(np.pi / 4)))
    assert lr_factor(1099, 1100, "cosine") == pytest.approx(0.5 * (1 + np.cos(np.pi * 999 / 1000)))  # 2.5e-6
    with pytest.raises(MicroforgeError, match="train lr_decay must be one of constant, cosine, got 'step'"):
        tim3_config_from_dict({**LEVERS, "train": {**LEVERS["train"], "lr_decay": "step"}})
    with pytest.raises(MicroforgeError, match="train stage2_lr_decay must be one of"):
        tim3_config_from_dict({**LEVERS, "train": {**LEVERS["train"], "stage2_lr_decay": "linear"}})


def test_property_noise_scale_multiplies_each_stages_table_4_noise(tiny_bench, tmp_path):
    train = LEVERS["train"]
    tiny = tim3_config_from_dict(LEVERS)  # the tiny default: stage 1 at half of Table 4's, stage 2 at Table 4's
    assert (tiny.train.noise_scale(1), tiny.train.noise_scale(2)) == (0.5, 1.0)
    cfg = tim3_config_from_dict({**LEVERS, "train": {**train, "stage2_property_noise_scale": None}})
    assert (cfg.train.noise_scale(1), cfg.train.noise_scale(2)) == (0.5, 0.5)  # None: stage 2 follows stage 1
    apart = tim3_config_from_dict(
        {**LEVERS, "train": {**train, "property_noise_scale": 1.0, "stage2_property_noise_scale": 0.0}}
    )
    assert (apart.train.noise_scale(1), apart.train.noise_scale(2)) == (1.0, 0.0)
    # a model folder's record written before the scales existed was trained with Table 4's noise in both
    older = {**tiny.to_dict(), "train": {k: v for k, v in tiny.to_dict()["train"].items() if "noise_scale" not in k}}
    assert tim3_config_from_dict(older, saved=True).train.noise_scale(2) == 1.0
    assert tim3_config_from_dict(older, saved=True).train.noise_scale(1) == 1.0
    assert tim3_config_from_dict(older).train.noise_scale(1) == 0.5  # a config file: today's default
    off = tim3_config_from_dict({**LEVERS, "train": {**train, "property_noise": False, "property_noise_scale": 2}})
    assert (off.train.noise_scale(1), off.train.noise_scale(2)) == (0.0, 0.0)
    with pytest.raises(MicroforgeError, match="train property_noise_scale must not be negative"):
        tim3_config_from_dict({**LEVERS, "train": {**train, "stage2_property_noise_scale": -1}})
    # the same generator draws the same noise; the scale multiplies it, and 0 leaves the properties as they are
    trainer = TiM3Trainer(tiny_bench.root, tmp_path / "unused", apart, progress=False)
    idx = torch.arange(4)
    exact = torch.from_numpy(trainer.props.normalise(trainer.data.props_raw[idx].numpy())).float()
    assert torch.equal(trainer._conditions(idx, torch.Generator().manual_seed(3), 2), exact)
    noisy = trainer._conditions(idx, torch.Generator().manual_seed(3), 1) - exact
    half = TiM3Trainer(tiny_bench.root, tmp_path / "unused", cfg, progress=False)
    assert torch.allclose(half._conditions(idx, torch.Generator().manual_seed(3), 1) - exact, noisy / 2, atol=1e-6)
    assert noisy.abs().max() > 0.01


def test_space_to_depth_latents_are_augmented_in_pixel_space(tiny_bench, tmp_path):
    """A rotated space-to-depth latent is not the latent of the rotated tile; the trainer must
    rotate the tile, so the latent decodes to a rotated copy of a real tile."""
    trainer = TiM3Trainer(tiny_bench.root, tmp_path / "unused", tim3_config_from_dict(LEVERS), progress=False)
    trainer.out.mkdir()
    trainer._save_lossless_codec("vae_image", 1)
    trainer._save_lossless_codec("vae_map", 3)
    idx, ks = torch.tensor([0, 1, 2]), torch.tensor([1, 4, 6])
    gen = torch.Generator().manual_seed(0)
    _, _, scale = trainer._encode_all("vae_image")
    z = trainer._latents("vae_image", idx, ks, gen)
    assert torch.allclose(F.pixel_shuffle(z / scale, 2), d4_batch(trainer.data.images[idx], ks), atol=1e-6)
    zm = trainer._latents("vae_map", idx, ks, gen)
    assert torch.equal(F.pixel_shuffle(zm, 4).argmax(1), d4_batch(trainer.data.maps[idx], ks))


def test_signal_scale_multiplies_the_latents_scaling_factor(tiny_bench, tmp_path):
    """signal_scale s: the scaling factor is s / std of the latents, so the stage's clean latents
    have std s, and the sampler's map decodes as before (the factor is divided out)."""
    scaled = {**LEVERS, "vae_map": {"kind": "space_to_depth", "factor": 4, "signal_scale": 0.45}}
    factors, stds = [], []
    for i, cfg in enumerate((LEVERS, scaled)):
        trainer = TiM3Trainer(tiny_bench.root, tmp_path / f"r{i}", tim3_config_from_dict(cfg), progress=False)
        trainer.out.mkdir()
        trainer._save_lossless_codec("vae_map", 3)
        factors.append(trainer._encode_all("vae_map")[2])
        z = trainer._latents(
            "vae_map", torch.arange(len(trainer.data)), torch.zeros(len(trainer.data), dtype=torch.long), None
        )
        stds.append(float(torch.sqrt((z**2).mean() - z.mean() ** 2)))
        assert torch.equal(F.pixel_shuffle(z / factors[-1], 4).argmax(1), trainer.data.maps)
    assert factors[1] == pytest.approx(0.45 * factors[0], rel=1e-6)
    assert stds == pytest.approx([1.0, 0.45], rel=1e-4)


def test_model_with_every_lever_trains_samples_and_round_trips(tiny_bench, tmp_path):
    out = train_tim3(tiny_bench.root, tmp_path / "m", tim3_config_from_dict(LEVERS), progress=False)
    record = json.loads((out / "config.json").read_text())
    assert (
        record["training"]["vae_image"]["steps"] == 0 and record["training"]["stage2"]["steps"] == 6
    )  # nothing to train for the codecs
    assert sorted(p.name for p in (out / "vae_map").iterdir()) == ["config.json"]
    pipe = TiM3Pipeline.from_pretrained(out)
    assert_micro_samples_reproduce(pipe, tmp_path)


def test_every_shipped_tim3_config_loads_and_builds_its_unets():
    """configs/tim3-*.yaml and the ablation rows: valid, and their UNets' shapes fit their codecs."""
    from pathlib import Path

    from microforge.models.tim3 import latent_channels, load_tim3_config

    repo = Path(__file__).resolve().parents[1]
    paths = sorted(repo.glob("configs/tim3-*.yaml")) + sorted(repo.glob("benchmarks/ablation/*.yaml"))
    assert len(paths) >= 8
    for path in paths:
        cfg = load_tim3_config(path)
        s2 = build_unet(cfg, 2)
        assert (
            s2.config.out_channels == latent_channels(cfg.vae_image, 1)
            and s2.config.sample_size == cfg.image_latent_size
        ), path
    s2d = load_tim3_config(repo / "configs" / "tim3-tiny-s2d.yaml")
    assert (s2d.resolution, s2d.image_latent_size, s2d.map_latent_size, s2d.prediction_type) == (
        128,
        32,
        16,
        "v_prediction",
    )


STAGE1_V = {
    "prediction_type": "v_prediction",
    "snr_gamma": 5.0,
    "beta_schedule": "squaredcos_cap_v2",
    "timestep_spacing": "trailing",
}


def test_stage1_objective_is_stage_1s_alone(tiny_bench, tmp_path):
    """stage1_objective gives stage 1 its own schedule, target and weighting; stage 2 keeps the
    top-level fields; without it both stages share them. A bad field names the section."""
    from microforge.models.tim3 import ObjectiveConfig

    shared = tim3_config_from_dict({**LEVERS, "prediction_type": "epsilon", "snr_gamma": None})
    own = tim3_config_from_dict(
        {**LEVERS, "prediction_type": "epsilon", "snr_gamma": None, "stage1_objective": STAGE1_V}
    )
    assert shared.objective(1) == shared.objective(2) == own.objective(2)
    assert own.objective(1) == ObjectiveConfig(**STAGE1_V)
    assert make_scheduler(own, 1).config.prediction_type == "v_prediction"
    assert make_scheduler(own, 2).config.prediction_type == "epsilon"
    assert not torch.equal(make_scheduler(own, 1).alphas_cumprod, make_scheduler(own, 2).alphas_cumprod)
    with pytest.raises(MicroforgeError, match="stage1_objective: prediction_type must be one of"):
        tim3_config_from_dict({**LEVERS, "stage1_objective": {"prediction_type": "x0"}})
    trainer = TiM3Trainer(tiny_bench.root, tmp_path / "unused", own, progress=False)
    t = torch.tensor([0, 400, 999])
    a1 = trainer.stage_schedulers[1].alphas_cumprod
    snr1 = a1[t] / (1 - a1[t])
    assert torch.allclose(trainer._loss_weights(t, 1), snr1.clamp(max=5.0) / (snr1 + 1), rtol=1e-5)
    assert torch.equal(trainer._loss_weights(t, 2), torch.ones(3))  # stage 2: plain MSE, as TiM3


def test_model_with_its_own_stage1_objective_trains_samples_and_round_trips(tiny_bench, tmp_path):
    """A lossless-map model whose stage 1 is v-prediction on the cosine schedule and stage 2 epsilon
    on the shared one: the folder keeps both schedules, sampling reads each stage's, and a copy
    without stage 1's schedule is refused by name."""
    import shutil

    d = {
        **LEVERS,
        "prediction_type": "epsilon",
        "snr_gamma": None,
        "beta_schedule": "scaled_linear",
        "schedule_shift": 1.0,
        "timestep_spacing": "leading",
        "stage1_objective": STAGE1_V,
    }
    out = train_tim3(tiny_bench.root, tmp_path / "m", tim3_config_from_dict(d), progress=False)
    stage1 = json.loads((out / "scheduler_stage1" / "scheduler_config.json").read_text())
    shared = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert (stage1["prediction_type"], stage1["beta_schedule"], stage1["timestep_spacing"]) == (
        "v_prediction",
        "squaredcos_cap_v2",
        "trailing",
    )
    assert (shared["prediction_type"], shared["beta_schedule"]) == ("epsilon", "scaled_linear")
    pipe = TiM3Pipeline.from_pretrained(out)
    assert pipe._scheduler("ddim", 1).config.prediction_type == "v_prediction"
    assert pipe._scheduler("ddim", 2).config.prediction_type == "epsilon"
    assert_micro_samples_reproduce(pipe, tmp_path)
    assert (tmp_path / "copy" / "scheduler_stage1" / "scheduler_config.json").is_file()
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    shutil.rmtree(broken / "scheduler_stage1")
    with pytest.raises(MicroforgeError, match="scheduler_stage1/scheduler_config.json: not found"):
        TiM3Pipeline.from_pretrained(broken)


def test_a_stage1_objective_retrains_stage_1_alone(micro_model, tmp_path):
    """scripts/seed_run_from_model.py: a config that gives stage 1 its own objective retrains stage 1
    and keeps stage 2, which still trains and samples with the shared one."""
    d = micro_with_train()
    d["stage1_objective"] = {"prediction_type": "v_prediction", "beta_schedule": "squaredcos_cap_v2"}
    stdout = seeded_run(micro_model, d, tmp_path, "run")[2]
    assert stdout.rstrip().endswith("to train: stage1"), stdout
