"""The adversarial fine-tune of TiM3's micrograph decoder (``vae_image.adversarial_steps``): the
patch discriminator and its hinge losses, the phase's place, and a run seeded from a finished model
that trains only the decoder, leaving the encoder, every latent and the other phases as they were."""

import json

import pytest
import torch
import yaml
from diffusers import AutoencoderKL, UNet2DConditionModel

from microforge.errors import MicroforgeError
from microforge.models.patch_discriminator import (
    PatchDiscriminator,
    hinge_discriminator_loss,
    hinge_generator_loss,
)
from microforge.models.tim3 import load_tim3_config, tim3_config_from_dict
from microforge.pipelines.tim3 import TiM3Pipeline
from microforge.training.tim3_trainer import phases, train_tim3

from .conftest import MICRO, assert_micro_samples_reproduce, interrupted_at_step
from .conftest import run_seed_script as _seed
from .conftest import seeded_run as _seeded


def _micro(**vae_image) -> dict:
    d = load_tim3_config(MICRO).to_dict()
    d["vae_image"] = {**d["vae_image"], **vae_image}
    return d


def test_patch_discriminator_judges_34px_patches():
    d = PatchDiscriminator(in_channels=1, width=32)
    assert d(torch.zeros(2, 1, 64, 64)).shape == (2, 1, 14, 14)
    assert d(torch.zeros(1, 1, 128, 128)).shape == (1, 1, 30, 30)
    assert sum(p.numel() for p in d.parameters()) == 167_009
    # the convolutions' receptive field: logit (5, 5) sees the 34 x 34 px from (9, 9) (stride 4, and
    # the paddings shift the field by 11 px) (GroupNorm's
    # statistics, taken over the whole image, are left out here)
    d.net = torch.nn.Sequential(*[torch.nn.Identity() if isinstance(m, torch.nn.GroupNorm) else m for m in d.net])
    x = torch.rand(1, 1, 64, 64, requires_grad=True)
    d(x)[0, 0, 5, 5].backward()
    reached = x.grad[0, 0].abs() > 0
    rows, cols = reached.any(1).nonzero()[:, 0], reached.any(0).nonzero()[:, 0]
    assert (rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()) == (9, 42, 9, 42)


def test_hinge_losses_exact_values():
    zeros = torch.zeros(4, 1, 3, 3)
    assert hinge_discriminator_loss(zeros, zeros).item() == 2.0  # an undecided discriminator
    assert hinge_discriminator_loss(zeros + 1.5, zeros - 1.5).item() == 0.0  # past both margins
    assert hinge_discriminator_loss(zeros + 0.5, zeros + 0.5).item() == 0.5 + 1.5
    assert hinge_generator_loss(torch.tensor([[1.0, -3.0]])).item() == 1.0


def test_the_adversarial_phase_runs_last_and_only_when_asked():
    plain = tim3_config_from_dict(_micro())
    assert phases(plain) == ["vae_image", "vae_map", "stage1", "stage2"]
    adv = tim3_config_from_dict(_micro(adversarial_steps=4))
    assert phases(adv) == ["vae_image", "vae_map", "stage1", "stage2", "vae_image_adversarial"]
    one_stage = tim3_config_from_dict({**_micro(adversarial_steps=4), "two_stage": False})
    assert phases(one_stage) == ["vae_image", "stage2", "vae_image_adversarial"]
    lossless = tim3_config_from_dict(_micro(adversarial_steps=4, kind="space_to_depth"))
    assert "vae_image_adversarial" not in phases(lossless)  # nothing to fine-tune


def test_bad_adversarial_settings_are_refused():
    with pytest.raises(MicroforgeError, match="vae_image adversarial_steps and adversarial_weight must not be"):
        tim3_config_from_dict(_micro(adversarial_steps=-1))
    d = _micro()
    d["vae_map"] = {**d["vae_map"], "adversarial_steps": 5}
    with pytest.raises(MicroforgeError, match="vae_map adversarial_steps must be 0"):
        tim3_config_from_dict(d)
    expected = r"adversarial_condition must be one of none, map, map\+properties, got 'phases'"
    with pytest.raises(MicroforgeError, match=expected):
        tim3_config_from_dict(_micro(adversarial_steps=4, adversarial_condition="phases"))


