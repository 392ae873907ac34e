"""TiM3: encoders, hull, training (resume, two processes), sampling, save/load, generate CLI."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from microforge.cli import cli
from microforge.errors import MicroforgeError
from microforge.hull import in_hull
from microforge.models.property_encoder import PropertyEncoder
from microforge.models.tim3 import build_unet, tim3_config_from_dict
from microforge.pipelines.generate import guidance_record
from microforge.pipelines.tim3 import TiM3Pipeline, guided_step
from microforge.seeding import seeded_generator
from microforge.training.loop import recorded_seconds
from microforge.training.tim3_trainer import gradient_l1

MICRO = Path(__file__).parent / "data" / "tim3-micro.yaml"
TARGET = ["YS=1000", "TS=1080", "EF=12", "RH=37", "IT=30", "DCS=1450", "CFS=0.2"]


def test_gmm_encoder_shapes_and_eq6_statistics():
    torch.manual_seed(0)
    enc = PropertyEncoder(7, "gmm", hidden=32, dim=8, n_tokens=3, n_components=4)
    with torch.no_grad():
        enc.logvar.bias.fill_(0.0)  # sigma = 1 for every component
    y = torch.rand(1, 7) * 2 - 1
    assert enc(y).shape == (1, 3, 8)
    enc.eval()
    with torch.no_grad():
        mu, logvar = enc.mixture(y)
        draws = enc(y.expand(20000, 7), generator=torch.Generator().manual_seed(1)) - enc.position
        mean = mu.mean(1).view(3, 8)
        # eq. 6: g = mean_u mu_u + mean_u sigma_u eps_u -> mean mean_u mu_u, variance sum sigma^2 / U^2 = 1/4
        assert torch.allclose(draws.mean(0), mean, atol=0.02)
        assert draws.var(0).mean().item() == pytest.approx(0.25, rel=0.03)
        assert torch.equal(enc(y, sample=False), enc(y, sample=False))
        enc.train()
        train_draws = enc(y.expand(20000, 7), generator=torch.Generator().manual_seed(2)) - enc.position
        # a mixture draw: variance = 1 + the spread of the component means
        spread = mu.var(1, unbiased=False).view(3, 8)
        assert torch.allclose(train_draws.var(0), 1 + spread, rtol=0.08, atol=0.05)


def test_mlp_encoder_is_deterministic_and_checks_width():
    enc = PropertyEncoder(7, "mlp", dim=8, n_tokens=2).eval()
    y = torch.rand(4, 7)
    assert enc(y).shape == (4, 2, 8) and torch.equal(enc(y), enc(y))
    assert enc.null(3).shape == (3, 2, 8)
    with pytest.raises(MicroforgeError):
        enc(torch.rand(4, 6))
    with pytest.raises(MicroforgeError):
        PropertyEncoder(7, "vae")


def test_hull_membership():
    square = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=float)
    assert in_hull(square, [[0.5, 0.5], [1, 1], [1.01, 0.5], [-0.1, 0.2]]).tolist() == [True, True, False, False]
    line = np.array([[0, 0], [1, 1]], dtype=float)  # degenerate: a segment in the plane
    assert in_hull(line, [[0.3, 0.3], [0.3, 0.4]]).tolist() == [True, False]
    cube = np.random.default_rng(0).random((200, 7))
    assert in_hull(cube, cube.mean(0, keepdims=True))[0] and not in_hull(cube, np.full((1, 7), 1.5))[0]


def test_config_has_one_section_per_autoencoder_and_reads_the_older_shared_one():
    cfg = tim3_config_from_dict(
        {
            "resolution": 64,
            "vae_image": {"latent_channels": 8, "block_out_channels": [16, 32]},
            "vae_map": {"latent_channels": 3, "block_out_channels": [16, 32, 32]},
            "unet_stage2": None,  # both stages from unet
        }
    )
    assert (cfg.image_latent_size, cfg.map_latent_size) == (32, 16)  # f = 2 and f = 4
    assert tim3_config_from_dict({"resolution": 64}).map_latent_size == 32  # the tiny default map codec: f = 2
    s1, s2 = build_unet(cfg, 1), build_unet(cfg, 2)
    assert (s1.config.in_channels, s1.config.out_channels, s1.config.sample_size) == (3, 3, 16)
    assert (s2.config.in_channels, s2.config.out_channels, s2.config.sample_size) == (8 + 3, 8, 32)  # + the one-hot map
    kinds = lambda unet: (unet.config.down_block_types, unet.config.up_block_types)  # noqa: E731
    assert kinds(s1) == (
        ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    )
    limited = tim3_config_from_dict(
        {
            "resolution": 64,
            "vae_image": {"block_out_channels": [16, 32]},
            "vae_map": {"block_out_channels": [16, 32, 32]},
            "unet": {"attention_max_size": 16},
            "unet_stage2": None,
        }
    )
    # stage 1 (16^2 latent) keeps its attention at 16^2 and 8^2; stage 2 (32^2) drops the 32^2 level only
    assert kinds(build_unet(limited, 1)) == kinds(s1)
    assert kinds(build_unet(limited, 2)) == (
        ("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        ("UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    )
    with pytest.raises(MicroforgeError, match="without attention"):
        tim3_config_from_dict({"resolution": 64, "unet": {"attention_max_size": 4}})
    with pytest.raises(MicroforgeError, match="global_condition names stages 1 and 2"):
        tim3_config_from_dict({"unet": {"global_condition": [3]}})
    legacy = tim3_config_from_dict({"vae": {"latent_channels": 2}})  # model folders saved before the split
    assert legacy.vae_image.latent_channels == legacy.vae_map.latent_channels == 2
    with pytest.raises(MicroforgeError, match="not the older shared vae"):
        tim3_config_from_dict({"vae": {}, "vae_map": {}})
    with pytest.raises(MicroforgeError, match="vae_image and UNet downsampling"):
        tim3_config_from_dict({"resolution": 48, "vae_image": {"block_out_channels": [8, 8, 8, 8]}})


def test_gradient_loss_sees_edges_not_offsets():
    ramp = torch.tensor([[0.0, 1.0], [0.0, 1.0]])[None, None]  # a vertical edge
    assert gradient_l1(ramp, torch.zeros_like(ramp)).item() == pytest.approx(1.0)  # horizontal steps 1, vertical 0
    assert gradient_l1(ramp + 0.25, ramp).item() == 0.0  # 0.25: exact in binary
    stripes = torch.tensor([0.0, 1.0] * 4).repeat(8, 1)[None, None]  # 1 px laths against their mean grey
    assert gradient_l1(stripes, torch.full_like(stripes, 0.5)).item() == pytest.approx(1.0)


def test_sampling_is_seeded_and_round_trips(micro_model, tmp_path):
    pipe = TiM3Pipeline.from_pretrained(micro_model)
    targets = np.array([[1000, 1080, 12, 37, 30, 1450, 0.2]] * 3)
    a = pipe(targets, steps=3, batch_size=2, seed=5)
    assert pipe.modules["unet_stage1"].config.out_channels == 3 and pipe.modules["unet_stage2"].config.out_channels == 6
    assert (
        pipe.modules["unet_stage1"].config.class_embed_type == "projection"
        and pipe.modules["unet_stage2"].config.class_embed_type is None
    )
    training = json.loads((micro_model / "config.json").read_text())["training"]
    assert (training["stage1"]["steps"], training["stage2"]["steps"]) == (8, 10)  # train.stage2_steps
    assert a.maps.shape == (3, 32, 32) and a.maps.dtype == np.uint8 and set(np.unique(a.maps)) <= {0, 1, 2}
    assert a.images.shape == (3, 32, 32) and 0.0 <= a.images.min() and a.images.max() <= 1.0
    b = pipe(targets, steps=3, batch_size=2, seed=5)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.maps, b.maps)
    assert not np.array_equal(a.images, pipe(targets, steps=3, batch_size=2, seed=6).images)
    assert pipe(targets[:1], steps=3, sampler="dpm++").images.shape == (1, 32, 32)
    copy = pipe.save_pretrained(tmp_path / "copy")  # safetensors only, read back through from_pretrained
    assert (
        not list(copy.rglob("*.bin")) and not list(copy.rglob("*.pt")) and len(list(copy.rglob("*.safetensors"))) == 6
    )
    loaded = TiM3Pipeline.from_pretrained(copy)
    assert json.loads((copy / "config.json").read_text()) == json.loads((micro_model / "config.json").read_text())
    assert (copy / "properties.json").read_text() == (micro_model / "properties.json").read_text()
    again = loaded(targets, steps=3, batch_size=2, seed=5)
    assert np.array_equal(a.images, again.images) and np.array_equal(a.maps, again.maps)
    with pytest.raises(MicroforgeError, match="already holds a model"):
        loaded.save_pretrained(copy)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("a user's file")
    with pytest.raises(MicroforgeError, match="notes: exists and is not an empty folder; choose a new one"):
        loaded.save_pretrained(tmp_path / "notes")
    assert [f.name for f in (tmp_path / "notes").iterdir()] == ["mine.txt"]
    with pytest.raises(MicroforgeError, match="a target needs 7 values"):
        pipe(targets[:, :6])
    with pytest.raises(MicroforgeError, match="finite"):
        pipe(np.full((1, 7), np.nan))


def test_tampered_and_missing_files_are_named(micro_model, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(micro_model, bad)
    weights = bad / "unet_stage2" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(MicroforgeError, match="unet_stage2"):
        TiM3Pipeline.from_pretrained(bad)
    (bad / "config.json").unlink()
    with pytest.raises(MicroforgeError, match="config.json: not found"):
        TiM3Pipeline.from_pretrained(bad)
    with pytest.raises(MicroforgeError, match="model folder not found"):
        TiM3Pipeline.from_pretrained(tmp_path / "none")


def _weights(folder):
    return {
        f"{p.parent.name}/{k}": v for p in sorted(folder.rglob("*.safetensors")) for k, v in load_file(str(p)).items()
    }


def test_resume_after_sigkill_gives_the_same_weights(tiny_bench, micro_model, tmp_path):
    out = tmp_path / "killed"
    cfg_path = tmp_path / "slow.yaml"
    # more steps than the fixture, so the kill lands in the middle of stage 2
    cfg_path.write_text(
        MICRO.read_text().replace(
            "train: {steps: 8, stage2_steps: 10, batch_size: 4, checkpoint_every: 4}",
            "train: {steps: 40, stage2_steps: 40, batch_size: 4, checkpoint_every: 4}",
        )
    )
    args = [
        sys.executable,
        "-m",
        "microforge",
        "train",
        "tim3",
        "--data",
        str(tiny_bench.root),
        "--config",
        str(cfg_path),
        "--out",
        str(out),
        "--quiet",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while (
        not list((out / "checkpoints" / "stage2").glob("step_0000012"))
        and time.time() < deadline
        and proc.poll() is None
    ):
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "config.json").exists()
    r = CliRunner().invoke(
        cli, ["train", "tim3", "--data", str(tiny_bench.root), "--config", str(cfg_path), "--out", str(out)]
    )
    assert r.exit_code == 1 and "--resume" in r.output
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    # stage 2's record counts the killed run's 12 checkpointed steps beside the resumed run's
    training = json.loads((out / "config.json").read_text())["training"]
    stage2 = training["stage2"]
    assert stage2["seconds"] > stage2["seconds_this_run"] > 0
    total = sum(recorded_seconds(r) for r in training.values())
    # one line, the phases in training order: "training minutes, ...: vae_image 0.0, ..., stage2 0.1; 0.2 in all"
    line = next(s for s in resumed.stdout.splitlines() if s.startswith("training minutes"))
    phases, all_minutes = line.split(": ", 1)[1].split("; ")
    minutes = dict(part.split(" ", 1) for part in phases.split(", "))
    assert list(minutes) == ["vae_image", "vae_map", "stage1", "stage2"]
    assert minutes["stage2"] == f"{stage2['seconds'] / 60:.1f}" and all_minutes == f"{total / 60:.1f} in all"
    reference = tmp_path / "straight"
    assert subprocess.run([*args[:-2], str(reference), "--quiet"], capture_output=True).returncode == 0
    got, want = _weights(out), _weights(reference)
    assert got.keys() == want.keys() and len(got) > 50
    for k in want:
        assert torch.equal(got[k], want[k]), k


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not on PATH")
def test_two_process_training(tiny_bench, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["ACCELERATE_USE_CPU"] = "true"  # the multi-process launcher, with gloo on the CPU
    cmd = [
        "accelerate",
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "microforge",
        "train",
        "tim3",
        "--data",
        str(tiny_bench.root),
        "--config",
        str(MICRO),
        "--out",
        str(out),
        "--quiet",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    done = json.loads((out / "config.json").read_text())["training"]
    assert all(v["processes"] == 2 for v in done.values())
    assert TiM3Pipeline.from_pretrained(out)(np.array([[1000, 1080, 12, 37, 30, 1450, 0.2]]), steps=2).images.shape == (
        1,
        32,
        32,
    )


def _generate(model, props, out, *extra):
    args = ["generate", "--model", str(model), *sum((["--prop", p] for p in props), []), "--out", str(out)]
    return CliRunner().invoke(cli, [*args, *extra])


def test_generate_cli_writes_images_maps_sheet_and_run_json(micro_model, tmp_path):
    r = _generate(micro_model, TARGET, tmp_path / "g", "-n", "3", "--steps", "2", "--quiet")
    assert r.exit_code == 0, r.output
    run = json.loads((tmp_path / "g" / "run.json").read_text())
    assert len(run["samples"]) == 3 and (tmp_path / "g" / "contact_sheet.png").exists()
    assert (tmp_path / "g" / "maps" / "t000_s0000_rgb.png").exists()


def test_generate_warns_for_a_target_outside_the_hull(micro_model, tmp_path):
    far = [p.replace("YS=1000", "YS=5000") for p in TARGET]
    r = _generate(micro_model, far, tmp_path / "far", "-n", "1", "--steps", "2", "--quiet", "--allow-extrapolation")
    assert r.exit_code == 0 and "outside the convex hull" in r.output


@pytest.mark.parametrize(
    "props, extra, msg",
    [
        (["YS=1"], [], "missing properties"),
        (["XX=1"], [], "unknown property 'XX'"),
        (TARGET, ["-n", "0"], "'-n': 0 is not in the range"),
    ],
)
def test_generate_names_a_bad_option_in_one_line(micro_model, tmp_path, props, extra, msg):
    r = _generate(micro_model, props, tmp_path / "x", *extra)
    assert r.exit_code == 1 and msg in r.output, r.output
    assert r.output.count("\n") == 1 and not (tmp_path / "x").exists()


def test_generate_refuses_a_folder_it_already_wrote_without_overwrite(micro_model, tmp_path):
    assert _generate(micro_model, TARGET, tmp_path / "g", "-n", "1", "--steps", "2", "--quiet").exit_code == 0
    r = _generate(micro_model, TARGET, tmp_path / "g")
    assert r.exit_code == 1 and "--overwrite" in r.output


def test_learned_map_condition_trains_saves_and_loads(tiny_bench, tmp_path):
    """The learned map encoder (``map_condition: learned``), a plain module beside the diffusers
    ones, is written as safetensors by the trainer and by save_pretrained, and read back exactly."""
    from dataclasses import replace

    from microforge.models.tim3 import load_tim3_config
    from microforge.training.tim3_trainer import train_tim3

    model = train_tim3(
        tiny_bench.root, tmp_path / "learned", replace(load_tim3_config(MICRO), map_condition="learned"), progress=False
    )
    assert (model / "map_encoder" / "model.safetensors").is_file()
    pipe = TiM3Pipeline.from_pretrained(model)
    assert (
        "map_encoder" in pipe.modules
        and pipe.modules["unet_stage2"].config.in_channels
        == pipe.cfg.vae_image.latent_channels + pipe.cfg.map_condition_channels
    )
    targets = np.array([[1000, 1080, 12, 37, 30, 1450, 0.2]] * 2)
    a = pipe(targets, steps=2, seed=3)
    again = TiM3Pipeline.from_pretrained(pipe.save_pretrained(tmp_path / "copy"))
    assert np.array_equal(a.images, again(targets, steps=2, seed=3).images)
    want, got = (
        load_file(str(model / "map_encoder" / "model.safetensors")),
        load_file(str(tmp_path / "copy" / "map_encoder" / "model.safetensors")),
    )
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


def test_generate_nearest_feasible_projects_the_target_and_records_it(tmp_path):
    """The bundled model: a strong-and-ductile target outside the hull is moved inside it; with
    YS locked, YS stays and the others move; run.json records both."""
    from click.testing import CliRunner

    from microforge.cli import cli

    far = [
        "--prop",
        "YS=1150",
        "--prop",
        "TS=1100",
        "--prop",
        "EF=18",
        "--prop",
        "RH=36",
        "--prop",
        "IT=30",
        "--prop",
        "DCS=1450",
        "--prop",
        "CFS=0.25",
    ]
    common = ["generate", *far, "-n", "1", "--steps", "2", "--quiet", "--nearest-feasible"]
    r = CliRunner().invoke(cli, [*common, "--out", str(tmp_path / "free")])
    assert r.exit_code == 0, r.output
    run = json.loads((tmp_path / "free" / "run.json").read_text())
    assert run["in_training_hull"] == [True] and run["projection"]["requested"]["YS"] == 1150.0
    assert run["targets"][0]["YS"] == pytest.approx(run["projection"]["projected"]["YS"]) and run["projection"]["moved"]
    assert "nearest feasible target:" in r.output
    r = CliRunner().invoke(cli, [*common, "--lock", "YS", "--out", str(tmp_path / "locked")])
    assert r.exit_code == 0, r.output
    locked = json.loads((tmp_path / "locked" / "run.json").read_text())
    assert locked["targets"][0]["YS"] == 1150.0 and locked["in_training_hull"] == [True]
    assert "YS" not in locked["projection"]["moved"] and locked["projection"]["locked"] == ["YS"]
    assert locked["projection"]["projected"]["EF"] < 18.0  # the strong specimens are the less ductile ones
    # YS 1150 with EF 18 is not reachable inside the hull: said in one line, nothing written
    r = CliRunner().invoke(cli, [*common, "--lock", "YS", "--lock", "EF", "--out", str(tmp_path / "both")])
    assert r.exit_code == 1 and r.output.startswith("Error: no target inside the training hull keeps YS, EF")
    assert not (tmp_path / "both").exists()


def _stage_by_stage(pipe: TiM3Pipeline, guidance: tuple[float, float], **call) -> bool:
    """Whether ``pipe(...)`` (batch 0, seed 3, 3 steps) samples exactly what draw_maps at
    ``guidance[0]`` then draw_micrographs at ``guidance[1]`` draw on batch 0's generator."""
    props = pipe.condition_properties
    raw = (props.mins + props.maxs)[None, :] / 2 + np.zeros((2, 1))
    out = pipe(raw, steps=3, batch_size=2, seed=3, **call)
    y = torch.tensor(props.normalise(raw), dtype=torch.float32)
    gen = seeded_generator(3, 0)
    maps = pipe.draw_maps(y, 3, guidance[0], "ddim", gen)
    images = pipe.draw_micrographs(y, maps, 3, guidance[1], "ddim", gen)
    return np.array_equal(maps.numpy().astype(np.uint8), out.maps) and np.array_equal(images.numpy(), out.images)


