"""Pre-activation ResNet (He et al. 2016, "Identity Mappings in Deep Residual Networks").

Each block computes BN -> ReLU -> conv (twice for PreActBlock, three times for
PreActBottleneck) and adds an *unmodified* shortcut. When the block changes the shape, the
shortcut is a 1x1 projection conv (no BN) applied to the pre-activated input, as in the paper
and in "kuangliu pytorch-cifar".

Same CIFAR stem and stage layout as `engine.models.resnet`: a 3x3 stride-1 conv with 64
channels (followed directly by the first block: no BN/ReLU after the stem conv, no max-pool),
stages of 64/128/256/512 base channels with strides 1/2/2/2, then a final BN + ReLU (the
blocks end in a conv, so the features are normalised once before pooling), global average
pooling and a linear head.

Initialisation as in `engine.models.resnet.init_weights`: Kaiming-normal (fan_out, relu)
convs, BN weight 1 and bias 0, PyTorch's default init for the linear head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.resnet import RESNET_CONFIGS, conv1x1, conv3x3, init_weights


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        out_planes = planes * self.expansion
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != out_planes:
            self.shortcut = conv1x1(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActBottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = conv1x1(in_planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        out_planes = planes * self.expansion
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != out_planes:
            self.shortcut = conv1x1(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    def __init__(
        self,
        block: type[PreActBlock | PreActBottleneck],
        num_blocks: tuple[int, int, int, int],
        num_classes: int = 100,
    ) -> None:
        super().__init__()
        self.in_planes = 64
        self.stem = conv3x3(3, 64)
        self.layer1 = self._make_layer(block, 64, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 128, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 256, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 512, num_blocks[3], stride=2)
        self.bn = nn.BatchNorm2d(512 * block.expansion)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_weights(self)

    def _make_layer(
        self, block: type[PreActBlock | PreActBottleneck], planes: int, blocks: int, stride: int
    ) -> nn.Sequential:
        layers: list[nn.Module] = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the linear head, shape [N, 512 * expansion]."""
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = F.relu(self.bn(x))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def build_preact_resnet(num_classes: int, *, depth: int) -> PreActResNet:
    """A CIFAR pre-activation ResNet of the given depth (18, 34, 50, 101 or 152)."""
    if depth not in RESNET_CONFIGS:
        valid = ", ".join(str(d) for d in RESNET_CONFIGS)
        raise ValueError(f"PreAct-ResNet depth must be one of {valid}, got {depth}")
    kind, num_blocks = RESNET_CONFIGS[depth]
    block = PreActBlock if kind == "basic" else PreActBottleneck
    return PreActResNet(block, num_blocks, num_classes)