def test_seeded_run_fine_tunes_only_the_decoder(micro_model, tiny_bench, tmp_path, monkeypatch):
    config = tmp_path / "adv.yaml"
    config.write_text(yaml.safe_dump(_micro(adversarial_steps=6)))
    run = tmp_path / "run"
    done = _seed(micro_model, config, run)
    assert done.returncode == 0, done.stderr
    assert "to train: vae_image_adversarial" in done.stdout
    cfg = load_tim3_config(config)
    # killed at step 5, after the step-4 checkpoint
    with interrupted_at_step(monkeypatch, 5, key_length=2), pytest.raises(KeyboardInterrupt):
        train_tim3(tiny_bench.root, run, cfg, resume=True, progress=False)
    checkpoint = run / "checkpoints" / "vae_image_adversarial" / "step_0000004" / "step.json"
    first_run = json.loads(checkpoint.read_text())["seconds"]  # the 4 steps' time, from the killed run
    train_tim3(tiny_bench.root, run, cfg, resume=True, progress=False)
    marker = json.loads((run / ".done" / "vae_image_adversarial.json").read_text())
    # the phase's record counts the killed run's 4 steps beside the resumed run's 2
    assert first_run > 0 and marker["seconds"] == pytest.approx(first_run + marker["seconds_this_run"], abs=0.11)

    before = AutoencoderKL.from_pretrained(micro_model / "vae_image")
    after = AutoencoderKL.from_pretrained(run / "vae_image")
    b, a = before.state_dict(), after.state_dict()
    frozen = [k for k in b if k.startswith(("encoder.", "quant_conv."))]
    tuned = [k for k in b if k.startswith(("decoder.", "post_quant_conv."))]
    assert frozen and all(torch.equal(b[k], a[k]) for k in frozen)
    assert any(not torch.equal(b[k], a[k]) for k in tuned)
    assert _same_weights(micro_model, run, ("unet_stage1", "unet_stage2", "vae_map"))  # the copied phases

    record = json.loads((run / "config.json").read_text())
    assert record["scaling_factors"] == json.loads((micro_model / "config.json").read_text())["scaling_factors"]
    assert record["training"]["vae_image_adversarial"]["steps"] == 6
    assert record["training"]["stage2"]["reused_from"] == str(micro_model)
    assert "_name_or_path" not in json.loads((run / "vae_image" / "config.json").read_text())  # no run path
    assert_micro_samples_reproduce(TiM3Pipeline.from_pretrained(run), tmp_path)

    # the interrupted run ended where an uninterrupted one does
    again = tmp_path / "again"
    assert _seed(micro_model, config, again).returncode == 0
    train_tim3(tiny_bench.root, again, cfg, resume=True, progress=False)
    c = AutoencoderKL.from_pretrained(again / "vae_image").state_dict()
    assert all(torch.equal(a[k], c[k]) for k in tuned)

    # a fine-tuned decoder cannot be fine-tuned anew: its decoder from before is gone
    assert "to train: nothing" in _seed(run, config, tmp_path / "as-is").stdout
    longer = tmp_path / "longer.yaml"
    longer.write_text(yaml.safe_dump(_micro(adversarial_steps=7)))
    refused = _seed(run, longer, tmp_path / "longer")
    assert refused.returncode != 0 and "already fine-tuned" in refused.stderr and not (tmp_path / "longer").exists()