def test_the_two_stages_drawn_one_at_a_time_are_the_pipelines_samples(micro_model):
    # draw_maps then draw_micrographs on batch 0's generator is exactly what a call samples, so a
    # benchmark that guides the stages differently (fid_budget.py --stage2-guidance) compares like with like
    pipe = TiM3Pipeline.from_pretrained(micro_model)
    assert _stage_by_stage(pipe, (2.0, 2.0), guidance_scale=2.0)
    assert not _stage_by_stage(pipe, (2.0, 5.0), guidance_scale=2.0)


def test_stage2_guidance_scale_guides_the_micrograph_stage_alone(micro_model):
    """A config's stage2_guidance_scale guides the micrograph stage only: the maps are those of the
    map stage's scale, the micrographs those drawn from them at stage 2's; an explicit guidance_scale
    sets both stages; and generate's run.json says which scales it used."""
    pipe = TiM3Pipeline.from_pretrained(micro_model)
    pipe.cfg = dataclasses.replace(pipe.cfg, guidance_scale=2.0, stage2_guidance_scale=5.0)
    assert pipe.stage_guidance() == (2.0, 5.0) and pipe.stage_guidance(3.0) == (3.0, 3.0)
    assert _stage_by_stage(pipe, (2.0, 5.0))
    assert _stage_by_stage(pipe, (3.0, 3.0), guidance_scale=3.0)
    assert guidance_record(pipe, None) == {"guidance_scale": 2.0, "stage2_guidance_scale": 5.0}
    assert guidance_record(pipe, 3.0) == {"guidance_scale": 3.0}
    with pytest.raises(MicroforgeError, match="stage2_guidance_scale must be a finite number in 0..100, got -1"):
        dataclasses.replace(pipe.cfg, stage2_guidance_scale=-1.0)


