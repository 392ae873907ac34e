"""Networks and configs of the baselines: CcGAN and CCDM, extended to K continuous properties
(TiM3 appendix A), and the unconditional DDPM of Lee & Yun. The conditional two take the
normalised property vector through a small label-embedding MLP and train with the hard vicinity
of :mod:`.vicinity`.

* **CCDM** (Ding et al. 2024): a pixel-space conditional DDPM. The UNet is diffusers'
  ``UNet2DModel`` with ``class_embed_type="identity"``: the label embedding is added to the time
  embedding. Condition dropout gives classifier-free guidance at sampling.
* **CcGAN** (Ding et al. 2021): an SNGAN-style generator ``G(z, y)`` and a projection
  discriminator ``D(x, y) = w^T h(x) + <e(y), h(x)>`` with spectral normalisation, trained with
  the hinge loss on hard-vicinal batches.
* **ACWGAN-GP** (Howland et al.): a generator fed noise plus learned embeddings of a categorical
  condition (a manifest column, e.g. morphology) and of the low/mid/high bin (thirds of the range) of one
  scalar property; a critic with a Wasserstein score and two auxiliary classifier heads;
  gradient penalty x 10, classification x 5, AdamW.
* **DDPM** (Lee & Yun; Nichol & Dhariwal's improved DDPM): unconditional, a linear schedule with
  T = 4000 (betas scaled by 1000 / T, as improved DDPM does), the UNet predicting the noise and
  the variance interpolation ``v`` (learned range), trained with ``L_simple + 0.001 L_vlb``, where
  ``L_vlb`` is the sum over all T steps (estimated as ``T L_t`` at one uniform ``t``); sampled
  with DDIM at a chosen number of steps.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers import UNet2DModel
from torch import nn
from torch.nn.utils import spectral_norm

from ..config import nested_config_from_dict, plain_data
from ..errors import MicroforgeError


@dataclass
class BaselineTrain:
    steps: int = 3000  # optimiser steps (the generator's, for CcGAN)
    batch_size: int = 32
    lr: float = 2e-4
    checkpoint_every: int = 250
    seed: int = 0
    # kappa = m x the largest gap between sorted unique label values, per dimension (m = 2: TiM3 Table 3's kappa)
    vicinity_m: float = 2.0
    max_per_vector: int = 64  # CcGAN/CCDM: training images kept per unique property vector (TiM3 appendix A)
    adam_betas: tuple[float, float] = (
        0.9,
        0.999,
    )  # CCDM and DDPM's Adam (TiM3 Table 3's CCDM: 0.9, 0.99); CcGAN uses SNGAN's 0.5, 0.999
    ema_decay: float = (
        0.0  # CCDM and DDPM: EMA of the UNet's weights, saved in their place (0: none; Lee & Yun: 0.9999)
    )


@dataclass
class BaselineConfig:
    """What every baseline's config holds; each kind has its own subclass with its own settings
    and defaults (:class:`CCDMConfig`, :class:`DDPMConfig`, :class:`CcGANConfig`,
    :class:`ACWGANGPConfig`), and ``kind`` names it."""

    kind: str = "ccdm"  # "ccdm", "ccgan", "ddpm" or "acwgan-gp": the subclass's own
    resolution: int = 64  # px; tiles are area-resized to it
    modality: str = "SEM"
    split_fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)  # TiM3's: the same test specimens
    channels: tuple[int, ...] = (32, 64, 64)  # UNet blocks (CCDM, DDPM); the GANs: the first entry is the base width
    train: BaselineTrain = field(default_factory=BaselineTrain)

    # the surface the generate/evaluate code reads from TiM3 configs
    two_stage = False
    brightness = False
    sampler = None  # the GANs draw in one forward pass: no sampler, steps or guidance
    sampling_steps = None
    guidance_scale = None

    def __post_init__(self) -> None:
        own = BASELINE_CONFIGS.get(self.kind)
        if own is None:
            raise MicroforgeError(f"kind must be one of {', '.join(BASELINE_KINDS)}, got {self.kind!r}")
        if own is not type(self):
            raise MicroforgeError(f"kind {self.kind!r} is configured by {own.__name__}, not {type(self).__name__}")
        if self.resolution < 16 or self.resolution & (self.resolution - 1):
            raise MicroforgeError(f"resolution must be a power of two of at least 16, got {self.resolution}")

    @property
    def conditional(self) -> bool:
        return self.kind != "ddpm"

    def to_dict(self) -> dict[str, Any]:
        return plain_data(dataclasses.asdict(self))


@dataclass
class DiffusionBaselineConfig(BaselineConfig):
    """The pixel-space UNet and schedule that CCDM and DDPM share."""

    layers_per_block: int = 1  # residual blocks per UNet level (Lee & Yun: 3)
    dropout: float = 0.0  # UNet dropout (Lee & Yun: 0.1)
    attention_resolution: int = 0  # feature-map size (px) of the UNet's attention level; 0: the coarsest
    attention_heads: int = 0  # heads of that attention; 0: diffusers' 8 channels per head (Lee & Yun: 1)
    num_train_timesteps: int = 1000  # T
    sampling_steps: int = 50  # DDIM steps
    sampler = "ddim"

    def __post_init__(self) -> None:
        super().__post_init__()
        sizes = [self.resolution >> i for i in range(len(self.channels))]
        if self.attention_resolution and self.attention_resolution not in sizes:
            raise MicroforgeError(
                f"attention_resolution must be one of the UNet's feature-map sizes {sizes}, got "
                f"{self.attention_resolution}"
            )

    @property
    def attention_level(self) -> int:
        """Index of the UNet level that holds the attention blocks."""
        if not self.attention_resolution:
            return len(self.channels) - 1
        return [self.resolution >> i for i in range(len(self.channels))].index(self.attention_resolution)


@dataclass
class CCDMConfig(DiffusionBaselineConfig):
    """CCDM (Ding et al. 2024): the label embedding is the UNet's time-embedding width."""

    kind: str = "ccdm"
    guidance_scale: float = 1.5  # classifier-free guidance at sampling (1: none)
    cond_dropout: float = 0.1  # share of training samples with the null label


