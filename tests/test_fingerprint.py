"""ResNet18-VAE fingerprints: the loss, training with resume, encode, and every explore analysis."""

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from microforge.cli import FINGERPRINT_KINDS, cli
from microforge.data.dataset import d4_batch
from microforge.errors import MicroforgeError
from microforge.fingerprint import (
    KINDS,
    MODEL_TYPE,
    FingerprintTrainConfig,
    explore,
    fingerprints,
    load_fingerprint_model,
    symmetry_fingerprints,
    train_fingerprints,
)
from microforge.models.fingerprint import FingerprintConfig, FingerprintVAE, fingerprint_loss, spectral_loss
from microforge.models.weights import save_weights

from .conftest import interrupted_at_step

MICRO = FingerprintTrainConfig(
    model=FingerprintConfig(resolution=32, width=8, hidden=64, latent=16),
    steps=6,
    batch_size=8,
    split_fractions=(0.5, 0.25, 0.25),
    checkpoint_every=3,
)


def test_shapes_and_spectral_loss():
    vae = FingerprintVAE(FingerprintConfig(resolution=32, width=8))
    x = torch.rand(2, 1, 32, 32)
    logits, mu, logvar = vae(x, torch.Generator().manual_seed(0))
    assert logits.shape == x.shape and mu.shape == logvar.shape == (2, 256)
    assert vae.decode(mu).min() >= 0 and vae.decode(mu).max() <= 1
    # the magnitude-only option ignores where a pattern sits: a shifted copy has the same FFT magnitudes
    stripes = (torch.arange(32) % 8 < 4).float().view(1, 1, 1, 32).expand(1, 1, 32, 32)
    assert spectral_loss(stripes, torch.roll(stripes, 3, dims=-1), "magnitude").item() == pytest.approx(0.0, abs=1e-10)
    assert spectral_loss(stripes, torch.full_like(stripes, 0.5), "magnitude").item() > 0.01


def test_fidelity_spectral_loss_keeps_phase():
    # White et al.'s L_f compares real and imaginary parts: a shifted copy is a different image
    stripes = (torch.arange(32) % 8 < 4).float().view(1, 1, 1, 32).expand(1, 1, 32, 32)
    shifted = torch.roll(stripes, 3, dims=-1)
    # shifting a 4-on-4-off stripe by 3 px flips 6 of every 8 columns
    assert spectral_loss(stripes, shifted).item() == pytest.approx(F.mse_loss(stripes, shifted).item(), rel=1e-6)
    assert spectral_loss(stripes, shifted).item() == pytest.approx(6 / 8, rel=1e-6)
    # and, by Parseval, it is the pixel MSE for any pair
    a, b = torch.rand(3, 1, 16, 16), torch.rand(3, 1, 16, 16)
    assert spectral_loss(a, b).item() == pytest.approx(F.mse_loss(a, b).item(), rel=1e-5)
    assert FingerprintConfig().spectral == "complex"


def test_local_spectral_loss_tells_colonies_apart():
    # two colonies, vertical laths on the left and horizontal on the right, against the same tile
    # with its halves swapped: a circular shift, so the whole-tile FFT magnitudes are equal and
    # only the per-window spectrum (32 px windows at a 16 px stride) sees that each colony now
    # lies where the other was
    v = (torch.arange(64) % 8 < 4).float()
    vertical, horizontal = v.view(1, 64).expand(64, 64), v.view(64, 1).expand(64, 64)
    a = torch.cat([vertical[:, :32], horizontal[:, 32:]], 1)[None, None]
    swapped = torch.roll(a, 32, dims=-1)
    assert spectral_loss(a, swapped, "magnitude").item() == pytest.approx(0.0, abs=1e-10)
    assert spectral_loss(a, swapped, "local", 32).item() == pytest.approx(0.3424, rel=1e-3)
    # one window the size of the image: the magnitude loss of the Hann-tapered images
    x, y = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    hann = torch.hann_window(16, periodic=False)
    taper = hann[:, None] * hann[None, :]
    taper = taper / taper.pow(2).mean().sqrt()  # scaled to a mean square of 1
    assert spectral_loss(x, y, "local", 16).item() == pytest.approx(
        spectral_loss(x * taper, y * taper, "magnitude").item(), rel=1e-6
    )
    with pytest.raises(MicroforgeError, match="spectral_window"):
        FingerprintConfig(resolution=128, spectral="local", spectral_window=48)


