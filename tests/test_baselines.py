"""CcGAN and CCDM with many continuous labels: the vicinity, training, sampling, save/load, resume."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from microforge.cli import cli
from microforge.errors import MicroforgeError
from microforge.models.baselines import BASELINE_CONFIGS, ACWGANGPConfig, BaselineConfig, BaselineTrain, DDPMConfig
from microforge.models.vicinity import cap_per_vector, hard_vicinity, kernel_sigma, vicinal_batch, vicinity_kappa
from microforge.pipelines.baselines import BaselinePipeline
from microforge.pipelines.registry import load_pipeline
from microforge.training.baseline_trainer import train_baseline

from .conftest import interrupted_at_step

# --------------------------------------------------------------------------- the vicinity

LABELS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [3.0, 3.0]])


def test_sigma_and_kappa_per_dimension_on_hand_made_labels():
    # sorted unique values: dim 0 -> 0, 1, 3 (gaps 1, 2); dim 1 -> 0, 2, 3 (gaps 2, 1)
    assert np.array_equal(vicinity_kappa(LABELS), [2.0, 2.0])
    assert np.array_equal(vicinity_kappa(LABELS, m=0.5), [1.0, 1.0])
    assert np.array_equal(vicinity_kappa(np.array([[1.0, 5.0], [1.0, 7.0]])), [0.0, 2.0])  # one value: radius 0
    with pytest.raises(MicroforgeError, match="NaN"):
        kernel_sigma(np.array([[np.nan, 1.0]]))


def test_fidelity_sigma_uses_every_training_label():
    # CcGAN: sigma = 1.06 std N^(-1/5) over all N image labels, repeats included. Dim 0 of LABELS is
    # 0, 1, 0, 3, 3: mean 1.4, population std sqrt(1.84); N = 5.
    assert kernel_sigma(LABELS)[0] == pytest.approx(1.06 * np.sqrt(1.84) * 5**-0.2, rel=1e-12)
    # 3 specimens x 100 tiles: the tiles count, so sigma shrinks by 300^(-1/5) / 3^(-1/5) = 0.398
    three = np.repeat(np.array([[0.0], [0.5], [1.0]]), 100, axis=0)
    assert kernel_sigma(three)[0] == pytest.approx(1.06 * np.sqrt(1 / 6) * 300**-0.2, rel=1e-12)


def test_hard_vicinity_needs_every_dimension():
    kappa = np.array([0.6, 0.6])
    assert hard_vicinity(LABELS, [0.5, 0.5], kappa).tolist() == [0, 1]
    assert hard_vicinity(LABELS, [0.5, 1.5], kappa).tolist() == [2]  # [0, 2]: 0.5 off in each dimension
    assert hard_vicinity(LABELS, [0.5, 1.0], kappa).tolist() == []  # dim 0 fits labels 0-2, dim 1 none of them
    assert hard_vicinity(LABELS, [0.2, 0.0], np.array([1.0, 0.1])).tolist() == [0, 1]


def test_fidelity_cap_is_per_property_vector_and_keeps_every_specimen_in_the_vicinity():
    # 3 specimens x 100 tiles, all three within kappa of each other
    labels = np.repeat(np.array([[0.0, 0.0], [0.1, 0.0], [0.2, 0.1]]), 100, axis=0)
    keep = cap_per_vector(labels, 64, seed=0)
    assert len(keep) == 192 and [int((keep // 100 == s).sum()) for s in range(3)] == [64, 64, 64]
    assert np.array_equal(keep, cap_per_vector(labels, 64, seed=0)) and not np.array_equal(
        keep, cap_per_vector(labels, 64, seed=1)
    )
    kept = labels[keep]
    near = hard_vicinity(kept, [0.1, 0.05], np.array([0.3, 0.3]))
    assert len(near) == 192  # every kept tile of every specimen, not the first 64 of specimen 1
    _, idx, _ = vicinal_batch(kept, 600, np.array([0.01, 0.01]), np.array([0.3, 0.3]), torch.Generator().manual_seed(0))
    counts = np.bincount(keep[idx] // 100, minlength=3)
    assert counts.min() > 150  # each specimen is drawn about a third of the time
    with pytest.raises(MicroforgeError, match="max_per_vector"):
        cap_per_vector(labels, 0)


def test_fidelity_hvdl_targets_come_from_unique_labels_and_fakes_from_the_vicinity():
    # one vector with 99 images, one with 1: CcGAN draws each *unique* vector half the time
    labels = np.vstack([np.zeros((99, 2)), np.ones((1, 2))])
    kappa = np.array([0.2, 0.3])
    y, idx, fake = vicinal_batch(labels, 2000, np.array([0.01, 0.01]), kappa, torch.Generator().manual_seed(0))
    share = float((y[:, 0] > 0.5).mean())
    assert 0.45 < share < 0.55  # drawn per image, it would be 0.01
    assert (np.abs(labels[idx] - y) <= kappa + 1e-12).all()
    assert (np.abs(fake - y) <= kappa + 1e-12).all()
    spread = np.abs(fake - y).max(axis=0)
    assert (spread > 0.9 * kappa).all()  # uniform over the whole box, per dimension
    y2, idx2, fake2 = vicinal_batch(labels, 2000, np.array([0.01, 0.01]), kappa, torch.Generator().manual_seed(0))
    assert np.array_equal(y, y2) and np.array_equal(idx, idx2) and np.array_equal(fake, fake2)
    with pytest.raises(MicroforgeError, match="vicinity multiplier"):
        vicinal_batch(
            LABELS, 1, np.array([50.0, 50.0]), np.array([0.01, 0.01]), torch.Generator().manual_seed(0), max_tries=5
        )


# ----------------------------------------------------------------------------- the models


def micro(kind: str, steps: int = 4) -> BaselineConfig:
    own = {
        "ccgan": {"embed_dim": 16, "z_dim": 16},
        "acwgan-gp": {"embed_dim": 16, "z_dim": 16, "critic_steps": 2},
        "ccdm": {"num_train_timesteps": 50, "sampling_steps": 3},
        "ddpm": {"num_train_timesteps": 50, "sampling_steps": 3},
    }[kind]
    return BASELINE_CONFIGS[kind](
        resolution=32,
        channels=(8, 16, 16),
        split_fractions=(0.5, 0.25, 0.25),
        train=BaselineTrain(steps=steps, batch_size=4, checkpoint_every=2, vicinity_m=2.0),
        **own,
    )


@pytest.mark.parametrize("kind", ["ccdm", "ccgan", "ddpm", "acwgan-gp"])
def test_trains_samples_and_round_trips(kind, tiny_bench, tmp_path):
    out = train_baseline(tiny_bench.root, tmp_path / kind, micro(kind), progress=False)
    saved = json.loads((out / "config.json").read_text())
    assert saved["format"] == "microforge-baseline/1" and len(saved["kappa"]) == 7
    pipe = load_pipeline(out)
    assert isinstance(pipe, BaselinePipeline) and pipe.cfg.kind == kind and pipe.conditional == (kind != "ddpm")
    targets = np.array([[1000, 1080, 12, 37, 30, 1450, 0.2], [900, 990, 19, 33, 28, 1400, 0.25]], dtype=float)
    g = pipe(np.repeat(targets, 3, axis=0), batch_size=4, seed=5)
    assert g.maps is None and g.images.shape == (6, 32, 32) and g.images.dtype == np.float32
    assert 0 <= g.images.min() and g.images.max() <= 1
    again = BaselinePipeline.from_pretrained(out)(np.repeat(targets, 3, axis=0), batch_size=4, seed=5)
    assert np.array_equal(g.images, again.images)
    # the pipeline owns its folder format: saved anew, the copy samples the same images
    copy = pipe.save_pretrained(tmp_path / "copy", {k: v for k, v in saved.items() if k not in ("format", "config")})
    assert json.loads((copy / "config.json").read_text()) == saved
    assert not any("_name_or_path" in json.loads(f.read_text()) for f in copy.glob("*/config.json"))
    third = BaselinePipeline.from_pretrained(copy)(np.repeat(targets, 3, axis=0), batch_size=4, seed=5)
    assert np.array_equal(g.images, third.images)
    with pytest.raises(MicroforgeError, match="already holds a model"):
        pipe.save_pretrained(copy, {})
    with pytest.raises(MicroforgeError, match="needs 7 values"):
        pipe(targets[:, :3])


def test_ccgan_resume_after_interruption_is_bit_identical(tiny_bench, tmp_path, monkeypatch):
    cfg = micro("ccgan", steps=5)
    train_baseline(tiny_bench.root, tmp_path / "full", cfg, progress=False)
    with interrupted_at_step(monkeypatch, 3), pytest.raises(KeyboardInterrupt):  # after the step-2 checkpoint
        train_baseline(tiny_bench.root, tmp_path / "cut", cfg, progress=False)
    train_baseline(tiny_bench.root, tmp_path / "cut", cfg, resume=True, progress=False)
    for part in ("generator", "discriminator"):
        assert (tmp_path / "full" / part / "model.safetensors").read_bytes() == (
            tmp_path / "cut" / part / "model.safetensors"
        ).read_bytes()


@pytest.fixture(scope="module")
def cli_ccgan(tiny_bench, tmp_path_factory):
    """A micro CcGAN trained through `microforge train ccgan` (the CliRunner's result, the folder)."""
    root = tmp_path_factory.mktemp("cli_ccgan")
    (root / "c.yaml").write_text(
        "resolution: 32\nchannels: [8, 16, 16]\nsplit_fractions: [0.5, 0.25, 0.25]\n"
        "train: {steps: 2, batch_size: 2, vicinity_m: 2.0}\n"
    )
    args = ["train", "ccgan", "--data", str(tiny_bench.root), "--config", str(root / "c.yaml")]
    return CliRunner().invoke(cli, [*args, "--out", str(root / "m"), "--quiet"]), root / "m"


def test_cli_trains_a_baseline(cli_ccgan):
    result, folder = cli_ccgan
    assert result.exit_code == 0, result.output
    assert json.loads((folder / "config.json").read_text())["config"]["kind"] == "ccgan"


def test_generate_draws_from_a_cli_trained_baseline(cli_ccgan, tmp_path):
    props = ["YS=1000", "TS=1080", "EF=12", "RH=37", "IT=30", "DCS=1450", "CFS=0.2"]
    args = ["generate", "--model", str(cli_ccgan[1]), *[a for p in props for a in ("--prop", p)], "-n", "3"]
    r = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "g"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "g" / "images").glob("*.png"))) == 3
    run = json.loads((tmp_path / "g" / "run.json").read_text())
    assert run["sampler"] is None and run["steps"] is None and run["guidance_scale"] is None  # a GAN: one pass