def test_guided_step_reads_the_noise_level_of_the_schedule():
    # alphabar 0.2 is sigma sqrt(0.8 / 0.2) = 2 exactly; the interval is (low, high]
    assert guided_step(0.2, (1.0, 2.0)) and not guided_step(0.2, (2.0, 3.0)) and guided_step(0.2, None)
    assert guided_step(torch.tensor(0.5), (0.5, 1.0)) and not guided_step(0.5, (0.0, 0.999))


def test_guidance_interval_guides_only_the_steps_whose_noise_level_it_holds(micro_model):
    """An interval that holds every step samples what plain guidance samples; one that holds none
    samples what guidance 1 (the conditional prediction alone) samples; stage2_guidance_interval
    changes the micrograph stage alone; generate's run.json records the intervals; a bad interval is
    a named error."""
    pipe = TiM3Pipeline.from_pretrained(micro_model)
    props = pipe.condition_properties
    raw = (props.mins + props.maxs)[None, :] / 2 + np.zeros((2, 1))
    base = dataclasses.replace(pipe.cfg, guidance_scale=3.0, stage2_guidance_scale=None)
    runs = {}
    for name, intervals in {
        "none": (None, None),
        "all": ((0.0, 1000.0), None),
        "no step": ((500.0, 1000.0), None),
        "stage 2 no step": (None, (500.0, 1000.0)),
    }.items():
        pipe.cfg = dataclasses.replace(base, guidance_interval=intervals[0], stage2_guidance_interval=intervals[1])
        runs[name] = pipe(raw, steps=3, batch_size=2, seed=3)
    unguided = pipe(raw, steps=3, batch_size=2, seed=3, guidance_scale=1.0)
    assert np.array_equal(runs["all"].images, runs["none"].images)
    assert np.array_equal(runs["no step"].maps, unguided.maps) and np.array_equal(
        runs["no step"].images, unguided.images
    )
    assert not np.array_equal(runs["none"].maps, unguided.maps)
    assert np.array_equal(runs["stage 2 no step"].maps, runs["none"].maps)
    assert _stage_by_stage(pipe, (3.0, 1.0))  # the maps guided at 3, the micrographs unguided
    assert guidance_record(pipe, None) == {"guidance_scale": 3.0, "stage2_guidance_interval": [500.0, 1000.0]}
    pipe.cfg = dataclasses.replace(base, guidance_interval=(0.5, 6.0))
    assert guidance_record(pipe, None) == {"guidance_scale": 3.0, "guidance_interval": [0.5, 6.0]}
    for bad in ((2.0, 1.0), (-1.0, 1.0), (0.0, float("inf")), (1.0,)):
        with pytest.raises(MicroforgeError, match="guidance_interval must be two noise levels"):
            dataclasses.replace(base, guidance_interval=bad)
    with pytest.raises(MicroforgeError, match="stage2_guidance_interval must be two noise levels"):
        dataclasses.replace(base, stage2_guidance_interval=(3.0, 3.0))
    loaded = tim3_config_from_dict({"guidance_interval": [0.3, 5]})
    assert loaded.guidance_interval == (0.3, 5) and loaded.stage_guidance_interval(2) == (0.3, 5)