def test_a_bad_config_value_is_one_error_line(tiny_bench, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  spectral: local\n  spectral_window: 48\n")
    args = ["fingerprint", "train", "--data", str(tiny_bench.root), "--config", str(bad), "--out", str(tmp_path / "fp")]
    r = CliRunner().invoke(cli, [*args, "--quiet"])
    assert r.exit_code == 1 and r.output.startswith(f"Error: {bad}: model: spectral_window")
    assert "Traceback" not in r.output and not (tmp_path / "fp").exists()


def test_fidelity_encoder_flattens_the_last_convolution():
    vae = FingerprintVAE(FingerprintConfig(resolution=32, width=8, hidden=64))
    assert vae.to_hidden.in_features == 8 * 8 * 4 * 4  # 64 channels x (32 / 8)^2 positions, not pooled
    pooled = FingerprintVAE(FingerprintConfig(resolution=32, width=8, hidden=64, encoder_pool="mean"))
    assert pooled.to_hidden.in_features == 64


@pytest.fixture(scope="module")
def fp_model(tiny_bench, tmp_path_factory):
    """The micro fingerprint VAE, trained once for this module's tests."""
    return train_fingerprints(tiny_bench.root, tmp_path_factory.mktemp("fp") / "full", MICRO, progress=False)


def test_train_resumed_after_an_interrupt_gives_the_same_weights(tiny_bench, fp_model, tmp_path, monkeypatch):
    with interrupted_at_step(monkeypatch, 4), pytest.raises(KeyboardInterrupt):  # after the step-3 checkpoint
        train_fingerprints(tiny_bench.root, tmp_path / "cut", MICRO, progress=False)
    train_fingerprints(tiny_bench.root, tmp_path / "cut", MICRO, resume=True, progress=False)
    assert (fp_model / "model.safetensors").read_bytes() == (tmp_path / "cut" / "model.safetensors").read_bytes()


def test_fingerprints_are_the_same_from_two_loads(fp_model):
    imgs = np.random.default_rng(0).random((3, 64, 64)).astype(np.float32)
    first = fingerprints(load_fingerprint_model(fp_model), imgs)
    assert first.shape == (3, 16) and np.array_equal(first, fingerprints(load_fingerprint_model(fp_model), imgs))


def test_encode_cli_writes_one_row_per_tile(tiny_bench, fp_model, tmp_path):
    args = ["fingerprint", "encode", str(tiny_bench.root), "--model", str(fp_model), "--out", str(tmp_path / "f.csv")]
    r = CliRunner().invoke(cli, [*args, "--quiet"])
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(open(tmp_path / "f.csv")))
    assert rows[0][:3] == ["name", "image", "f0"] and len(rows[0]) == 2 + 16 and len(rows) == 1 + len(tiny_bench.table)


def test_symmetry_fingerprints_are_the_mean_and_spread_of_the_eight_views_and_ignore_turns(fp_model):
    model = load_fingerprint_model(fp_model)
    imgs = np.random.default_rng(1).random((3, 32, 32)).astype(np.float32)
    sym = symmetry_fingerprints(model, imgs)
    views = np.stack([fingerprints(model, d4_batch(torch.from_numpy(imgs), torch.full((3,), k))) for k in range(8)])
    assert sym.shape == (3, 32)
    np.testing.assert_allclose(sym[:, :16], views.mean(0), atol=1e-6)
    np.testing.assert_allclose(sym[:, 16:], views.std(0), atol=1e-6)
    assert sym[:, 16:].min() > 1e-4  # noise reads differently turned: the spread is not zero
    for turned in (np.rot90(imgs, 1, (1, 2)), imgs[:, :, ::-1], np.rot90(imgs, 3, (1, 2))[:, ::-1]):
        np.testing.assert_allclose(symmetry_fingerprints(model, np.ascontiguousarray(turned)), sym, atol=1e-5)
    assert not np.allclose(fingerprints(model, np.ascontiguousarray(np.rot90(imgs, 1, (1, 2)))), views[0], atol=1e-3)


