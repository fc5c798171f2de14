"""Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016, "Wide Residual Networks").

A 3x3 stem conv with 16 channels, then three groups of n = (d - 4) / 6 pre-activation basic
blocks with 16k, 32k and 64k channels and strides 1/2/2, then BN + ReLU, global average
pooling and a linear head. A block is BN -> ReLU -> conv3x3 -> BN -> ReLU -> dropout ->
conv3x3; when it changes the shape its shortcut is a 1x1 conv (no BN) applied to the
pre-activated input, as in the authors' code. "d" counts the stem, the 6n block convs and
the head, hence d = 6n + 4 (the 1x1 shortcut convs are not counted).

Initialisation as in `engine.models.resnet.init_weights`: Kaiming-normal (fan_out, relu)
convs, BN weight 1 and bias 0, PyTorch's default init for the linear head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.catalog.models import wrn_depth_fault
from engine.models.resnet import conv1x1, conv3x3, init_weights


def wrn_blocks_per_group(depth: int) -> int:
    """n = (depth - 4) / 6, with a clear error for a depth that is not 6n + 4."""
    fault = wrn_depth_fault(depth)
    if fault is not None:
        raise ValueError(fault)
    return (depth - 4) // 6


class WideBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(planes, planes)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = conv1x1(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        return out + shortcut


class WideResNet(nn.Module):
    def __init__(
        self, depth: int = 28, width: int = 10, dropout: float = 0.0, num_classes: int = 100
    ) -> None:
        super().__init__()
        n = wrn_blocks_per_group(depth)
        if width < 1:
            raise ValueError(f"WRN width must be >= 1, got width={width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"WRN dropout must be in [0, 1), got dropout={dropout}")
        self.depth, self.width, self.dropout_p = depth, width, dropout
        channels = [16, 16 * width, 32 * width, 64 * width]
        self.stem = conv3x3(3, channels[0])
        self.in_planes = channels[0]
        self.group1 = self._make_group(channels[1], n, 1, dropout)
        self.group2 = self._make_group(channels[2], n, 2, dropout)
        self.group3 = self._make_group(channels[3], n, 2, dropout)
        self.bn = nn.BatchNorm2d(channels[3])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels[3], num_classes)
        init_weights(self)

    def _make_group(self, planes: int, blocks: int, stride: int, dropout: float) -> nn.Sequential:
        layers: list[nn.Module] = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(WideBlock(self.in_planes, planes, s, dropout))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the linear head, shape [N, 64 * width]."""
        x = self.stem(x)
        x = self.group3(self.group2(self.group1(x)))
        x = F.relu(self.bn(x))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def build_wrn(num_classes: int, *, depth: int, width: int, dropout: float) -> WideResNet:
    return WideResNet(depth=depth, width=width, dropout=dropout, num_classes=num_classes)