def test_train_refuses_another_kinds_config(tiny_bench, tmp_path):
    (tmp_path / "bad.yaml").write_text("kind: ccdm\n")
    args = ["train", "ccgan", "--data", str(tiny_bench.root), "--config", str(tmp_path / "bad.yaml")]
    r = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "is a ccdm config, not ccgan" in r.output


@pytest.mark.slow
def test_evaluate_scores_a_baseline_beside_tim3(micro_model, tiny_bench, tmp_path):
    from microforge.evaluate.options import EvaluationOptions
    from microforge.evaluate.run import evaluate

    gan = train_baseline(tiny_bench.root, tmp_path / "ccgan", micro("ccgan"), progress=False)
    opts = EvaluationOptions(n=4, n_reference=4, n_describe=2, batch_size=4, n_sweep=4, ablation={"CcGAN": str(gan)})
    m = evaluate(str(micro_model), tiny_bench.root, tmp_path / "r", opts, progress=False)
    row = m["sweeps"]["ablation"][0]
    assert row["name"] == "CcGAN" and row["encoder"] == "ccgan" and not row["two_stage"] and row["fid"] > 0
    solo = evaluate(
        str(gan),
        tiny_bench.root,
        tmp_path / "r2",
        EvaluationOptions(n=4, n_reference=4, n_describe=2, batch_size=4),
        progress=False,
    )
    assert solo["main"]["n"] == 4 and "microstructure_maps" not in solo and "stage1_maps" not in solo["oracle"]
    assert "CcGAN" in (tmp_path / "r" / "index.html").read_text()
    ddpm = train_baseline(tiny_bench.root, tmp_path / "ddpm", micro("ddpm"), progress=False)
    uncond = evaluate(
        str(ddpm),
        tiny_bench.root,
        tmp_path / "r3",
        EvaluationOptions(n=4, n_reference=4, n_describe=2, batch_size=4),
        progress=False,
    )
    assert uncond["main"]["accuracy"] is None and "oracle" not in uncond and "unconditional" in uncond["notes"][-1]
    assert "s2" in uncond["microstructure"] and uncond["main"]["copy_mse_min"] > 0