def test_encode_cli_names_the_symmetry_kinds_columns(tiny_bench, fp_model, tmp_path):
    assert FINGERPRINT_KINDS == KINDS
    out = tmp_path / "f.csv"
    args = ["fingerprint", "encode", str(tiny_bench.root), "--kind", "vae-d4", "--out"]
    r = CliRunner().invoke(cli, [*args, str(out), "--model", str(fp_model), "--quiet"])
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(open(out)))
    assert rows[0][2:4] == ["mean_f0", "mean_f1"] and rows[0][18:20] == ["std_f0", "std_f1"] and len(rows[0]) == 34
    r = CliRunner().invoke(cli, [*args, str(tmp_path / "g.csv")])
    assert r.exit_code == 1 and r.output.startswith("Error: --kind vae-d4 needs --model")


def test_explore_writes_every_figure_and_specimen_grouped_cross_validation(tiny_bench, fp_model, tmp_path):
    summary = explore(tiny_bench.root, tmp_path / "ex", ("vae", "vae-d4"), model_dir=fp_model, gammas=(0.5, 1.0))
    assert summary["dims"] == {"vae": 16, "vae-d4": 32}
    for name in ("paths", "clouds", "pca", "embeddings", "cv"):
        assert (tmp_path / "ex" / f"{name}.png").stat().st_size > 1000 and (tmp_path / "ex" / f"{name}.json").is_file()
    assert summary["cv"]["splits"] == 10 and summary["cv"]["grouped_by"] == "specimen"
    both = json.loads((tmp_path / "ex" / "cv.json").read_text())
    cv = both["vae"]
    assert (
        set(both["vae-d4"]["regression"]) == set(cv["regression"]) and "morphology" in both["vae-d4"]["classification"]
    )
    assert set(cv["regression"]) == {"primary_alpha_fraction", *tiny_bench.properties.names}
    assert "morphology" in cv["classification"] and summary["images"] == len(
        tiny_bench.table[tiny_bench.table["modality"] == "SEM"]
    )
    with pytest.raises(MicroforgeError, match="already holds results"):
        explore(tiny_bench.root, tmp_path / "ex", model_dir=fp_model)


def test_a_missing_fingerprint_model_is_a_named_error(tmp_path):
    with pytest.raises(MicroforgeError, match="fingerprint model folder not found"):
        load_fingerprint_model(tmp_path / "none")


def test_evaluate_reports_the_fingerprint_distance(tiny_bench, micro_model, fp_model, tmp_path):
    from microforge.evaluate.options import EvaluationOptions
    from microforge.evaluate.run import evaluate

    m = evaluate(
        str(micro_model),
        tiny_bench.root,
        tmp_path / "r",
        EvaluationOptions(n=4, n_reference=4, n_describe=0, batch_size=4, fingerprint=str(fp_model)),
        progress=False,
    )
    assert m["main"]["fingerprint_frechet"] > 0 and "Fingerprint FD" in (tmp_path / "r" / "index.html").read_text()


def test_folders_saved_before_the_fidelity_options_load_as_they_were_trained(tmp_path):
    old = FingerprintConfig(resolution=32, width=8, hidden=64, latent=16, encoder_pool="mean", spectral="magnitude")
    fields = {k: v for k, v in dataclasses.asdict(old).items() if k not in ("encoder_pool", "spectral")}
    save_weights(FingerprintVAE(old), tmp_path, {"model_type": MODEL_TYPE, **fields})
    loaded = load_fingerprint_model(tmp_path)
    assert (loaded.cfg.encoder_pool, loaded.cfg.spectral) == ("mean", "magnitude")