def test_seeding_refuses_other_configs_and_used_folders(micro_model, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**_micro(adversarial_steps=6), "split_fractions": [0.8, 0.1, 0.1]}))
    refused = _seed(micro_model, other, tmp_path / "run")
    assert refused.returncode != 0 and "differs from" in refused.stderr and not (tmp_path / "run").exists()
    same = tmp_path / "same.yaml"
    same.write_text(yaml.safe_dump(_micro(adversarial_steps=6)))
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    refused = _seed(micro_model, same, used)
    assert refused.returncode != 0 and "not an empty folder" in refused.stderr
    assert (used / "notes.txt").read_text() == "mine"


def _same_weights(model, run, parts) -> bool:
    """Every safetensors file of ``parts`` is byte for byte the model's."""
    files = [f for part in parts for f in (model / part).glob("*.safetensors")]
    return bool(files) and all((run / f.parent.name / f.name).read_bytes() == f.read_bytes() for f in files)


def test_a_new_objective_retrains_the_stages_on_the_models_autoencoders(micro_model, tiny_bench, tmp_path):
    d = load_tim3_config(MICRO).to_dict()
    d.update(prediction_type="v_prediction", snr_gamma=5.0, beta_schedule="squaredcos_cap_v2")
    config, run, stdout = _seeded(micro_model, d, tmp_path, "v")
    assert "to train: stage1, stage2" in stdout
    assert not (run / "unet_stage1").exists() and not (run / "scheduler").exists()
    train_tim3(tiny_bench.root, run, load_tim3_config(config), resume=True, progress=False)
    assert _same_weights(micro_model, run, ("vae_image", "vae_map"))  # reused byte for byte
    sched = json.loads((run / "scheduler" / "scheduler_config.json").read_text())
    assert (sched["prediction_type"], sched["beta_schedule"]) == ("v_prediction", "squaredcos_cap_v2")
    record = json.loads((run / "config.json").read_text())
    assert record["training"]["vae_map"]["reused_from"] == str(micro_model)
    assert "reused_from" not in record["training"]["stage1"] and "reused_from" not in record["training"]["stage2"]
    for phase in ("stage1", "stage2"):  # the new run's log only, not appended to the model's
        steps = [json.loads(line)["step"] for line in (run / "logs" / f"{phase}.jsonl").read_text().splitlines()]
        assert steps[0] == 0 and all(b > a for a, b in zip(steps, steps[1:]))
    assert record["scaling_factors"] == json.loads((micro_model / "config.json").read_text())["scaling_factors"]
    assert_micro_samples_reproduce(TiM3Pipeline.from_pretrained(run), tmp_path)


def test_a_new_map_autoencoder_retrains_stage_1_and_keeps_stage_2(micro_model, tiny_bench, tmp_path):
    d = load_tim3_config(MICRO).to_dict()
    d["vae_map"] = {**d["vae_map"], "steps": d["vae_map"]["steps"] + 2}
    config, run, stdout = _seeded(micro_model, d, tmp_path, "map")
    assert "to train: vae_map, stage1" in stdout
    train_tim3(tiny_bench.root, run, load_tim3_config(config), resume=True, progress=False)
    # stage 2 reads true maps, not the map codec
    assert _same_weights(micro_model, run, ("vae_image", "unet_stage2", "encoder_stage2"))
    assert not _same_weights(micro_model, run, ("vae_map",)) and not _same_weights(micro_model, run, ("unet_stage1",))
    record = json.loads((run / "config.json").read_text())
    assert record["training"]["vae_map"]["steps"] == d["vae_map"]["steps"]
    assert record["training"]["stage2"]["reused_from"] == str(micro_model)
    # the same map phases taken from that run (as the OM model takes the SEM model's) instead of trained
    taken = tmp_path / "taken"
    done = _seed(micro_model, config, taken, "--map-phases-from", str(run))
    assert done.returncode == 0 and "to train: nothing" in done.stdout, done.stderr
    assert _same_weights(run, taken, ("vae_map", "unet_stage1", "encoder_stage1"))
    assert _same_weights(micro_model, taken, ("vae_image", "unet_stage2", "encoder_stage2"))
    markers = {p.stem: json.loads(p.read_text())["reused_from"] for p in (taken / ".done").glob("*.json")}
    assert markers == {
        "vae_image": str(micro_model),
        "vae_map": str(run),
        "stage1": str(run),
        "stage2": str(micro_model),
    }
    assert (taken / "logs" / "stage1.jsonl").read_bytes() == (run / "logs" / "stage1.jsonl").read_bytes()
    # a model whose map phases CONFIG would not train is refused
    refused = _seed(micro_model, config, tmp_path / "no", "--map-phases-from", str(micro_model))
    assert refused.returncode != 0 and "fields that the map autoencoder or stage 1 read" in refused.stderr
    assert not (tmp_path / "no").exists()
    # only a stage's length changed: that stage alone
    d2 = load_tim3_config(MICRO).to_dict()
    d2["train"] = {**d2["train"], "stage2_steps": d2["train"]["stage2_steps"] + 1}
    assert "to train: stage2" in _seeded(micro_model, d2, tmp_path, "steps")[2]


