"""The detail refiner: a stochastic decoder that draws the fine detail a blurred image lost, alone
and as the fingerprint VAE's optional second decoder."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from microforge.errors import MicroforgeError
from microforge.fingerprint import explore, fingerprints, load_fingerprint_model, train_fingerprints
from microforge.fingerprint.vae import load_refiner, reconstruct
from microforge.models.detail_refiner import DetailRefiner, RefinerConfig, fit_residual_std
from microforge.models.fingerprint import FingerprintConfig
from microforge.pipelines.tim3 import TiM3Pipeline
from microforge.seeding import seeded_generator
from microforge.training.loop import random_batch
from microforge.training.refiner_trainer import train_refiner

from .conftest import interrupted_at_step
from .test_fingerprint import MICRO

SMALL = RefinerConfig(resolution=32, factor=2, channels=(16, 32), sample_steps=4)


def low_pass(x: torch.Tensor, f: int = 8) -> torch.Tensor:
    return F.interpolate(F.avg_pool2d(x, f), scale_factor=f, mode="bilinear", align_corners=False)


def striped_tiles(n: int, seed: int) -> torch.Tensor:
    """``(n, 1, 32, 32)``: a colony of 2 px dark and 2 px bright laths (period 4 px) in the left half,
    a flat dark grain in the right half; the laths' phase is random, so a low-pass of 8 px loses them."""
    rng = np.random.default_rng(seed)
    x = np.full((n, 1, 32, 32), 0.2, dtype=np.float32)
    cols = np.arange(16)
    for i in range(n):
        x[i, 0, :, :16] = np.where((cols + rng.integers(4)) % 4 < 2, 0.2, 0.8)
    return torch.from_numpy(x)


def test_residual_scale_seeded_draws_and_round_trip(tmp_path):
    torch.manual_seed(0)
    ref = DetailRefiner(SMALL)
    x = striped_tiles(6, 0)
    c = low_pass(x)
    std = fit_residual_std(ref, x, c)
    assert std == pytest.approx(float(np.std((x - c).numpy(), ddof=1)), rel=1e-5)
    assert float(ref.residual_std) == pytest.approx(std)
    a = ref.refine(c, seeded_generator(0))
    assert a.shape == (6, 1, 32, 32) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, ref.refine(c, seeded_generator(0)))  # the same seed, the same draw
    assert not torch.equal(a, ref.refine(c, seeded_generator(1)))
    ref.save_pretrained(tmp_path / "r")
    back = DetailRefiner.from_pretrained(tmp_path / "r")
    assert back.cfg == SMALL and torch.equal(a, back.refine(c, seeded_generator(0)))
    with pytest.raises(MicroforgeError, match="must be divisible by factor x 2"):
        RefinerConfig(resolution=36, factor=4, channels=(16, 32))
    with pytest.raises(MicroforgeError, match="model_type"):
        (tmp_path / "r" / "config.json").write_text('{"model_type": "something-else"}')
        DetailRefiner.from_pretrained(tmp_path / "r")


def test_stochastic_ddim_draws_are_seeded_and_vanish_at_one_step():
    torch.manual_seed(0)
    ref = DetailRefiner(SMALL)
    c = low_pass(striped_tiles(4, 0))
    det = ref.refine(c, seeded_generator(0))
    sto = ref.refine(c, seeded_generator(0), eta=1.0)
    assert torch.equal(sto, ref.refine(c, seeded_generator(0), eta=1.0))  # seeded
    assert (sto - det).abs().max() > 1e-3  # fresh noise at each of the 4 steps moves the draw
    # one DDIM step lands on alpha_bar = 1, where DDIM's variance (1 - a_prev) / (1 - a_t) (1 - a_t / a_prev)
    # is exactly 0: eta adds nothing
    one = ref.refine(c, seeded_generator(0), steps=1)
    assert torch.allclose(one, ref.refine(c, seeded_generator(0), steps=1, eta=1.0), atol=1e-6)
    with pytest.raises(MicroforgeError, match="eta must be in"):
        ref.refine(c, seeded_generator(0), eta=1.5)