def test_observation_noise_adds_white_noise_of_the_config_std_to_the_micrographs(micro_model):
    """observation_noise_std s adds, after the sampler, white noise of std s to each micrograph: the
    maps are unchanged, the images differ from the noise-free ones by s where no pixel clips, the
    same seed gives the same noise, and a std outside [0, 1) is a named error."""
    from microforge.characterize.noise import noise_std

    pipe = TiM3Pipeline.from_pretrained(micro_model)
    targets = np.array([[1000, 1080, 12, 37, 30, 1450, 0.2]] * 8)
    clean = pipe(targets, steps=3, seed=2)
    pipe.cfg = dataclasses.replace(pipe.cfg, observation_noise_std=0.05)
    noisy, again = pipe(targets, steps=3, seed=2), pipe(targets, steps=3, seed=2)
    assert np.array_equal(noisy.maps, clean.maps) and np.array_equal(noisy.images, again.images)
    inside = (noisy.images > 0) & (noisy.images < 1)
    assert inside.mean() > 0.95
    assert (noisy.images - clean.images)[inside].std() == pytest.approx(0.05, rel=0.05)
    lifted = np.median([noise_std(a) for a in noisy.images]) ** 2 - np.median([noise_std(a) for a in clean.images]) ** 2
    assert np.sqrt(lifted) == pytest.approx(0.05, rel=0.15)
    with pytest.raises(MicroforgeError, match=r"observation_noise_std must be a grey-level std in \[0, 1\), got -0.1"):
        dataclasses.replace(pipe.cfg, observation_noise_std=-0.1)