def test_a_new_image_autoencoder_retrains_stage_2_and_keeps_the_map_phases(micro_model, tiny_bench, tmp_path):
    """The OM model's next lever is a new micrograph autoencoder: stage 2 denoises its latents, so
    it is retrained with it, while the map phases, which read no micrograph, are kept."""
    d = load_tim3_config(MICRO).to_dict()
    d["vae_image"] = {**d["vae_image"], "steps": d["vae_image"]["steps"] + 2}
    config, run, stdout = _seeded(micro_model, d, tmp_path, "image")
    assert "seeded with vae_map, stage1" in stdout and "to train: vae_image, stage2" in stdout
    assert not (run / "vae_image").exists() and not (run / "unet_stage2").exists()
    train_tim3(tiny_bench.root, run, load_tim3_config(config), resume=True, progress=False)
    assert _same_weights(micro_model, run, ("vae_map", "unet_stage1", "encoder_stage1"))
    assert not _same_weights(micro_model, run, ("vae_image",)) and not _same_weights(micro_model, run, ("unet_stage2",))
    record = json.loads((run / "config.json").read_text())
    assert record["training"]["vae_image"]["steps"] == d["vae_image"]["steps"]
    assert "reused_from" not in record["training"]["stage2"]
    assert record["training"]["stage1"]["reused_from"] == str(micro_model)
    # a changed adversarial fine-tune is no refusal when the autoencoder is trained anew (it runs last)
    d["vae_image"] = {**d["vae_image"], "adversarial_steps": 3}
    assert "to train: vae_image, stage2, vae_image_adversarial" in _seeded(micro_model, d, tmp_path, "adv")[2]


def test_a_stage_2_unet_of_its_own_retrains_stage_2_alone(micro_model, tiny_bench, tmp_path):
    """``unet_stage2`` builds stage 2 from its own section (here two levels, wider) and leaves
    stage 1 on ``unet``; seeding retrains the stage whose UNet changes, and a sampler setting
    changes nothing trained."""
    d = load_tim3_config(MICRO).to_dict()
    d["unet_stage2"] = {"block_out_channels": [24, 48], "norm_num_groups": 8, "attention_head_dim": 4}
    d["sampling_steps"] = 5
    config, run, stdout = _seeded(micro_model, d, tmp_path, "wide")
    assert stdout.split("to train:")[1].strip() == "stage2"
    train_tim3(tiny_bench.root, run, load_tim3_config(config), resume=True, progress=False)
    assert _same_weights(micro_model, run, ("vae_image", "vae_map", "unet_stage1", "encoder_stage1"))
    stage1 = UNet2DConditionModel.from_pretrained(run / "unet_stage1").config
    stage2 = UNet2DConditionModel.from_pretrained(run / "unet_stage2").config
    assert (tuple(stage1.block_out_channels), tuple(stage2.block_out_channels)) == ((16, 32, 32), (24, 48))
    assert list(stage2.down_block_types) == ["CrossAttnDownBlock2D", "DownBlock2D"]
    # unet.global_condition [1] names stage 1 only
    assert (stage1.class_embed_type, stage2.class_embed_type) == ("projection", None)
    record = json.loads((run / "config.json").read_text())["config"]
    assert record["unet_stage2"]["block_out_channels"] == [24, 48] and record["sampling_steps"] == 5
    assert_micro_samples_reproduce(TiM3Pipeline.from_pretrained(run), tmp_path)

    # stage 1's UNet changed, stage 2 given the old one as its own: stage 1 alone
    d = load_tim3_config(MICRO).to_dict()
    d["unet_stage2"] = {**d["unet"], "global_condition": []}
    d["unet"] = {**d["unet"], "block_out_channels": [16, 32, 48]}
    assert _seeded(micro_model, d, tmp_path, "stage1")[2].split("to train:")[1].strip() == "stage1"
    # the same UNet given as unet_stage2 is no change at all
    d["unet"] = load_tim3_config(MICRO).to_dict()["unet"]
    assert "to train: nothing" in _seeded(micro_model, d, tmp_path, "same")[2]