def test_hybrid_loss_vlb_is_zero_for_the_true_posterior():
    """With the true noise and v = -1 (variance = the posterior's), the KL term vanishes for t > 0;
    a wrong variance or a wrong mean costs bits; t = 0 gives the decoder NLL."""
    from microforge.models.hybrid_loss import vlb_loss
    from microforge.training.baseline_trainer import ccdm_scheduler

    sched = ccdm_scheduler(DDPMConfig(num_train_timesteps=4000))
    assert sched.config.variance_type == "learned_range" and sched.config.beta_schedule == "linear"
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = torch.tensor([5, 500, 3999])
    xt = sched.add_noise(x0, noise, t)
    exact = vlb_loss(sched, x0, xt, t, noise, -torch.ones_like(x0))
    assert torch.allclose(exact, torch.zeros(3, dtype=torch.float64), atol=1e-9)
    wrong_var = vlb_loss(sched, x0, xt, t, noise, torch.ones_like(x0))  # variance beta_t instead of beta~_t
    assert wrong_var[0] > 1e-3 and wrong_var[1] > 1e-6  # large t: beta~_t -> beta_t, the choice stops mattering (IDDPM)
    assert (vlb_loss(sched, x0, xt, t, noise + 0.3, -torch.ones_like(x0)) > exact + 1e-6).all()
    t0 = torch.zeros(3, dtype=torch.long)
    nll = vlb_loss(sched, x0, sched.add_noise(x0, noise, t0), t0, noise, torch.zeros_like(x0))
    assert (nll > 0).all() and torch.isfinite(nll).all()