def test_the_refiner_draws_the_laths_a_low_pass_lost():
    """Trained on striped colonies beside flat grains, the refiner draws laths (high horizontal
    contrast) in the colony half only, from an 8 px low-pass that holds none of them."""
    torch.manual_seed(0)
    ref = DetailRefiner(dataclasses.replace(SMALL, sample_steps=10))
    x = striped_tiles(64, 0)
    fit_residual_std(ref, x, low_pass(x))
    opt = torch.optim.AdamW(ref.unet.parameters(), lr=2e-3, weight_decay=0.0)
    pairs = torch.cat([x, low_pass(x)], 1)
    for step in range(600):
        _, batch = random_batch(pairs, 16, seeded_generator(0, step))  # random symmetries turn the colony
        loss = ref.loss(batch[:, :1], batch[:, 1:], seeded_generator(1, step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = striped_tiles(8, 1)
    out = ref.refine(low_pass(test), seeded_generator(2))

    def contrast(img: torch.Tensor, cols: slice) -> float:  # mean |step| between horizontal neighbours
        return float((img[..., 4:-4, cols][..., 1:] - img[..., 4:-4, cols][..., :-1]).abs().mean())

    colony = slice(2, 15)  # 12 neighbour pairs: a step of 0.6 at every other one, whatever the laths' phase
    truth, blurred = contrast(test, colony), contrast(low_pass(test), colony)
    drawn, grain = contrast(out, colony), contrast(out, slice(19, 30))
    assert truth == pytest.approx(0.3, rel=1e-6)
    assert blurred < 0.1 * truth
    assert drawn > 0.5 * truth and grain < 0.25 * drawn


def colony_on_either_side(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tiles ``(n, 1, 32, 32)`` with a colony of 2 px laths in a random half and a flat grain
    (0.35, the colony's mean) in the other, and their guides ``(n, 3, 32, 32)``: class shares with
    the grain in channel 0 and the colony in channel 2, as a TiM3 phase map gives them."""
    rng = np.random.default_rng(seed)
    x = np.full((n, 1, 32, 32), 0.35, dtype=np.float32)
    guide = np.zeros((n, 3, 32, 32), dtype=np.float32)
    cols = np.arange(16)
    for i in range(n):
        half = slice(0, 16) if rng.random() < 0.5 else slice(16, 32)
        x[i, 0, :, half] = np.where((cols + rng.integers(4)) % 4 < 2, 0.2, 0.5)
        guide[i, 0] = 1.0
        guide[i, 0, :, half], guide[i, 2, :, half] = 0.0, 1.0
    return torch.from_numpy(x), torch.from_numpy(guide)


def test_a_guided_refiner_draws_laths_where_its_map_says(tmp_path):
    """The blurred image is a flat grey that cannot tell the colony from the grain; the guide (a
    phase map's class shares) can. Trained on colonies in a random half, the guided refiner draws
    laths in the half its guide marks and not in the other."""
    torch.manual_seed(0)
    ref = DetailRefiner(dataclasses.replace(SMALL, sample_steps=10, guide_channels=3))
    x, guide = colony_on_either_side(64, 0)
    flat = torch.full_like(x, 0.35)
    fit_residual_std(ref, x, flat)
    opt = torch.optim.AdamW(ref.unet.parameters(), lr=2e-3, weight_decay=0.0)
    pairs = torch.cat([x, flat, guide], 1)
    for step in range(600):
        _, batch = random_batch(pairs, 16, seeded_generator(0, step))
        loss = ref.loss(batch[:, :1], batch[:, 1:2], seeded_generator(1, step), batch[:, 2:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    test, test_guide = colony_on_either_side(8, 1)
    out = ref.refine(torch.full_like(test, 0.35), seeded_generator(2), guide=test_guide)
    colony = test_guide[:, 2:3] > 0.5

    def contrast(img: torch.Tensor, where: torch.Tensor) -> float:  # mean |step| between horizontal neighbours
        step, inside = (img[..., 1:] - img[..., :-1]).abs(), where[..., 1:] & where[..., :-1]
        return float(step[inside].mean())

    truth = contrast(test, colony)
    # a step of 0.3 at 7 or 8 of a half's 15 neighbour pairs, as the laths' phase falls
    assert 0.3 * 7 / 15 - 1e-6 < truth < 0.3 * 8 / 15 + 1e-6
    drawn, grain = contrast(out, colony), contrast(out, ~colony)
    assert drawn > 0.5 * truth and grain < 0.25 * drawn
    ref.save_pretrained(tmp_path / "g")
    assert DetailRefiner.from_pretrained(tmp_path / "g").cfg.guide_channels == 3


def test_guide_channels_are_checked(tmp_path):
    guided, plain = DetailRefiner(dataclasses.replace(SMALL, guide_channels=3)), DetailRefiner(SMALL)
    c = torch.full((2, 1, 32, 32), 0.5)
    with pytest.raises(MicroforgeError, match=r"needs a guide of 3 channels at 32 px; got none"):
        guided.refine(c, seeded_generator(0))
    with pytest.raises(MicroforgeError, match=r"needs a guide of 3 channels at 32 px; got \(2, 2, 32, 32\)"):
        guided.refine(c, seeded_generator(0), guide=torch.zeros(2, 2, 32, 32))
    with pytest.raises(MicroforgeError, match="takes no guide channels"):
        plain.refine(c, seeded_generator(0), guide=torch.zeros(2, 3, 32, 32))
    with pytest.raises(MicroforgeError, match="guide_channels must be at least 0"):
        RefinerConfig(guide_channels=-1)
    with pytest.raises(MicroforgeError, match="refiner pairs have 2 channels; 5 expected"):
        train_refiner(torch.zeros(4, 2, 32, 32), guided.cfg, tmp_path, 1, 2, 1e-3, 0, progress=False)


def test_a_tim3_model_folder_carries_a_refiner_as_its_third_stage(micro_model, tmp_path):
    """A refiner saved in a TiM3 folder's ``refiner/`` is loaded, applied after stage 2 (guided by
    the drawn maps), seeded by the batch and saved again, without the source's metrics; one that
    does not fit is an error naming the folder."""
    source = shutil.copytree(micro_model, tmp_path / "source")
    (source / "metrics.json").write_text('{"scored": "the model without a refiner"}')
    plain = TiM3Pipeline.from_pretrained(source)
    copied = plain.save_pretrained(tmp_path / "copy") / "metrics.json"
    assert copied.read_text() == (source / "metrics.json").read_text()  # the same model: its metrics go along
    targets = np.array([[1000, 1080, 12, 37, 30, 1450, 0.2]] * 3)
    torch.manual_seed(0)
    refiner = DetailRefiner(dataclasses.replace(SMALL, guide_channels=3))
    refiner.residual_std.fill_(0.1)
    plain.modules["refiner"] = refiner.eval()
    staged = plain.save_pretrained(tmp_path / "staged")
    del plain.modules["refiner"]
    pipe = TiM3Pipeline.from_pretrained(staged)
    assert pipe.modules["refiner"].cfg == refiner.cfg
    before, after = plain(targets, steps=3, seed=4), pipe(targets, steps=3, seed=4)
    assert np.array_equal(before.maps, after.maps)  # stages 1 and 2 draw as before
    assert not np.allclose(before.images, after.images) and after.images.min() >= 0 and after.images.max() <= 1
    assert np.array_equal(after.images, pipe(targets, steps=3, seed=4).images)  # seeded
    assert (staged / "refiner" / "model.safetensors").is_file()
    assert not (staged / "metrics.json").exists()  # it scored the source, which had no refiner
    assert TiM3Pipeline.from_pretrained(pipe.save_pretrained(tmp_path / "again")).modules["refiner"].cfg == refiner.cfg
    half = TiM3Pipeline.from_pretrained(pipe.save_pretrained(tmp_path / "half", weights_dtype="float16"))
    weight = half.modules["refiner"].unet.conv_in.weight
    assert weight.dtype == torch.float32  # stored in float16, computed in float32
    assert torch.equal(weight, refiner.unet.conv_in.weight.half().float())
    DetailRefiner(dataclasses.replace(SMALL, resolution=64)).save_pretrained(staged / "refiner")
    with pytest.raises(MicroforgeError, match=r"staged/refiner: refiner resolution 64 is not the model's \(32\)"):
        TiM3Pipeline.from_pretrained(staged)
    DetailRefiner(dataclasses.replace(SMALL, guide_channels=2)).save_pretrained(staged / "refiner")
    with pytest.raises(MicroforgeError, match="a refiner guided by 2 channels does not fit this model"):
        TiM3Pipeline.from_pretrained(staged)


@pytest.fixture(scope="module")
def refined_model(tiny_bench, tmp_path_factory):
    cfg = dataclasses.replace(MICRO, refiner_steps=6, refiner=SMALL)
    return train_fingerprints(tiny_bench.root, tmp_path_factory.mktemp("fpr") / "full", cfg, progress=False), cfg


def test_fingerprint_train_adds_a_refiner_that_keeps_every_fingerprint_and_resumes_exactly(
    tiny_bench, refined_model, tmp_path, monkeypatch
):
    folder, cfg = refined_model
    plain = train_fingerprints(tiny_bench.root, tmp_path / "plain", MICRO, progress=False)
    imgs = np.random.default_rng(2).random((4, 32, 32)).astype(np.float32)
    assert np.array_equal(
        fingerprints(load_fingerprint_model(plain), imgs), fingerprints(load_fingerprint_model(folder), imgs)
    )
    rec = json.loads((folder / "reconstruction.json").read_text())
    assert rec["before_refiner"]["mse"] == json.loads((plain / "reconstruction.json").read_text())["mse"]
    assert rec["mse"] != rec["before_refiner"]["mse"]  # scored on the refined reconstructions
    refiner = load_refiner(folder)
    assert refiner is not None and refiner.cfg == SMALL and load_refiner(plain) is None
    record = json.loads((folder / "config.json").read_text())
    assert record["train"]["refiner_steps"] == 6 and "refiner_seconds" in record
    assert len((folder / "log_refiner.jsonl").read_text().splitlines()) == 2  # steps 0 and 5 (the last)
    assert not any((folder / d).exists() for d in ("checkpoints", "checkpoints_refiner"))
    x = torch.from_numpy(imgs)[:, None]
    first = reconstruct(load_fingerprint_model(folder), x, refiner, seed=3)
    assert torch.equal(first, reconstruct(load_fingerprint_model(folder), x, load_refiner(folder), seed=3))

    # the refiner's key is (seed, 2, step): die at its step 4, after the step-3 checkpoint
    with interrupted_at_step(monkeypatch, 4, key_length=2), pytest.raises(KeyboardInterrupt):
        train_fingerprints(tiny_bench.root, tmp_path / "cut", cfg, progress=False)
    assert (tmp_path / "cut" / "checkpoints" / "step_0000006").is_dir()  # the finished VAE, not trained again
    train_fingerprints(tiny_bench.root, tmp_path / "cut", cfg, resume=True, progress=False)
    for name in ("model.safetensors", "refiner/model.safetensors"):
        assert (folder / name).read_bytes() == (tmp_path / "cut" / name).read_bytes()


def test_explore_draws_the_refined_reconstructions(tiny_bench, refined_model, tmp_path):
    folder, _ = refined_model
    summary = explore(tiny_bench.root, tmp_path / "ex", ("vae",), model_dir=folder, gammas=(1.0,))
    assert summary["vae"]["refined"] is True
    assert (tmp_path / "ex" / "reconstructions.png").stat().st_size > 1000


def test_a_refiner_of_another_resolution_is_one_error():
    with pytest.raises(MicroforgeError, match="refiner resolution 128 must equal the model resolution 32"):
        dataclasses.replace(MICRO, model=FingerprintConfig(resolution=32), refiner_steps=10)