def test_unet_stage2_settings_are_checked():
    assert tim3_config_from_dict({**_micro(), "unet_stage2": None}).unet_stage2 is None
    # the tiny default: its own wider, deeper UNet; a partial section fills from that default, and a
    # saved record without the field (a model trained before it existed) used unet for stage 2
    tiny = tim3_config_from_dict({"resolution": 64})
    assert tiny.stage_unet(2).block_out_channels == (48, 96, 96, 96) and tiny.unet.block_out_channels == (32, 64, 64)
    assert tim3_config_from_dict({"unet_stage2": {"layers_per_block": 2}}).unet_stage2.block_out_channels == (
        48,
        96,
        96,
        96,
    )
    older = {k: v for k, v in tiny.to_dict().items() if k != "unet_stage2"}
    assert tim3_config_from_dict(older, saved=True).unet_stage2 is None
    assert tim3_config_from_dict(older).unet_stage2 == tiny.unet_stage2  # a config file: today's default
    cfg = tim3_config_from_dict({**_micro(), "unet_stage2": {"block_out_channels": [24, 48], "norm_num_groups": 8}})
    assert cfg.stage_unet(2).block_out_channels == (24, 48) and cfg.stage_unet(1) is cfg.unet
    assert tim3_config_from_dict(cfg.to_dict(), saved=True) == cfg  # a model folder's record reads back
    with pytest.raises(MicroforgeError, match="unet_stage2 global_condition must be empty"):
        tim3_config_from_dict({**_micro(), "unet_stage2": {"global_condition": [2], "norm_num_groups": 8}})
    with pytest.raises(MicroforgeError, match="unet_stage2: unknown key"):
        tim3_config_from_dict({**_micro(), "unet_stage2": {"channels": [24, 48]}})
    # 32 px through a f = 4 codec (8 x 8 latents) cannot halve 4 times in a five-level UNet: refused
    with pytest.raises(
        MicroforgeError, match=r"must be divisible by the vae_image and UNet downsampling \(unet_stage2\)"
    ):
        tim3_config_from_dict(
            {**_micro(), "unet_stage2": {"block_out_channels": [8, 8, 8, 8, 8], "norm_num_groups": 8}}
        )


def test_a_learning_rate_decay_retrains_the_stages_it_changes(micro_model, tiny_bench, tmp_path):
    """``train.lr_decay`` is stage 1's and, while ``stage2_lr_decay`` is null, stage 2's too."""
    d = load_tim3_config(MICRO).to_dict()
    d["train"] = {**d["train"], "lr_decay": "cosine"}
    assert "to train: stage1, stage2" in _seeded(micro_model, d, tmp_path, "both")[2]
    stage1 = {}
    for decay in ("constant", "cosine"):  # 110 steps: past the 100-step warm-up, where the two part
        d["train"].update(steps=110, lr_decay=decay, stage2_lr_decay="constant")
        config, run, stdout = _seeded(micro_model, d, tmp_path, decay)
        assert "to train: stage1" in stdout and "stage2" not in stdout.split("to train:")[1]
        train_tim3(tiny_bench.root, run, load_tim3_config(config), resume=True, progress=False)
        assert _same_weights(micro_model, run, ("vae_image", "vae_map", "unet_stage2"))
        stage1[decay] = UNet2DConditionModel.from_pretrained(run / "unet_stage1").state_dict()
    assert any(not torch.equal(stage1["constant"][k], stage1["cosine"][k]) for k in stage1["cosine"])
    record = json.loads((run / "config.json").read_text())
    assert (record["config"]["train"]["lr_decay"], record["config"]["train"]["stage2_lr_decay"]) == (
        "cosine",
        "constant",
    )