def test_fidelity_acwgan_bins_are_thirds_of_the_range_and_conditions_follow_them(tiny_bench, tmp_path):
    """The tiny benchmark's 2 training specimens: their morphologies are the categories, and a
    target takes the category of its nearest specimen and the bin of its YS."""
    pipe = load_pipeline(train_baseline(tiny_bench.root, tmp_path / "ac", micro("acwgan-gp"), progress=False))
    a = pipe.acgan
    assert a["scalar"] == "YS" and len(a["bin_edges"]) == 2 and a["bin_edges"][0] <= a["bin_edges"][1]
    # Howland et al.: the lower, middle and upper thirds of the observed range, not equal-count tertiles
    ys = pipe.properties.denormalise(np.asarray(a["specimen_labels"]))[:, 0]
    assert a["bin_edges"] == pytest.approx(
        [ys.min() + (ys.max() - ys.min()) / 3, ys.min() + 2 * (ys.max() - ys.min()) / 3]
    )
    assert set(a["categories"]) <= {"equiaxed", "bimodal", "lamellar", "basketweave"} and len(a["specimen_labels"]) == 2
    specimen_targets = pipe.properties.denormalise(np.asarray(a["specimen_labels"]))
    cats, bins = pipe.acgan_conditions(specimen_targets)
    assert cats.tolist() == a["specimen_categories"]
    low = specimen_targets.copy()
    low[:, 0] = a["bin_edges"][0] - 1.0
    high = specimen_targets.copy()
    high[:, 0] = a["bin_edges"][1] + 1.0
    assert pipe.acgan_conditions(low)[1].tolist() == [0, 0] and pipe.acgan_conditions(high)[1].tolist() == [2, 2]
    with pytest.raises(MicroforgeError, match="no column 'grade'"):
        train_baseline(
            tiny_bench.root,
            tmp_path / "bad",
            ACWGANGPConfig(category="grade", resolution=32),
            progress=False,
        )