@dataclass
class DDPMConfig(DiffusionBaselineConfig):
    """Lee & Yun's unconditional DDPM (improved DDPM's hybrid loss)."""

    kind: str = "ddpm"
    num_train_timesteps: int = 4000  # Lee & Yun: T = 4000
    vlb_weight: float = 0.001  # lambda in L_simple + lambda L_vlb, L_vlb = sum over the T steps (Nichol & Dhariwal)
    guidance_scale = 1.0  # unconditional: no guidance


@dataclass
class CcGANConfig(BaselineConfig):
    """CcGAN (Ding et al. 2021), SNGAN-style, with K continuous labels."""

    kind: str = "ccgan"
    embed_dim: int = 128  # label-embedding width
    z_dim: int = 128  # generator noise


@dataclass
class ACWGANGPConfig(BaselineConfig):
    """Howland et al.'s ACWGAN-GP: a categorical condition and the low/mid/high bin of one property."""

    kind: str = "acwgan-gp"
    embed_dim: int = 20  # Howland et al.: 20-d embeddings of the category and of the bin
    z_dim: int = 100  # Howland et al.: 100-d noise
    category: str = "morphology"  # the categorical condition (a manifest column)
    scalar: str = "YS"  # the property binned into the low/mid/high thirds of its range
    critic_steps: int = 5  # critic updates per generator update
    gp_weight: float = 10.0  # gradient penalty
    cls_weight: float = 5.0  # auxiliary classification


BASELINE_CONFIGS: dict[str, type[BaselineConfig]] = {
    "ccgan": CcGANConfig,
    "ccdm": CCDMConfig,
    "ddpm": DDPMConfig,
    "acwgan-gp": ACWGANGPConfig,
}
BASELINE_KINDS = tuple(BASELINE_CONFIGS)  # "ccgan", "ccdm", "ddpm", "acwgan-gp"


def baseline_config_from_dict(data: dict[str, Any], where: str = "config", legacy: bool = False) -> BaselineConfig:
    """The config of ``data["kind"]`` (``ccdm`` when none is given) from plain data; keys left out
    take that kind's defaults, and a key the kind does not have is a named error. ``legacy``
    (model folders written before each kind had its own config) drops the settings of other
    kinds that those folders' one shared config carried."""
    kind = data.get("kind", "ccdm")
    cls = BASELINE_CONFIGS.get(kind)
    if cls is None:
        raise MicroforgeError(f"{where}: kind must be one of {', '.join(BASELINE_KINDS)}, got {kind!r}")
    own = {f.name for f in dataclasses.fields(cls)}
    if legacy:
        others = {f.name for c in BASELINE_CONFIGS.values() for f in dataclasses.fields(c)}
        data = {k: v for k, v in data.items() if k in own or k not in others}
    stray = sorted(set(data) - own)
    if stray:
        raise MicroforgeError(
            f"{where}: {', '.join(stray)} {'is' if len(stray) == 1 else 'are'} not a setting of {kind}; "
            f"its settings: {', '.join(sorted(own))}"
        )
    return nested_config_from_dict(cls, {"kind": kind, **data}, where)


def baseline_defaults(kind: str) -> BaselineConfig:
    """The default config of one baseline ``kind`` (what ``microforge train <kind>`` uses without ``--config``)."""
    return baseline_config_from_dict({"kind": kind}, f"{kind} defaults")