def test_a_property_noise_scale_retrains_the_stages_it_changes(micro_model, tmp_path):
    d = load_tim3_config(MICRO).to_dict()
    assert (d["train"]["property_noise_scale"], d["train"]["stage2_property_noise_scale"]) == (0.5, 1.0)  # the model's
    d["train"] = {**d["train"], "property_noise_scale": 0.25, "stage2_property_noise_scale": 0.5}
    assert "to train: stage1, stage2" in _seeded(micro_model, d, tmp_path, "both")[2]
    d["train"]["stage2_property_noise_scale"] = 1.0  # stage 2 keeps the model's noise: only stage 1 is retrained
    stdout = _seeded(micro_model, d, tmp_path, "stage1")[2]
    assert "to train: stage1" in stdout and "stage2" not in stdout.split("to train:")[1]


def test_a_reused_autoencoder_keeps_its_models_scaling_factor(micro_model, tiny_bench, tmp_path):
    # seeded from the float16 copy of a model, the retrained stage 1 and the reused stage 2 read the
    # latents at the factors the copy records (its stage 2 was trained at them), not at factors
    # measured anew on the rounded weights
    half = TiM3Pipeline.from_pretrained(micro_model).save_pretrained(tmp_path / "half", weights_dtype="float16")
    recorded = json.loads((half / "config.json").read_text())["scaling_factors"]
    d = load_tim3_config(MICRO).to_dict()
    d["train"] = {**d["train"], "property_noise_scale": 0.25}
    config, run, stdout = _seeded(half, d, tmp_path, "quarter")
    assert "to train: stage1" in stdout and "stage2" not in stdout.split("to train:")[1]
    train_tim3(tiny_bench.root, run, load_tim3_config(config), resume=True, progress=False)
    record = json.loads((run / "config.json").read_text())
    assert record["scaling_factors"] == recorded
    assert record["training"]["vae_map"]["scaling_factor"] == recorded["vae_map"]


def test_a_map_conditional_discriminator_sees_the_map(micro_model, tiny_bench, tmp_path):
    """``adversarial_condition: map``: the discriminator takes the image and the map's 3 class shares
    (4 channels), so the same seeded run tunes the decoder differently from the unconditional one;
    ``map+properties`` adds the tile's normalised properties as constant channels, and tunes it
    differently again."""
    decoders = {}
    for condition in ("none", "map", "map+properties"):
        config = tmp_path / f"{condition}.yaml"
        config.write_text(yaml.safe_dump(_micro(adversarial_steps=3, adversarial_condition=condition)))
        run = tmp_path / condition
        assert _seed(micro_model, config, run).returncode == 0
        train_tim3(tiny_bench.root, run, load_tim3_config(config), resume=True, progress=False)
        decoders[condition] = AutoencoderKL.from_pretrained(run / "vae_image").state_dict()
        record = json.loads((run / "config.json").read_text())
        assert record["config"]["vae_image"]["adversarial_condition"] == condition
    tuned = [k for k in decoders["none"] if k.startswith("decoder.")]
    assert any(not torch.equal(decoders["none"][k], decoders["map"][k]) for k in tuned)
    assert any(not torch.equal(decoders["map"][k], decoders["map+properties"][k]) for k in tuned)
