"""ResNet18-VAE microstructure fingerprints (White et al.): a ResNet-18 encoder, a 512-unit tanh
layer, then the mean and log-variance of a 256-d Gaussian; a mirrored decoder back to the image.

The encoder flattens its last convolution output (White et al.; ``encoder_pool: mean`` instead
averages it over space, as a classifier does). A LayerNorm precedes each tanh layer
(``hidden_norm``): the encoder's 512-unit tanh layer takes 8 192 inputs at 64 px, and without the
norm Adam drives every unit into saturation within a few hundred steps, so that no gradient
reaches the encoder and the decoder learns the mean grey. The fingerprint of an image is its posterior mean
``mu``. Training minimises ``alpha * BCE(x_hat, x) + (1 - alpha) * L_f + beta * KL``: White et
al.'s eq. 1 with the VAE's KL term, which the paper names but leaves out of eq. 1, and BCE averaged
over pixels instead of summed. ``L_f`` is the paper's spectral loss, the MSE between the real and
imaginary parts of the two images' 2-D FFTs. With the orthonormal FFT used here, Parseval's
theorem makes it equal to the pixel MSE. ``spectral: magnitude`` compares FFT magnitudes only,
which ignores where features sit (shift-invariant) and rewards the right lath spacings even where
the pixels do not align. ``spectral: local`` compares the FFT magnitudes of Hann-tapered windows of
``spectral_window`` px that overlap by half (as in Welch's method): the spectrum of each lath
colony, not of the whole tile, whose several colonies of different orientations sum to a spectrum
much like a basketweave's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MicroforgeError
from .resnet import ResNet18
from .weights import load_weights, read_config, save_weights

MODEL_TYPE = "microforge-fingerprint-vae"  # config.json's model_type of a fingerprint model folder
# what folders saved before these options existed hold (they load as they were trained)
BEFORE_FIDELITY = {"encoder_pool": "mean", "spectral": "magnitude", "hidden_norm": False, "beta": 1e-3}


@dataclass(frozen=True)
class FingerprintConfig:
    # px; tiles are area-resized to it (64 px erases the benchmark's 1-4 px laths: morphology accuracy 0.76, not 0.83)
    resolution: int = 128
    width: int = 8  # ResNet-18 first-stage channels (64: the full network; 8 at 128 px costs what 16 costs at 64 px)
    hidden: int = 512  # the tanh layer
    latent: int = 256  # fingerprint dimension
    alpha: float = 0.7  # weight of the BCE term; 1 - alpha weights the spectral term
    # weight of the KL term (summed over the latent) against the pixel-averaged BCE: 1e-3 collapsed the posterior to the
    # mean grey
    beta: float = 1e-6
    encoder_pool: str = "flatten"  # White et al.: flatten the last convolution output; "mean": average it over space
    # White et al.'s L_f on real and imaginary parts; "magnitude": FFT magnitudes only; "local": magnitudes per window
    spectral: str = "complex"
    spectral_window: int = 32  # px (at the model's resolution) of the "local" windows: about one lath colony at 128 px
    hidden_norm: bool = (
        True  # LayerNorm before each tanh layer: without it Adam drives the 8 192-input tanh into saturation
    )

    def __post_init__(self) -> None:
        # MicroforgeError: a config file's bad value is the user's to fix (one "Error:" line, no traceback)
        if self.resolution % 8:
            raise MicroforgeError(f"resolution must be a multiple of 8, got {self.resolution}")
        if self.encoder_pool not in ("flatten", "mean"):
            raise MicroforgeError(f"encoder_pool must be 'flatten' or 'mean', got {self.encoder_pool!r}")
        if self.spectral not in ("complex", "magnitude", "local"):
            raise MicroforgeError(f"spectral must be 'complex', 'magnitude' or 'local', got {self.spectral!r}")
        if self.spectral == "local" and (self.spectral_window < 4 or self.resolution % self.spectral_window):
            raise MicroforgeError(
                f"spectral_window must be at least 4 and divide the resolution {self.resolution}, "
                f"got {self.spectral_window}"
            )


class FingerprintVAE(nn.Module):
    """``(B, 1, R, R)`` in [0, 1] -> reconstruction ``(B, 1, R, R)``, ``mu`` and ``logvar`` ``(B, latent)``."""

    def __init__(self, cfg: FingerprintConfig = FingerprintConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = ResNet18(1, 1, cfg.width)
        feat = self.encoder.num_features  # 8 * width channels
        self.side = cfg.resolution // 8  # the encoder's last stage is 1/8 of the input
        self.to_hidden = nn.Linear(feat * self.side**2 if cfg.encoder_pool == "flatten" else feat, cfg.hidden)
        self.hidden_norm = nn.LayerNorm(cfg.hidden) if cfg.hidden_norm else nn.Identity()
        self.mu = nn.Linear(cfg.hidden, cfg.latent)
        self.logvar = nn.Linear(cfg.hidden, cfg.latent)
        self.from_latent = nn.Sequential(
            *[
                nn.Linear(cfg.latent, cfg.hidden),
                *([nn.LayerNorm(cfg.hidden)] if cfg.hidden_norm else []),
                nn.Tanh(),
                nn.Linear(cfg.hidden, feat * self.side**2),
            ]
        )
        ups, c = [], feat
        for _ in range(3):  # mirror of the three strided stages
            ups += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.BatchNorm2d(c // 2), nn.ReLU()]
            c //= 2
        self.decoder = nn.Sequential(*ups, nn.Conv2d(c, 1, 3, padding=1))
        self.feat = feat

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.encoder.feature_maps(x)  # (B, 8 * width, R / 8, R / 8)
        h = torch.tanh(
            self.hidden_norm(
                self.to_hidden(maps.flatten(1) if self.cfg.encoder_pool == "flatten" else maps.mean(dim=(2, 3)))
            )
        )
        return self.mu(h), self.logvar(h).clamp(-20, 10)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.from_latent(z).view(len(z), self.feat, self.side, self.side))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Fingerprints ``(B, latent)`` -> images ``(B, 1, R, R)`` in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z))

    def forward(
        self, x: torch.Tensor, gen: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=gen).to(mu.device)
        return self.decode_logits(mu + torch.exp(0.5 * logvar) * eps), mu, logvar

    def save_pretrained(self, folder: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write ``folder/config.json`` (the config, ``model_type`` and ``extra``: training record)
        and ``folder/model.safetensors``."""
        save_weights(self, folder, {"model_type": MODEL_TYPE, **dataclasses.asdict(self.cfg), **(extra or {})})

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> FingerprintVAE:
        """Load a folder of :meth:`save_pretrained` (safetensors only; errors name the file).
        Folders saved before the fidelity options existed load as they were trained."""
        folder = Path(folder)
        if not folder.is_dir():
            raise MicroforgeError(f"{folder}: fingerprint model folder not found")
        raw = read_config(folder, MODEL_TYPE, "a fingerprint model")
        names = {f.name for f in dataclasses.fields(FingerprintConfig)}
        kept = {**BEFORE_FIDELITY, **{k: v for k, v in raw.items() if k in names}}
        return load_weights(cls(FingerprintConfig(**kept)), folder)