class LabelEmbedding(nn.Module):
    """Normalised properties ``(B, K)`` -> ``(B, dim)``; ``null`` is the learned no-condition
    embedding used for classifier-free guidance."""

    def __init__(self, n_labels: int, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_labels, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.null_embedding = nn.Parameter(torch.zeros(dim))

    def forward(self, y: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        e = self.net(y)
        if drop is not None:
            e = torch.where(drop[:, None], self.null_embedding.expand_as(e), e)
        return e

    def null(self, batch: int) -> torch.Tensor:
        return self.null_embedding.expand(batch, -1)


def build_ccdm_unet(cfg: BaselineConfig) -> UNet2DModel:
    """Pixel-space UNet with attention at ``cfg.attention_level``. CCDM: its time embedding receives
    the label embedding (width 4 x channels[0]). DDPM: unconditional, with two output channels
    (noise, variance ``v``)."""
    n, at = len(cfg.channels), cfg.attention_level
    down = tuple("AttnDownBlock2D" if i == at else "DownBlock2D" for i in range(n))
    up = tuple("AttnUpBlock2D" if i == n - 1 - at else "UpBlock2D" for i in range(n))
    head_dim = cfg.channels[at] // cfg.attention_heads if cfg.attention_heads else 8
    return UNet2DModel(
        sample_size=cfg.resolution,
        in_channels=1,
        out_channels=2 if cfg.kind == "ddpm" else 1,
        block_out_channels=tuple(cfg.channels),
        down_block_types=down,
        up_block_types=up,
        layers_per_block=cfg.layers_per_block,
        dropout=cfg.dropout,
        attention_head_dim=head_dim,
        norm_num_groups=min(8, cfg.channels[0]),
        class_embed_type=None if cfg.kind == "ddpm" else "identity",
    )


def ccdm_embed_dim(cfg: BaselineConfig) -> int:
    return cfg.channels[0] * 4  # UNet2DModel's time-embedding width


class CcGANGenerator(nn.Module):
    """``G(z, y)``: noise ``(B, z_dim)`` and labels ``(B, K)`` -> images ``(B, 1, R, R)`` in [-1, 1]."""

    def __init__(self, cfg: BaselineConfig, n_labels: int) -> None:
        super().__init__()
        base, ups = cfg.channels[0], int(math.log2(cfg.resolution // 4))
        widths = [base * 2 ** min(ups - i, 3) for i in range(ups + 1)]  # e.g. 256, 256, 128, 64, 32
        self.embed = LabelEmbedding(n_labels, cfg.embed_dim)
        self.fc = nn.Linear(cfg.z_dim + cfg.embed_dim, widths[0] * 16)
        blocks = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            blocks += [nn.BatchNorm2d(cin), nn.ReLU(), nn.Upsample(scale_factor=2), nn.Conv2d(cin, cout, 3, padding=1)]
        self.blocks = nn.Sequential(
            *blocks, nn.BatchNorm2d(widths[-1]), nn.ReLU(), nn.Conv2d(widths[-1], 1, 3, padding=1), nn.Tanh()
        )
        self.width0 = widths[0]

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, self.embed(y)], 1)).view(len(z), self.width0, 4, 4)
        return self.blocks(h)


class CcGANDiscriminator(nn.Module):
    """Projection discriminator with spectral normalisation: ``(B, 1, R, R), (B, K) -> (B,)``."""

    def __init__(self, cfg: BaselineConfig, n_labels: int) -> None:
        super().__init__()
        base, downs = cfg.channels[0], int(math.log2(cfg.resolution // 4))
        layers, cin = [], 1
        for i in range(downs):
            cout = base * 2 ** min(i, 3)
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.1)]
            cin = cout
        self.features = nn.Sequential(*layers, spectral_norm(nn.Conv2d(cin, cin, 3, 1, 1)), nn.LeakyReLU(0.1))
        self.linear = spectral_norm(nn.Linear(cin, 1))
        self.embed = spectral_norm(nn.Linear(n_labels, cin, bias=False))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.features(x).sum(dim=(2, 3))
        return self.linear(h)[:, 0] + (self.embed(y) * h).sum(1)


class ACGANGenerator(nn.Module):
    """``G(z, c, b)``: noise ``(B, z_dim)``, category ``(B,)`` and scalar bin ``(B,)`` -> ``(B, 1, R, R)``."""

    def __init__(self, cfg: BaselineConfig, n_categories: int, n_bins: int = 3) -> None:
        super().__init__()
        self.category = nn.Embedding(n_categories, cfg.embed_dim)
        self.bin = nn.Embedding(n_bins, cfg.embed_dim)
        self.body = CcGANGenerator(dataclasses.replace(cfg, embed_dim=2 * cfg.embed_dim), 1)
        self.body.embed = nn.Identity()  # the two embeddings above replace the label MLP

    def forward(self, z: torch.Tensor, c: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.body(z, torch.cat([self.category(c), self.bin(b)], 1))


class ACWGANCritic(nn.Module):
    """Wasserstein score ``(B,)`` and auxiliary logits for the category and the bin. No batch norm
    (the gradient penalty needs per-sample gradients)."""

    def __init__(self, cfg: BaselineConfig, n_categories: int, n_bins: int = 3) -> None:
        super().__init__()
        base, downs = cfg.channels[0], int(math.log2(cfg.resolution // 4))
        layers, cin = [], 1
        for i in range(downs):
            cout = base * 2 ** min(i, 3)
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2)]
            cin = cout
        self.features = nn.Sequential(*layers, nn.Flatten())
        width = cin * 16
        self.score = nn.Linear(width, 1)
        self.category = nn.Linear(width, n_categories)
        self.bin = nn.Linear(width, n_bins)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.score(h)[:, 0], self.category(h), self.bin(h)
