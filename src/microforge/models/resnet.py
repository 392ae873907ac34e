"""ResNet-18 (He et al. 2016) for greyscale micrographs: the property regressor's backbone.

Written here because torchvision, which holds the reference implementation, cannot be
installed beside this project's CPU torch (see pyproject.toml), and timm depends on it.
The layout is torchvision's resnet18 (BasicBlock, [2, 2, 2, 2], widths w, 2w, 4w, 8w), with one
change for small inputs: the stem is a 3 x 3 convolution without max-pooling (as for CIFAR), so a
64 px micrograph still reaches the last stage at 8 x 8 px instead of 2 x 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """Two 3 x 3 convolutions with batch norm and an identity (or 1 x 1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """``(B, in_channels, H, W)`` -> ``(B, n_outputs)``; :meth:`features` gives the pooled
    ``(B, 8 * width)`` features before the linear head.

    Parameters
    ----------
    in_channels : 1 for greyscale micrographs.
    n_outputs : regression targets (the K properties).
    width : channels of the first stage (64 in the paper's ResNet-18; 11.2 M parameters).
    """

    def __init__(self, in_channels: int = 1, n_outputs: int = 7, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        stages, cin = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(cin, n_outputs)
        self.num_features = cin

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output ``(B, 8 * width, H / 8, W / 8)``."""
        return self.stages(self.stem(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features ``(B, 8 * width)``."""
        return torch.flatten(F.adaptive_avg_pool2d(self.feature_maps(x), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