def test_float16_storage_halves_the_folder_and_loads_as_float32(micro_model, tmp_path):
    """save_pretrained(weights_dtype="float16") stores every network in float16 (half the bytes);
    loading gives float32 modules holding exactly the rounded weights, which sample close to the
    float32 model; re-saving keeps the stored precision unless told otherwise."""
    from safetensors import safe_open

    pipe = TiM3Pipeline.from_pretrained(micro_model)
    half = pipe.save_pretrained(tmp_path / "half", weights_dtype="float16")
    assert json.loads((half / "config.json").read_text())["weights_dtype"] == "float16"
    for f in half.rglob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            assert {st.get_tensor(k).dtype for k in st.keys()} <= {torch.float16}, f
    size = {d: sum(f.stat().st_size for f in d.rglob("*.safetensors")) for d in (micro_model, half)}
    assert 0.49 < size[half] / size[micro_model] < 0.52  # float16 weights plus the same headers
    loaded = TiM3Pipeline.from_pretrained(half)
    for name, module in loaded.modules.items():
        original = pipe.modules[name].state_dict()
        for key, value in module.state_dict().items():
            assert value.dtype == original[key].dtype  # float32 again
            assert torch.equal(value, original[key].half().to(value.dtype)), (name, key)
    targets = np.array([[1000, 1080, 12, 37, 30, 1450, 0.2]] * 4)
    a, b = pipe(targets, steps=3, seed=5), loaded(targets, steps=3, seed=5)
    assert (a.maps != b.maps).mean() < 0.02 and np.abs(a.images - b.images).mean() < 0.01
    again = loaded.save_pretrained(tmp_path / "again")  # as loaded: float16
    assert json.loads((again / "config.json").read_text())["weights_dtype"] == "float16"
    # a loaded model's parts do not carry the folder they were loaded from into the copy
    assert not any("_name_or_path" in json.loads(f.read_text()) for f in again.glob("*/config.json"))
    full = loaded.save_pretrained(tmp_path / "full", weights_dtype="float32")
    assert "weights_dtype" not in json.loads((full / "config.json").read_text())
    with pytest.raises(MicroforgeError, match="weights_dtype 'int8' is not one of"):
        pipe.save_pretrained(tmp_path / "bad", weights_dtype="int8")


