"""Segmentation: classical method, the attention U-Net, its training and its scores."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from microforge.characterize.segmentation import (
    binarise,
    flatten_illumination,
    segment_classical,
    segmentation_scores,
    white_normalise,
)
from microforge.training.segmenter_trainer import (
    SegmenterTrainConfig,
    evaluate_segmentation,
    segmentation_loss,
    train_segmenter,
)
from microforge.data.synth.config import SynthConfig
from microforge.data.synth.benchmark import make_specimen
from microforge.errors import MicroforgeError
from microforge.models.attention_unet import AttentionUNet, AttentionUNetConfig, predict_phase_map

from .test_importer import ti_options


def test_white_normalisation_and_binarisation():
    img = np.arange(100, dtype=float).reshape(10, 10)
    norm = white_normalise(img)
    assert norm[0, 0] == 0.0 and norm[5, 0] == pytest.approx(50 / 89.1, rel=1e-5) and norm.max() == 1.0
    two = np.zeros((20, 20))
    two[:, 10:] = 200.0
    two += np.random.default_rng(0).normal(0, 5, two.shape) + 20
    assert binarise(two)[:, 10:].all() and not binarise(two)[:, :10].any()
    with pytest.raises(MicroforgeError):
        white_normalise(np.zeros((4, 4)))


def test_flattening_removes_a_ramp():
    yy, xx = np.indices((128, 128))
    ramp = 0.5 + 0.004 * xx
    flat = flatten_illumination(ramp)
    assert np.ptp(flat[32:96, 32:96]) < 0.25 * np.ptp(ramp[32:96, 32:96])


def test_scores_on_known_maps():
    truth = np.zeros((10, 10), np.uint8)
    truth[:, 5:] = 1
    pred = truth.copy()
    pred[:, 5] = 0  # one column of beta called alpha
    s = segmentation_scores(pred, truth)
    assert s["iou"][0] == pytest.approx(50 / 60) and s["iou"][1] == pytest.approx(40 / 50)
    assert np.isnan(s["iou"][2])
    assert s["fraction_error_pts"][1] == pytest.approx(-10.0)
    pred[0, 0] = 2
    assert segmentation_scores(pred, truth, merge_alpha=True)["iou"][0] == pytest.approx(50 / 60)


@pytest.mark.parametrize("morphology,min_iou", [("equiaxed", (0.9, 0.7)), ("bimodal", (0.6, 0.25))])
def test_classical_segmentation_of_synthetic_sem(morphology, min_iou):
    sp = make_specimen(SynthConfig(field_px=256), 0, morphology)
    s = segmentation_scores(segment_classical(sp.images["SEM"], "SEM"), sp.structure.phase_map)
    assert s["iou"][0] >= min_iou[0] and s["iou"][1] >= min_iou[1]


def test_merged_alpha_loss():
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 2] = 5.0  # confident secondary alpha everywhere
    mask = torch.zeros(1, 2, 2, dtype=torch.long)  # labelled "alpha"
    strict = segmentation_loss(logits, mask, torch.tensor([False]))
    merged = segmentation_loss(logits, mask, torch.tensor([True]))
    assert merged < 0.02 < strict  # with a binary mask, secondary alpha is alpha
    mask[0, 0, 0] = -1
    assert segmentation_loss(logits, mask, torch.tensor([False])) == pytest.approx(float(strict))


def test_unet_shapes_round_trip_and_bad_files(tmp_path):
    torch.manual_seed(0)
    model = AttentionUNet(AttentionUNetConfig(channels=(8, 16, 32), groups=4)).eval()
    x = torch.rand(2, 1, 64, 48)
    assert model(x).shape == (2, 3, 64, 48)
    model.save_pretrained(tmp_path / "m")
    back = AttentionUNet.from_pretrained(tmp_path / "m")
    assert torch.equal(model(x), back(x))
    odd = np.random.default_rng(0).random((37, 53)).astype(np.float32)
    assert predict_phase_map(back, odd).shape == (37, 53)
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    with pytest.raises(MicroforgeError, match="model.safetensors"):
        AttentionUNet.from_pretrained(tmp_path / "m")
    with pytest.raises(MicroforgeError, match="not found"):
        AttentionUNet.from_pretrained(tmp_path / "missing")


def test_segmenter_training_resumes_exactly(tiny_bench, tmp_path, monkeypatch):
    """Killed after its step-4 checkpoint and resumed, the segmenter ends with the same weights as
    an uninterrupted run; an unfinished folder needs --resume, a finished one is refused."""
    from .conftest import interrupted_at_step

    cfg = replace(SegmenterTrainConfig(), steps=6, batch_size=2, crop=32, channels=(8, 16, 32, 64), checkpoint_every=2)
    train_segmenter([tiny_bench.root], tmp_path / "full", cfg, progress=False)
    with interrupted_at_step(monkeypatch, 5), pytest.raises(KeyboardInterrupt):
        train_segmenter([tiny_bench.root], tmp_path / "cut", cfg, progress=False)
    with pytest.raises(MicroforgeError, match="--resume"):
        train_segmenter([tiny_bench.root], tmp_path / "cut", cfg, progress=False)
    train_segmenter([tiny_bench.root], tmp_path / "cut", cfg, resume=True, progress=False)
    full, cut = (
        (tmp_path / "full" / "model.safetensors").read_bytes(),
        (tmp_path / "cut" / "model.safetensors").read_bytes(),
    )
    assert full == cut and not (tmp_path / "cut" / "checkpoints").exists()
    with pytest.raises(MicroforgeError, match="already holds a trained segmenter"):
        train_segmenter([tiny_bench.root], tmp_path / "cut", cfg, resume=True, progress=False)


def test_unet_learns_the_real_ti_set_and_matches_labels(ti_ab, tmp_path):
    """Trained on 6 real images, the U-Net's beta fraction on the 2 held-out images lies within
    4 points of the fraction recorded in labels.csv."""
    from microforge.data.importer import import_dataset

    data = import_dataset(ti_options(ti_ab, tmp_path / "ti", scale=0.5), progress=False)
    cfg = replace(SegmenterTrainConfig(), steps=200, modality="SEM")
    torch.set_num_threads(2)
    model = train_segmenter([data.root], tmp_path / "unet", cfg, progress=False)
    scores = evaluate_segmentation(
        lambda g: predict_phase_map(model, g), data, "test", cfg.split_fractions, cfg.split_seed
    )
    recorded = data.table.groupby("specimen")["beta_vol_pct"].first().astype(float)
    assert len(scores["specimens"]) == 2
    for specimen, s in scores["specimens"].items():
        assert s["fraction_pred_pct"][1] == pytest.approx(recorded[specimen], abs=4.0), specimen
        assert s["iou"][0] > 0.9