def test_cosine_decay_resumes_exactly_and_a_bad_decay_is_refused(tiny_bench, tmp_path, monkeypatch):
    cfg = dataclasses.replace(MICRO, lr_decay="cosine")
    whole = train_fingerprints(tiny_bench.root, tmp_path / "whole", cfg, progress=False)
    with interrupted_at_step(monkeypatch, 4), pytest.raises(KeyboardInterrupt):  # the schedule is checkpointed too
        train_fingerprints(tiny_bench.root, tmp_path / "cut", cfg, progress=False)
    train_fingerprints(tiny_bench.root, tmp_path / "cut", cfg, resume=True, progress=False)
    assert (whole / "model.safetensors").read_bytes() == (tmp_path / "cut" / "model.safetensors").read_bytes()
    plain = train_fingerprints(
        tiny_bench.root, tmp_path / "plain", dataclasses.replace(MICRO, lr_decay="none"), progress=False
    )
    assert (whole / "model.safetensors").read_bytes() != (plain / "model.safetensors").read_bytes()
    with pytest.raises(MicroforgeError, match="lr_decay must be one of none, cosine, got 'linear'"):
        dataclasses.replace(MICRO, lr_decay="linear")


def test_bf16_autocast_trains_in_bf16_with_fp32_losses(tiny_bench, fp_model, tmp_path):
    """``autocast: bf16`` runs the VAE's convolutions in bfloat16 (a different, still finite walk
    from the same seed) and keeps its losses and saved weights in fp32."""
    x = torch.rand(2, 1, 32, 32)
    vae = FingerprintVAE(MICRO.model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert vae(x, torch.Generator().manual_seed(0))[0].dtype == torch.bfloat16
        loss, parts = fingerprint_loss(vae, x, torch.Generator().manual_seed(0))
    assert loss.dtype == torch.float32 and np.isfinite(parts["loss"])
    half = train_fingerprints(
        tiny_bench.root, tmp_path / "bf16", dataclasses.replace(MICRO, autocast="bf16"), progress=False
    )
    a, b = load_fingerprint_model(fp_model).state_dict(), load_fingerprint_model(half).state_dict()
    assert all(v.dtype == torch.float32 for v in b.values() if v.is_floating_point())
    assert any(not torch.equal(a[k], b[k]) for k in a) and all(torch.isfinite(v.float()).all() for v in b.values())
    assert json.loads((half / "config.json").read_text())["train"]["autocast"] == "bf16"
    with pytest.raises(MicroforgeError, match="autocast must be bf16 or null"):
        dataclasses.replace(MICRO, autocast="fp16")


def test_adversarial_decoder_fine_tune_keeps_every_fingerprint_and_resumes_exactly(
    tiny_bench, fp_model, tmp_path, monkeypatch
):
    cfg = dataclasses.replace(MICRO, adversarial_steps=6)
    tuned = train_fingerprints(tiny_bench.root, tmp_path / "adv", cfg, progress=False)
    imgs = np.random.default_rng(2).random((4, 32, 32)).astype(np.float32)
    plain_model, tuned_model = load_fingerprint_model(fp_model), load_fingerprint_model(tuned)
    assert np.array_equal(fingerprints(plain_model, imgs), fingerprints(tuned_model, imgs))  # the encoder is frozen
    z = torch.from_numpy(fingerprints(plain_model, imgs)).float()
    with torch.no_grad():
        assert (plain_model.decode(z) - tuned_model.decode(z)).abs().max() > 1e-3  # the decoder moved
    rec = json.loads((tuned / "reconstruction.json").read_text())
    assert rec["before_adversarial"]["mse"] == json.loads((fp_model / "reconstruction.json").read_text())["mse"]
    assert len((tuned / "log_adversarial.jsonl").read_text().splitlines()) == 2  # steps 0 and 5 (the last)
    assert not (tuned / "checkpoints").exists() and not (tuned / "checkpoints_adversarial").exists()

    # the fine-tune's key is (seed, 1, step): die at its step 4, after the step-3 checkpoint
    with interrupted_at_step(monkeypatch, 4, key_length=2), pytest.raises(KeyboardInterrupt):
        train_fingerprints(tiny_bench.root, tmp_path / "cut", cfg, progress=False)
    train_fingerprints(tiny_bench.root, tmp_path / "cut", cfg, resume=True, progress=False)
    assert (tuned / "model.safetensors").read_bytes() == (tmp_path / "cut" / "model.safetensors").read_bytes()
    with pytest.raises(MicroforgeError, match="adversarial_steps and adversarial_weight must not be negative"):
        dataclasses.replace(MICRO, adversarial_weight=-1.0)