def _tapered_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """``(B, 1, H, W)`` -> ``(B, n, window, window)``: windows at a stride of ``window / 2`` (``n =
    (2 H / window - 1) (2 W / window - 1)``), each multiplied by a 2-D Hann taper so that its edges
    do not leak into its spectrum. The half overlap (Welch's method) weighs every pixel but the
    tile's border, where non-overlapping windows leave the taper's zeros unweighted. The taper is
    scaled to a mean square of 1, so that the loss keeps the scale of the whole-tile ones
    (unscaled, it is about 7 times smaller)."""
    stride = max(1, window // 2)
    w = x.unfold(2, window, stride).unfold(3, window, stride).flatten(1, 3)
    hann = torch.hann_window(window, periodic=False, dtype=x.dtype, device=x.device)
    taper = hann[:, None] * hann[None, :]
    return w * (taper / taper.pow(2).mean().sqrt())


def spectral_loss(a: torch.Tensor, b: torch.Tensor, kind: str = "complex", window: int = 32) -> torch.Tensor:
    """White et al.'s ``L_f`` between two image batches ``(B, 1, H, W)``: the mean over frequencies
    of the squared differences of the real and imaginary parts of their orthonormal 2-D FFTs
    (``kind="complex"``; equal to the pixel MSE by Parseval), or of the FFT magnitudes only
    (``kind="magnitude"``: shift-invariant), or of the FFT magnitudes of Hann-tapered ``window`` x
    ``window`` px windows at half-window strides (``kind="local"``: each colony's lath spacing and
    orientation, wherever in its window the laths sit)."""
    if kind == "local":
        a, b = _tapered_windows(a, window), _tapered_windows(b, window)
    fa, fb = torch.fft.fft2(a, norm="ortho"), torch.fft.fft2(b, norm="ortho")
    if kind in ("magnitude", "local"):
        return F.mse_loss(fa.abs(), fb.abs())
    return ((fa - fb).abs() ** 2).mean()


def fingerprint_loss(
    model: FingerprintVAE, x: torch.Tensor, gen: torch.Generator, with_logits: bool = False
) -> tuple[torch.Tensor, dict[str, Any]]:
    """White et al.'s loss on a batch ``x`` ``(B, 1, R, R)`` in [0, 1]; returns the loss and its
    parts (floats; with ``with_logits`` also ``logits``, the reconstruction's ``(B, 1, R, R)``
    logits, still attached to the graph)."""
    logits, mu, logvar = (t.float() for t in model(x, gen))  # fp32 losses under a bf16 autocast too
    bce = F.binary_cross_entropy_with_logits(logits, x)
    spec = spectral_loss(torch.sigmoid(logits), x, model.cfg.spectral, model.cfg.spectral_window)
    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
    cfg = model.cfg
    loss = cfg.alpha * bce + (1 - cfg.alpha) * spec + cfg.beta * kl
    parts: dict[str, Any] = {"loss": loss.item(), "bce": bce.item(), "spectral": spec.item(), "kl": kl.item()}
    return loss, {**parts, "logits": logits} if with_logits else parts
