"""The CUDA paths: sampling and training on a GPU give what the CPU gives. Skipped without a GPU
(CI has none); benchmarks/gpu_run.sh runs this file first on a lent GPU."""

import json

import numpy as np
import pytest
import torch

from microforge.models.tim3 import load_tim3_config
from microforge.pipelines.tim3 import TiM3Pipeline
from microforge.training.tim3_trainer import train_tim3

from .conftest import MICRO

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

TARGETS = np.array([[1000, 1080, 12, 37, 30, 1450, 0.2], [900, 990, 18, 33, 40, 1400, 0.25]])


def test_cuda_sampling_matches_cpu(micro_model):
    """The noise is drawn on the CPU, so the same seed gives the same samples on either device,
    up to floating-point differences between the kernels."""
    cpu = TiM3Pipeline.from_pretrained(micro_model)(TARGETS, steps=5, seed=3)
    gpu = TiM3Pipeline.from_pretrained(micro_model).to("cuda")(TARGETS, steps=5, seed=3)
    assert gpu.images.shape == cpu.images.shape
    assert np.abs(gpu.images - cpu.images).max() < 0.05
    assert (gpu.maps == cpu.maps).mean() > 0.95


def test_cuda_training_runs_on_the_gpu(tiny_bench, tmp_path):
    """The trainer's accelerator picks the GPU: the phases finish and the model samples."""
    out = train_tim3(tiny_bench.root, tmp_path / "m", load_tim3_config(MICRO), progress=False)
    record = json.loads((out / "config.json").read_text())
    assert set(record["training"]) == {"vae_image", "vae_map", "stage1", "stage2"}
    pipe = TiM3Pipeline.from_pretrained(out).to("cuda")
    assert next(pipe.modules["unet_stage2"].parameters()).device.type == "cuda"
    g = pipe(TARGETS, steps=4, seed=0)
    assert g.images.shape == (2, 32, 32) and np.isfinite(g.images).all()
