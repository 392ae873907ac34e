"""Stage 1 redrawing given maps (TiM3Pipeline.redraw_maps, SDEdit) and stage 2 trained on such
redraws of its training maps (``train.stage2_redrawn_maps``, conditioning augmentation)."""

import json
import shutil

import pytest
import torch

from microforge.data.dataset import load_split, read_dataset
from microforge.errors import MicroforgeError
from microforge.models.tim3 import load_tim3_config, tim3_config_from_dict
from microforge.pipelines.registry import resolve_model
from microforge.pipelines.tim3 import TiM3Pipeline
from microforge.seeding import seeded_generator
from microforge.training.tim3_trainer import REDRAWN_MAPS, train_tim3

from .conftest import MICRO, assert_micro_samples_reproduce, interrupted_at_step, micro_with_train, seeded_run

# the redraws' mean squared difference to the tiles at strengths 0.2, 0.5 and 1 (measured, seeded)
MICROGRAPH_REDRAW_MSE = [0.00316, 0.00515, 0.01118]


def test_redraw_keeps_the_layout_at_small_strength_and_draws_anew_at_one(tiny_bench):
    """On the bundled SEM model and the tiny benchmark's test maps: the share of pixels a redraw
    keeps falls as the strength rises (SDEdit's trade), a small strength keeps nearly all of them,
    and the same generator seed gives the same redraw."""
    pipe = TiM3Pipeline.from_pretrained(resolve_model("bundled:ti-sem-tiny"))
    cfg = pipe.cfg
    split = load_split(read_dataset(tiny_bench.root), "test", (0.5, 0.25, 0.25), 0, "SEM", 64, masks=True)
    maps = pipe.model_maps(split.masks[:8])
    y = torch.tensor(pipe.condition_properties.normalise(split.raw[:8]), dtype=torch.float32)

    def kept(strength: float) -> float:
        gen = seeded_generator(0)
        redrawn = pipe.redraw_maps(y, maps, strength, cfg.sampling_steps, cfg.guidance_scale, "ddim", gen)
        assert redrawn.shape == maps.shape and redrawn.dtype == torch.int64
        return float((redrawn == maps).float().mean())

    shares = [kept(s) for s in (0.2, 0.6, 1.0)]
    assert shares[0] > shares[1] > shares[2]
    # seeded: measured 0.998 / 0.947 / 0.872 (these tiles are mostly secondary alpha, so a new map
    # drawn at the tiles' own properties still agrees with most pixels)
    assert shares == pytest.approx([0.998, 0.947, 0.872], abs=0.01)
    again = pipe.redraw_maps(y, maps, 0.6, 10, cfg.guidance_scale, "ddim", seeded_generator(0))
    assert torch.equal(again, pipe.redraw_maps(y, maps, 0.6, 10, cfg.guidance_scale, "ddim", seeded_generator(0)))
    for bad in (0.0, 1.5):
        with pytest.raises(MicroforgeError, match="map redraw strength must lie in"):
            pipe.redraw_maps(y, maps, bad, 10, 2.0, "ddim", seeded_generator(0))


def test_micrograph_redraw_keeps_the_tile_at_small_strength(tiny_bench):
    """Stage 2 redrawing real tiles (draw_micrographs with init from encode_images, SDEdit) at their
    true maps: the squared difference to the tile grows with the strength, the autoencoder's own
    round trip (no diffusion step) sits below every redraw, and the same seed gives the same draw."""
    pipe = TiM3Pipeline.from_pretrained(resolve_model("bundled:ti-sem-tiny"))
    cfg = pipe.cfg
    split = load_split(read_dataset(tiny_bench.root), "test", (0.5, 0.25, 0.25), 0, "SEM", 64, masks=True)
    tiles, maps = split.images[:8, 0], pipe.model_maps(split.masks[:8])
    y = torch.tensor(pipe.condition_properties.normalise(split.raw[:8]), dtype=torch.float32)
    z0 = pipe.encode_images(tiles)
    assert z0.shape == (8, 4, 32, 32)
    with torch.no_grad():
        round_trip = (pipe.modules["vae_image"].decode(z0 / pipe.scaling["vae_image"]).sample[:, 0] + 1) / 2

    def mse(strength: float) -> float:
        gen = seeded_generator(0)
        drawn = pipe.draw_micrographs(y, maps, cfg.sampling_steps, 4.0, "ddim", gen, z0, strength)
        assert drawn.shape == tiles.shape
        return float(((drawn - tiles) ** 2).mean())

    errors = [mse(s) for s in (0.2, 0.5, 1.0)]
    assert float(((round_trip.clamp(0, 1) - tiles) ** 2).mean()) < errors[0] < errors[1] < errors[2]
    assert errors == pytest.approx(MICROGRAPH_REDRAW_MSE, rel=0.05)
    again = [pipe.draw_micrographs(y, maps, 10, 4.0, "ddim", seeded_generator(0), z0, 0.5) for _ in range(2)]
    assert torch.equal(*again)
    for bad in (0.0, 1.5):
        with pytest.raises(MicroforgeError, match="micrograph redraw strength must lie in"):
            pipe.draw_micrographs(y, maps, 10, 4.0, "ddim", seeded_generator(0), z0, bad)


