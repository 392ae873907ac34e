"""A PatchGAN discriminator and the hinge losses, for the micrograph decoder's adversarial term.

Latent diffusion (Rombach et al. 2022, sec. 3.1) trains its autoencoder with "a perceptual loss
and a patch-based adversarial objective", so that decoded images keep local texture that a pixel
loss averages away. diffusers ships no discriminator, so this one is written by hand after
Isola et al.'s PatchGAN (pix2pix, the ``NLayerDiscriminator`` latent diffusion uses), narrowed for a
CPU: the convolutions behind every output logit see one overlapping 34 x 34 px patch of the input
(GroupNorm's statistics are the whole image's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchDiscriminator(nn.Module):
    """Image ``(B, C, H, W)`` in [-1, 1] -> realness logits ``(B, 1, H/4 - 2, W/4 - 2)``.

    Two stride-2 4 x 4 convolutions, then two stride-1 ones (the pix2pix layout with
    ``n_layers = 2``), GroupNorm in place of BatchNorm so that the batch of 8-16 tiles a CPU run
    uses does not set the statistics, and LeakyReLU(0.2).
    """

    def __init__(self, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        w = width  # 32: 0.17 M parameters; pix2pix uses 64 on 256 px colour images
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, w, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1),
            nn.GroupNorm(8, 2 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, 1, 1),
            nn.GroupNorm(8, 4 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 1, 4, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """mean(relu(1 - D(real))) + mean(relu(1 + D(fake))): 0 once every real patch scores >= 1 and
    every fake one <= -1; 2 for a discriminator that outputs 0 everywhere."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-mean(D(fake)): what the decoder minimises to make its patches look real."""
    return -fake_logits.mean()
