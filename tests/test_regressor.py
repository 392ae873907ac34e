"""The property regressor F (TiM3 eq. 12): its augmentation, training, resume, loading."""

import json

import numpy as np
import pytest
import torch

from microforge.errors import MicroforgeError
from microforge.models.property_regressor import PropertyRegressor
from microforge.training.regressor_trainer import gamma_contrast, train_regressor

from .conftest import TINY_REGRESSOR as REG
from .conftest import interrupted_at_step


def test_gamma_contrast_is_eq12():
    x = torch.linspace(0.2, 0.6, 16).view(1, 1, 4, 4).repeat(3, 1, 1, 1)
    y = gamma_contrast(x, torch.Generator().manual_seed(0), 0.0, (1.0, 1.0))  # eta = alpha = 1: min-max only
    assert torch.allclose(y, (x - 0.2) / 0.4, atol=1e-6)
    z = gamma_contrast(x, torch.Generator().manual_seed(0), 0.3, (0.8, 1.2))
    assert z.min() >= 0 and z.max() <= 1 and not torch.allclose(z[0], z[1])


def test_fidelity_regressor_reads_stretched_images_and_trains_saves_loads_resumes(tiny_bench, tmp_path, monkeypatch):
    metrics = train_regressor(tiny_bench.root, tmp_path / "full", REG, progress=False)
    assert set(metrics["test"]["acc"]) == {"0.1", "0.2", "0.3"}
    assert json.loads((tmp_path / "full" / "metrics.json").read_text())["train_tiles"] == metrics["train_tiles"]
    reg = PropertyRegressor.from_pretrained(tmp_path / "full")
    images = np.random.default_rng(0).random((3, 64, 64)).astype(np.float32)
    pred = reg.predict(images)
    assert pred.shape == (3, 7)
    assert np.array_equal(PropertyRegressor.from_pretrained(tmp_path / "full").predict(images), pred)
    # eq. 12 at inference: the judge reads each image min-max stretched, as it was trained
    assert np.allclose(reg.predict(0.3 + 0.5 * images), pred, rtol=1e-4, atol=1e-3)

    with interrupted_at_step(monkeypatch, 4), pytest.raises(KeyboardInterrupt):  # after the step-3 checkpoint
        train_regressor(tiny_bench.root, tmp_path / "cut", REG, progress=False)
    with pytest.raises(MicroforgeError, match="--resume"):
        train_regressor(tiny_bench.root, tmp_path / "cut", REG, progress=False)
    train_regressor(tiny_bench.root, tmp_path / "cut", REG, resume=True, progress=False)
    a = (tmp_path / "full" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "cut" / "model.safetensors").read_bytes()


def test_regressor_load_errors_name_the_file(tmp_path, tiny_bench):
    train_regressor(tiny_bench.root, tmp_path / "r", REG, progress=False)
    weights = tmp_path / "r" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(MicroforgeError, match="model.safetensors"):
        PropertyRegressor.from_pretrained(tmp_path / "r")
