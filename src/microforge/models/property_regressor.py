"""The property regressor F: a ResNet-18 that reads the K properties off a micrograph.

It is the judge of TiM3's property accuracy (docs/evaluation.md): trained on real (or
benchmark) micrographs, it predicts the properties of generated ones. A saved regressor is a
folder with ``config.json``, ``model.safetensors``, ``properties.json`` (the property order,
units and normalisation it predicts in) and ``metrics.json`` (its own held-out accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import MicroforgeError
from ..io import resize_batch
from ..properties import PropertySet
from .resnet import ResNet18
from .weights import load_weights, read_config, save_weights

MODEL_TYPE = "microforge-property-regressor"


def min_max_stretch(x: torch.Tensor) -> torch.Tensor:
    """Each image of ``(B, 1, H, W)`` stretched to span [0, 1] (``(x - min) / (max - min)``; a
    uniform image becomes 0): TiM3's eq. 12 with gamma = contrast = 1, the input the regressor is
    trained and read with."""
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-6)


@dataclass
class PropertyRegressor:
    """A trained regressor: the network, the properties it predicts and its input size (px)."""

    net: ResNet18
    properties: PropertySet
    resolution: int

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "PropertyRegressor":
        """Load a folder written by :meth:`save_pretrained` (safetensors only; errors name the file)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise MicroforgeError(f"{folder}: regressor folder not found")
        raw = read_config(folder, MODEL_TYPE, "a property regressor")
        props = PropertySet.load(folder / "properties.json")
        try:
            net = ResNet18(1, len(props), int(raw["width"]))
            resolution = int(raw["resolution"])
        except (KeyError, TypeError, ValueError) as exc:
            raise MicroforgeError(f"{folder / 'config.json'}: malformed config ({exc})") from None
        return cls(load_weights(net, folder), props, resolution)

    def save_pretrained(self, folder: str | Path, extra: dict | None = None) -> None:
        """Write ``config.json``, ``model.safetensors`` and ``properties.json`` into ``folder``."""
        folder = Path(folder)
        config = {
            "model_type": MODEL_TYPE,
            "width": self.net.stem[0].out_channels,
            "resolution": self.resolution,
            **(extra or {}),
        }
        save_weights(self.net, folder, config)
        self.properties.save(folder / "properties.json")

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def _input(self, images: np.ndarray) -> torch.Tensor:
        return min_max_stretch(resize_batch(images, self.resolution)).to(self.device)

    @torch.no_grad()
    def predict(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Raw properties ``(N, K)`` (units of ``properties.json``) of greyscale images
        ``(N, H, W)`` in [0, 1], each min-max stretched first, as in training (eq. 12)."""
        self.net.eval()
        out = [self.net(self._input(images[i : i + batch_size])).cpu() for i in range(0, len(images), batch_size)]
        return (
            self.properties.denormalise(torch.cat(out).double().numpy()) if out else np.zeros((0, len(self.properties)))
        )

    @torch.no_grad()
    def features(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Pooled penultimate features ``(N, 8 * width)``: the domain fingerprint of
        :func:`microforge.evaluate.distribution.frechet_distance`."""
        self.net.eval()
        out = [
            self.net.features(self._input(images[i : i + batch_size])).cpu() for i in range(0, len(images), batch_size)
        ]
        return torch.cat(out).double().numpy() if out else np.zeros((0, self.net.num_features))
