"""ResNet for 32x32 inputs (He et al. 2015), in the "kuangliu pytorch-cifar" layout.

CIFAR stem: one 3x3 conv, stride 1, 64 channels, then BN and ReLU, and *no* max-pool, so the
first stage sees the full 32x32 image. Stages have 64/128/256/512 base channels with strides
1/2/2/2 (BasicBlock expansion 1, Bottleneck expansion 4, stride on the 3x3 conv as in
torchvision's "ResNet v1.5"), then global average pooling and a linear head. A shortcut is a
projection (1x1 conv + BN) whenever the block changes the shape, an identity otherwise.

Module names (``layer1``..``layer4``, ``conv1``/``bn1``/.., ``downsample``, ``fc``) follow
torchvision, so everything past the stem has the same state-dict keys and shapes as
``torchvision.models.resnetXX``; only the stem differs (3x3 instead of 7x7 conv, no max-pool).

Initialisation: convolutions ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``,
BatchNorm weight 1 and bias 0, the linear head keeps PyTorch's default ``nn.Linear`` init
(uniform in +-1/sqrt(fan_in)), as torchvision does.
"""

from __future__ import annotations

import torch
from torch import nn

# depth -> (block kind, blocks per stage)
RESNET_CONFIGS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def projection(in_planes: int, out_planes: int, stride: int) -> nn.Module | None:
    """1x1 conv + BN shortcut when the shape changes, ``None`` (identity) otherwise."""
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = projection(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = projection(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        num_blocks: tuple[int, int, int, int],
        num_classes: int = 100,
    ) -> None:
        super().__init__()
        self.in_planes = 64
        self.stem = nn.Sequential(conv3x3(3, 64), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        self.layer1 = self._make_layer(block, 64, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 128, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 256, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 512, num_blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_weights(self)

    def _make_layer(
        self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int
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
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, relu) convs; BN weight 1, bias 0; default init for linears."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def build_resnet(num_classes: int, *, depth: int) -> ResNet:
    """A CIFAR ResNet of the given depth (18, 34, 50, 101 or 152)."""
    if depth not in RESNET_CONFIGS:
        valid = ", ".join(str(d) for d in RESNET_CONFIGS)
        raise ValueError(f"ResNet depth must be one of {valid}, got {depth}")
    kind, num_blocks = RESNET_CONFIGS[depth]
    block = BasicBlock if kind == "basic" else Bottleneck
    return ResNet(block, num_blocks, num_classes)