@pytest.mark.parametrize("kind", ["ccgan", "acwgan-gp", "ccdm"])
def test_fidelity_conditional_baselines_respond_to_their_label(kind, tiny_bench, tmp_path):
    """A toy set where the label decides the brightness (label -1: dark tiles, +1: bright ones):
    after a short training, samples for the two labels differ in brightness in the right order."""
    from diffusers import DDIMScheduler

    from microforge.training.baseline_trainer import BaselineTrainer

    own = {"ccdm": {"num_train_timesteps": 100}, "ccgan": {"embed_dim": 16, "z_dim": 16}}
    own["acwgan-gp"] = {**own["ccgan"], "critic_steps": 2}
    cfg = BASELINE_CONFIGS[kind](
        resolution=16,
        channels=(16, 32),
        split_fractions=(0.5, 0.25, 0.25),
        train=BaselineTrain(steps=1, batch_size=16, lr=1e-3),
        **own[kind],
    )
    trainer = BaselineTrainer(tiny_bench.root, tmp_path, cfg, progress=False)
    k, bright = len(trainer.props), torch.arange(64) % 2
    trainer.images = (bright.float() * 1.4 - 0.7)[:, None, None, None] + 0.1 * torch.randn(
        64, 1, 16, 16, generator=torch.Generator().manual_seed(1)
    )
    trainer.labels = np.repeat((bright.numpy() * 2.0 - 1.0)[:, None], k, axis=1)
    trainer.sigma, trainer.kappa = np.full(k, 0.05), np.full(k, 0.2)
    trainer.category_codes, trainer.bins, trainer.categories = bright.clone(), bright.clone(), ["dark", "bright"]
    for step in range(300 if kind == "ccdm" else 150):
        trainer.step(torch.Generator().manual_seed(step))
    means = []
    with torch.no_grad():
        for label in (-1.0, 1.0):
            z, y = torch.randn(32, 16, generator=torch.Generator().manual_seed(5)), torch.full((32, k), label)
            if kind == "ccdm":  # 10 DDIM steps from the same noise
                unet, embed = trainer.modules["unet"].eval(), trainer.modules["label_embedding"]
                sched = DDIMScheduler.from_config(trainer.scheduler.config)
                sched.set_timesteps(10)
                x = torch.randn(32, 1, 16, 16, generator=torch.Generator().manual_seed(5))
                for t in sched.timesteps:
                    x = sched.step(unet(x, t, class_labels=embed(y)).sample, t, x).prev_sample
            elif kind == "ccgan":
                x = trainer.modules["generator"].eval()(z, y)
            else:
                c = torch.full((32,), int(label > 0))
                x = trainer.modules["generator"].eval()(z, c, c)
            means.append(float(x.mean()))
    # measured: CcGAN and ACWGAN-GP about 1.4 (the full -0.7 to 0.7); CCDM, slower to learn its label, 0.23
    assert means[1] - means[0] > (0.1 if kind == "ccdm" else 0.5), means


def test_each_baseline_has_its_own_config_class_and_settings():
    """A CcGAN config has no diffusion settings, a DDPM config no label embedding: a setting of
    another kind is a named error, and each class refuses another kind's name."""
    from microforge.models.baselines import CcGANConfig, baseline_config_from_dict

    assert type(baseline_config_from_dict({"kind": "ccgan"})) is CcGANConfig
    assert not hasattr(CcGANConfig(), "num_train_timesteps") and CcGANConfig().sampling_steps is None
    with pytest.raises(MicroforgeError, match="guidance_scale is not a setting of ccgan"):
        baseline_config_from_dict({"kind": "ccgan", "guidance_scale": 2.0}, "my.yaml")
    with pytest.raises(MicroforgeError, match="embed_dim, z_dim are not a setting of ddpm"):
        baseline_config_from_dict({"kind": "ddpm", "embed_dim": 8, "z_dim": 8})
    with pytest.raises(MicroforgeError, match="configured by DDPMConfig"):
        CcGANConfig(kind="ddpm")
    assert DDPMConfig().guidance_scale == 1.0 and DDPMConfig().num_train_timesteps == 4000


def test_a_model_folder_with_the_old_shared_config_still_loads():
    """Folders written when the four kinds shared one config carry every kind's settings; they
    load, dropping the settings of other kinds (an unknown key is still an error)."""
    from microforge.models.baselines import baseline_config_from_dict

    old = {
        "kind": "ccgan",
        "embed_dim": 16,
        "z_dim": 16,
        "num_train_timesteps": 1000,
        "guidance_scale": 1.5,
        "cond_dropout": 0.1,
        "critic_steps": 5,
        "category": "morphology",
        "vlb_weight": 0.001,
    }
    cfg = baseline_config_from_dict(old, "config.json", legacy=True)
    assert (cfg.kind, cfg.embed_dim, cfg.z_dim) == ("ccgan", 16, 16)
    with pytest.raises(MicroforgeError, match="colour is not a setting"):
        baseline_config_from_dict({**old, "colour": 1}, "config.json", legacy=True)