def test_ddim_eta_draws_fresh_noise_per_step_reproducibly_and_per_stage(micro_model):
    """eta 0 is the deterministic sampler; eta 1 gives other samples, the same again for the same
    seed; stage2_ddim_eta changes the micrograph stage alone; dpm++ ignores it; generate's run.json
    records it; a value outside [0, 1] is a named error."""
    pipe = TiM3Pipeline.from_pretrained(micro_model)
    props = pipe.condition_properties
    raw = (props.mins + props.maxs)[None, :] / 2 + np.zeros((2, 1))
    base = dataclasses.replace(pipe.cfg, guidance_scale=3.0, stage2_guidance_scale=None)
    runs = {}
    for name, (eta, eta2, sampler) in {
        "default": (0.0, None, "ddim"),
        "eta 1": (1.0, None, "ddim"),
        "eta 1 again": (1.0, None, "ddim"),
        "stage 2 eta 1": (0.0, 1.0, "ddim"),
        "dpm++": (0.0, None, "dpm++"),
        "dpm++ eta 1": (1.0, None, "dpm++"),
    }.items():
        pipe.cfg = dataclasses.replace(base, ddim_eta=eta, stage2_ddim_eta=eta2, sampler=sampler)
        runs[name] = pipe(raw, steps=3, batch_size=2, seed=3)
    same = lambda a, b: np.array_equal(a.maps, b.maps) and np.array_equal(a.images, b.images)  # noqa: E731
    assert same(runs["eta 1"], runs["eta 1 again"]) and same(runs["dpm++"], runs["dpm++ eta 1"])
    assert not np.array_equal(runs["eta 1"].maps, runs["default"].maps)
    assert np.array_equal(runs["stage 2 eta 1"].maps, runs["default"].maps)
    assert not np.array_equal(runs["stage 2 eta 1"].images, runs["default"].images)
    pipe.cfg = dataclasses.replace(base, stage2_ddim_eta=0.5)
    assert guidance_record(pipe, None) == {"guidance_scale": 3.0, "stage2_ddim_eta": 0.5}
    pipe.cfg = dataclasses.replace(base, ddim_eta=1.0)
    assert guidance_record(pipe, None) == {"guidance_scale": 3.0, "ddim_eta": 1.0}
    assert base.stage_eta(1) == base.stage_eta(2) == 0.0
    for name, bad in (("ddim_eta", -0.1), ("ddim_eta", 1.5), ("stage2_ddim_eta", float("nan"))):
        with pytest.raises(MicroforgeError, match=f"{name} must lie in \\[0, 1\\]"):
            dataclasses.replace(base, **{name: bad})
