"""Attention U-Net for 3-class metallographic segmentation (Oktay et al. 2018; TiM3 appendix D).

A U-Net whose skip connections pass through additive attention gates: the coarser decoder
features decide which skip features reach the decoder. GroupNorm keeps it independent of batch
size, so a whole micrograph can be segmented at once. Saved as ``config.json`` +
``model.safetensors``; loading never unpickles.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MicroforgeError
from .weights import load_weights, read_config, save_weights

MODEL_TYPE = "attention-unet"


@dataclass(frozen=True)
class AttentionUNetConfig:
    in_channels: int = 1  # greyscale micrographs
    n_classes: int = 3  # primary alpha, beta, secondary alpha
    channels: tuple[int, ...] = (16, 32, 64, 128)  # 0.5 M parameters: trains on a CPU in minutes
    groups: int = 4  # GroupNorm groups


def _block(cin: int, cout: int, groups: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.GroupNorm(groups, cout),
        nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.GroupNorm(groups, cout),
        nn.SiLU(),
    )


class AttentionGate(nn.Module):
    """Additive attention: ``x * sigmoid(psi(relu(W_x x + W_g up(g))))``, one weight per pixel."""

    def __init__(self, skip_channels: int, gate_channels: int, inner: int) -> None:
        super().__init__()
        self.w_x = nn.Conv2d(skip_channels, inner, 1, bias=False)
        self.w_g = nn.Conv2d(gate_channels, inner, 1)
        self.psi = nn.Conv2d(inner, 1, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        g = F.interpolate(self.w_g(g), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.psi(F.relu(self.w_x(x) + g)))


class AttentionUNet(nn.Module):
    """``(B, in_channels, H, W)`` -> logits ``(B, n_classes, H, W)``; H and W divisible by
    ``2 ** (len(channels) - 1)`` (use :func:`predict_phase_map` for any size)."""

    def __init__(self, config: AttentionUNetConfig = AttentionUNetConfig()) -> None:
        super().__init__()
        self.config = config
        ch, g = config.channels, config.groups
        self.encoders = nn.ModuleList(
            [_block(config.in_channels if i == 0 else ch[i - 1], c, g) for i, c in enumerate(ch)]
        )
        self.gates = nn.ModuleList([AttentionGate(ch[i], ch[i + 1], max(ch[i] // 2, 1)) for i in range(len(ch) - 1)])
        self.decoders = nn.ModuleList([_block(ch[i] + ch[i + 1], ch[i], g) for i in range(len(ch) - 1)])
        self.head = nn.Conv2d(ch[0], config.n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, enc in enumerate(self.encoders):
            x = enc(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for i in reversed(range(len(self.decoders))):
            skip = self.gates[i](skips[i], x)
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = self.decoders[i](torch.cat([skip, x], dim=1))
        return self.head(x)

    def save_pretrained(self, folder: str | Path, extra: dict | None = None) -> None:
        """Write ``config.json`` (with ``extra`` metadata) and ``model.safetensors``."""
        save_weights(self, folder, {"model_type": MODEL_TYPE, **asdict(self.config), **(extra or {})})

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "AttentionUNet":
        """Load from a folder written by :meth:`save_pretrained` (safetensors only).

        Raises :class:`MicroforgeError` naming the file when it is missing, truncated or does
        not match the config.
        """
        raw = read_config(folder, MODEL_TYPE, "a segmentation model")
        try:
            config = AttentionUNetConfig(raw["in_channels"], raw["n_classes"], tuple(raw["channels"]), raw["groups"])
        except (KeyError, TypeError) as exc:
            raise MicroforgeError(f"{Path(folder) / 'config.json'}: malformed config ({exc})") from None
        return load_weights(cls(config), folder)


@torch.no_grad()
def predict_phase_map(model: AttentionUNet, grey: "np.ndarray") -> "np.ndarray":  # noqa: F821
    """Segment one greyscale image ``(H, W)`` in [0, 1] of any size; returns ``(H, W)`` uint8.

    The image is reflect-padded to a multiple of the network's stride and cropped back.
    """
    import numpy as np

    grey = np.asarray(grey, dtype=np.float32)
    stride = 2 ** (len(model.config.channels) - 1)
    h, w = grey.shape
    ph, pw = (-h) % stride, (-w) % stride
    x = torch.from_numpy(grey)[None, None]
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
    model.eval()
    logits = model(x)[0, :, :h, :w]
    return logits.argmax(0).numpy().astype(np.uint8)
