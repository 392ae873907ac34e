"""A stochastic decoder of fine detail: a small conditional diffusion model that, given a blurred
greyscale image (a fingerprint VAE's reconstruction, or any low-pass of a tile), draws the detail
the blur lost (secondary-alpha laths, shot noise) where the blurred layout implies it, without
having to know where each lath sat.

The UNet works on the space-to-depth (pixel-unshuffle) view of the image: ``R`` px becomes
``(f^2, R / f, R / f)``, so at 128 px and f = 4 it runs on 32 x 32 positions, about what 2 CPU
cores can train in minutes, while every output pixel is still its own value. It diffuses the
residual ``(x - c) / residual_std`` (the tile minus its blurred version, scaled to unit variance)
with the blurred version ``c`` concatenated as the condition: v-prediction, min-SNR-gamma loss
weights and the cosine schedule (diffusers' ``DDPMScheduler``), sampled by DDIM with trailing
timesteps. Those are the settings that made TiM3's pixel-space map stage converge on a CPU budget
(docs/tim3.md, ablation row d).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from diffusers.training_utils import compute_snr
from torch import nn

from ..errors import MicroforgeError
from .weights import load_weights, read_config, save_weights

MODEL_TYPE = "microforge-detail-refiner"  # config.json's model_type of a refiner folder


@dataclass(frozen=True)
class RefinerConfig:
    resolution: int = 128  # px of the images it refines (the fingerprint VAE's)
    factor: int = 4  # space-to-depth factor: 128 px -> 16 x 32 x 32, so the UNet runs at 32 x 32
    # UNet level widths (32 x 32, 16 x 16, 8 x 8 at 128 px): 0.42 s a training step at batch 16 on 2 cores
    # (2.5 M parameters), where (64, 128, 128) takes 0.69 s
    channels: tuple[int, ...] = (32, 64, 128)
    layers_per_block: int = 1  # ResNet blocks per level (diffusers' default is 2; 1 halves the cost)
    train_timesteps: int = 1000  # DDPM's T
    snr_gamma: float = 5.0  # min-SNR-gamma loss weights (Hang et al.'s recommended 5)
    sample_steps: int = 25  # DDIM steps when refining
    # per-pixel guide channels read beside the blurred image (0: none, the fingerprint VAE's refiner;
    # 3: a TiM3 phase map's class shares, which say where laths belong and where globules do)
    guide_channels: int = 0

    def __post_init__(self) -> None:
        if self.resolution % (self.factor * 2 ** (len(self.channels) - 1)):
            raise MicroforgeError(
                f"refiner resolution {self.resolution} must be divisible by factor x 2^(levels - 1) = "
                f"{self.factor * 2 ** (len(self.channels) - 1)}"
            )
        if self.sample_steps < 1 or self.snr_gamma <= 0:
            raise MicroforgeError("refiner sample_steps must be at least 1 and snr_gamma positive")
        if self.guide_channels < 0:
            raise MicroforgeError(f"refiner guide_channels must be at least 0, got {self.guide_channels}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _schedule_kwargs(cfg: RefinerConfig) -> dict[str, Any]:
    return {
        "num_train_timesteps": cfg.train_timesteps,
        "beta_schedule": "squaredcos_cap_v2",
        "prediction_type": "v_prediction",
        "clip_sample": False,
    }


class DetailRefiner(nn.Module):
    """The conditional UNet and its schedules. ``residual_std`` (a buffer) is the standard deviation
    of ``x - c`` over the training images, set by :func:`fit_residual_std` before training."""

    def __init__(self, cfg: RefinerConfig = RefinerConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        f2 = cfg.factor**2
        n = len(cfg.channels)
        self.unet = UNet2DModel(
            sample_size=cfg.resolution // cfg.factor,
            in_channels=(2 + cfg.guide_channels) * f2,
            out_channels=f2,
            block_out_channels=tuple(cfg.channels),
            layers_per_block=cfg.layers_per_block,
            down_block_types=("DownBlock2D",) * n,
            up_block_types=("UpBlock2D",) * n,
            norm_num_groups=min(32, min(cfg.channels)),
        )
        self.train_scheduler = DDPMScheduler(**_schedule_kwargs(cfg))
        self.register_buffer("residual_std", torch.ones(()))

    def _guide(self, cond: torch.Tensor, guide: torch.Tensor | None) -> torch.Tensor:
        """The condition the UNet reads: ``cond`` and, for a guided refiner, ``guide``, in [-1, 1]."""
        g = self.cfg.guide_channels
        if g == 0 and guide is not None:
            raise MicroforgeError("this detail refiner takes no guide channels; pass guide=None")
        if g and (guide is None or guide.shape[1] != g or guide.shape[-2:] != cond.shape[-2:]):
            got = "none" if guide is None else tuple(guide.shape)
            raise MicroforgeError(
                f"this detail refiner needs a guide of {g} channels at {cond.shape[-1]} px; got {got}"
            )
        return cond if guide is None else torch.cat([cond, guide.to(cond.dtype)], dim=1)

    def _denoise(self, noisy: torch.Tensor, cond: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        f = self.cfg.factor
        inp = torch.cat([F.pixel_unshuffle(noisy, f), F.pixel_unshuffle(cond * 2 - 1, f)], dim=1)
        return F.pixel_shuffle(self.unet(inp, t).sample, f)

    def loss(
        self, x: torch.Tensor, cond: torch.Tensor, gen: torch.Generator, guide: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The min-SNR-weighted v-prediction loss on images ``x`` and their blurred versions ``cond``,
        both ``(N, 1, R, R)`` in [0, 1]; the noise and timesteps come from ``gen``. ``guide``
        ``(N, guide_channels, R, R)`` in [0, 1] for a guided refiner, else None."""
        full = self._guide(cond, guide)
        r = (x - cond) / self.residual_std
        noise = torch.randn(r.shape, generator=gen)
        t = torch.randint(0, self.cfg.train_timesteps, (len(r),), generator=gen)
        noisy = self.train_scheduler.add_noise(r, noise, t)
        target = self.train_scheduler.get_velocity(r, noise, t)
        snr = compute_snr(self.train_scheduler, t)
        weight = snr.clamp(max=self.cfg.snr_gamma) / (snr + 1)  # min-SNR-gamma for v-prediction
        per_image = F.mse_loss(self._denoise(noisy, full, t), target, reduction="none").mean(dim=(1, 2, 3))
        return (weight * per_image).mean()

    @torch.no_grad()
    def refine(
        self,
        cond: torch.Tensor,
        gen: torch.Generator,
        steps: int | None = None,
        guide: torch.Tensor | None = None,
        eta: float = 0.0,
    ) -> torch.Tensor:
        """Draw the detail of blurred images ``cond`` ``(N, 1, R, R)`` in [0, 1]: returns ``cond`` plus
        a sampled residual, clipped to [0, 1], ``(N, 1, R, R)``. ``gen`` seeds the draw; ``guide``
        ``(N, guide_channels, R, R)`` in [0, 1] for a guided refiner, else None; ``eta``: DDIM's
        stochasticity (0: deterministic after the first draw, 1: DDPM-like fresh noise each step)."""
        if not 0.0 <= eta <= 1.0:
            raise MicroforgeError(f"refiner eta must be in [0, 1], got {eta}")
        full = self._guide(cond, guide)
        sched = DDIMScheduler(**_schedule_kwargs(self.cfg), timestep_spacing="trailing")
        sched.set_timesteps(steps or self.cfg.sample_steps)
        r = torch.randn(cond.shape, generator=gen).to(cond.device)  # drawn on the CPU: the same on any device
        for t in sched.timesteps:
            v = self._denoise(r, full, t.expand(len(r)))
            if eta:  # fresh noise drawn on the CPU, as the first draw is
                noise = torch.randn(r.shape, generator=gen).to(r.device)
                r = sched.step(v, t, r, eta=eta, variance_noise=noise).prev_sample
            else:
                r = sched.step(v, t, r).prev_sample
        return (cond + r * self.residual_std).clamp(0, 1)

    def save_pretrained(self, folder: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write ``folder/config.json`` (the config, ``model_type`` and ``extra``) and ``folder/model.safetensors``."""
        save_weights(self, folder, {"model_type": MODEL_TYPE, **self.cfg.to_dict(), **(extra or {})})

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> DetailRefiner:
        """Load a folder of :meth:`save_pretrained` (safetensors only; errors name the file)."""
        raw = read_config(folder, MODEL_TYPE, "a detail refiner")
        names = {f.name for f in dataclasses.fields(RefinerConfig)}
        kept = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in names}
        return load_weights(cls(RefinerConfig(**kept)), folder)


def fit_residual_std(refiner: DetailRefiner, x: torch.Tensor, cond: torch.Tensor) -> float:
    """Set ``refiner.residual_std`` to the standard deviation of ``x - cond`` (``(N, 1, R, R)``) and return it."""
    std = float((x - cond).std())
    refiner.residual_std.fill_(std)
    return std