def test_redraw_fields_are_checked():
    with pytest.raises(MicroforgeError, match=r"train stage2_redrawn_maps must lie in \[0, 1\], got 1.5"):
        tim3_config_from_dict(micro_with_train(stage2_redrawn_maps=1.5))
    with pytest.raises(MicroforgeError, match=r"train stage2_map_redraw_strength must lie in \(0, 1\], got 0"):
        tim3_config_from_dict(micro_with_train(stage2_map_redraw_strength=0))
    assert load_tim3_config(MICRO).train.stage2_redrawn_maps == 0.0  # off by default, as TiM3 trains


def test_stage_2_trained_on_redrawn_maps(micro_model, tiny_bench, tmp_path, monkeypatch):
    """A run seeded from a model retrains only stage 2; the redraws are drawn once, kept across an
    interruption (the resumed run ends with an uninterrupted one's weights), timed in the phase's
    record and removed with the run's other state; the model samples and round-trips."""
    d = micro_with_train(stage2_redrawn_maps=1.0, stage2_map_redraw_strength=0.5)
    config, run, stdout = seeded_run(micro_model, d, tmp_path, "redrawn")
    assert "to train: stage2" in stdout
    cfg = load_tim3_config(config)
    with interrupted_at_step(monkeypatch, 5, key_length=2), pytest.raises(KeyboardInterrupt):
        train_tim3(tiny_bench.root, run, cfg, resume=True, progress=False)
    assert (run / REDRAWN_MAPS).is_file()  # drawn before the first step, kept for the resumed run
    train_tim3(tiny_bench.root, run, cfg, resume=True, progress=False)
    assert not (run / REDRAWN_MAPS).exists()
    stage2 = json.loads((run / "config.json").read_text())["training"]["stage2"]
    assert stage2["steps"] == 10 and stage2["redraw_seconds"] > 0 and "reused_from" not in stage2

    _, again, _ = seeded_run(micro_model, d, tmp_path, "again")
    train_tim3(tiny_bench.root, again, cfg, resume=True, progress=False)
    a, b, plain = (
        TiM3Pipeline.from_pretrained(m).modules["unet_stage2"].state_dict() for m in (run, again, micro_model)
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], plain[k]) for k in a)  # the same seeds on other maps: other weights
    assert_micro_samples_reproduce(TiM3Pipeline.from_pretrained(run), tmp_path)


def test_seeding_retrains_stage_2_when_its_redraws_would_change(micro_model, tmp_path):
    """The sampler's settings are read by no phase, except by a stage 2 trained on redraws, which
    also reads the map phases."""
    plain = micro_with_train()
    plain["guidance_scale"] = 3.0
    assert "to train: nothing" in seeded_run(micro_model, plain, tmp_path, "guided")[2]
    stage2_only = {"stage2_guidance_scale": 5.0, "stage2_guidance_interval": [0.0, 1.2], "observation_noise_std": 0.01}
    assert "to train: nothing" in seeded_run(micro_model, {**plain, **stage2_only}, tmp_path, "stage2-sampling")[2]
    # the micro model as if its stage 2 had been trained on redraws (only the record is read)
    model = tmp_path / "model"
    shutil.copytree(micro_model, model)
    record = json.loads((model / "config.json").read_text())
    record["config"]["train"]["stage2_redrawn_maps"] = 0.5
    (model / "config.json").write_text(json.dumps(record))
    redrawn = micro_with_train(stage2_redrawn_maps=0.5)
    assert "to train: nothing" in seeded_run(model, redrawn, tmp_path, "same")[2]
    assert "to train: stage2" in seeded_run(model, {**redrawn, "guidance_scale": 3.0}, tmp_path, "guided-redrawn")[2]
    assert "to train: stage2" in seeded_run(model, {**redrawn, "sampling_steps": 4}, tmp_path, "steps")[2]
    interval = {**redrawn, "guidance_interval": [0.0, 1.2]}  # stage 1's interval shapes the redraws
    assert "to train: stage2" in seeded_run(model, interval, tmp_path, "interval")[2]
    assert "to train: nothing" in seeded_run(model, {**redrawn, **stage2_only}, tmp_path, "stage2-redrawn")[2]
    longer_stage1 = micro_with_train(stage2_redrawn_maps=0.5, steps=9)
    assert "to train: stage1, stage2" in seeded_run(model, longer_stage1, tmp_path, "stage1")[2]
    taken = seeded_run(model, redrawn, tmp_path, "taken", "--map-phases-from", str(micro_model))[2]
    assert "to train: stage2" in taken
    stronger = micro_with_train(stage2_redrawn_maps=0.5, stage2_map_redraw_strength=0.9)
    assert "to train: stage2" in seeded_run(model, stronger, tmp_path, "stronger")[2]
