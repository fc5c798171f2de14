"""The model zoo: every trainable architecture, by name, for 32x32 inputs.

This module must stay importable without torch (the dashboard reads it to fill its menus):
each builder imports its architecture module lazily.

Convention relied on by the config layer: a builder's first positional parameter is
``num_classes`` (injected by the engine); every user-configurable option is keyword-only, has a
default and a plain annotation (``int``, ``float``, ``bool`` or ``str``), and is set from a
config as ``model.<name>``. Parameter counts in the descriptions are for 100 classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.registry import Registry

if TYPE_CHECKING:
    from torch import nn

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


# --- ResNet (CIFAR stem: 3x3 conv, stride 1, no max-pool) ---------------------------------


@MODELS.register("resnet18", "ResNet-18, CIFAR stem (11.2M params)")
def resnet18(num_classes: int = 100) -> nn.Module:
    from engine.models.resnet import build_resnet

    return build_resnet(18, num_classes)


@MODELS.register("resnet34", "ResNet-34, CIFAR stem (21.3M params)")
def resnet34(num_classes: int = 100) -> nn.Module:
    from engine.models.resnet import build_resnet

    return build_resnet(34, num_classes)


@MODELS.register("resnet50", "ResNet-50 (bottleneck), CIFAR stem (23.7M params)")
def resnet50(num_classes: int = 100) -> nn.Module:
    from engine.models.resnet import build_resnet

    return build_resnet(50, num_classes)


@MODELS.register("resnet101", "ResNet-101 (bottleneck), CIFAR stem (42.7M params)")
def resnet101(num_classes: int = 100) -> nn.Module:
    from engine.models.resnet import build_resnet

    return build_resnet(101, num_classes)


@MODELS.register("resnet152", "ResNet-152 (bottleneck), CIFAR stem (58.3M params)")
def resnet152(num_classes: int = 100) -> nn.Module:
    from engine.models.resnet import build_resnet

    return build_resnet(152, num_classes)


# --- Pre-activation ResNet (He et al. 2016) ---------------------------------------------


@MODELS.register("preact_resnet18", "PreAct ResNet-18, CIFAR stem (11.2M params)")
def preact_resnet18(num_classes: int = 100) -> nn.Module:
    from engine.models.preact_resnet import build_preact_resnet

    return build_preact_resnet(18, num_classes)


@MODELS.register("preact_resnet34", "PreAct ResNet-34, CIFAR stem (21.3M params)")
def preact_resnet34(num_classes: int = 100) -> nn.Module:
    from engine.models.preact_resnet import build_preact_resnet

    return build_preact_resnet(34, num_classes)


@MODELS.register("preact_resnet50", "PreAct ResNet-50 (bottleneck), CIFAR stem (23.7M params)")
def preact_resnet50(num_classes: int = 100) -> nn.Module:
    from engine.models.preact_resnet import build_preact_resnet

    return build_preact_resnet(50, num_classes)


@MODELS.register("preact_resnet101", "PreAct ResNet-101 (bottleneck), CIFAR stem (42.7M params)")
def preact_resnet101(num_classes: int = 100) -> nn.Module:
    from engine.models.preact_resnet import build_preact_resnet

    return build_preact_resnet(101, num_classes)


@MODELS.register("preact_resnet152", "PreAct ResNet-152 (bottleneck), CIFAR stem (58.3M params)")
def preact_resnet152(num_classes: int = 100) -> nn.Module:
    from engine.models.preact_resnet import build_preact_resnet

    return build_preact_resnet(152, num_classes)


# --- Wide ResNet (Zagoruyko & Komodakis 2016) -------------------------------------------


@MODELS.register("wrn", "Wide ResNet WRN-depth-width; depth = 6n + 4 (default WRN-28-10)")
def wrn(
    num_classes: int = 100, *, depth: int = 28, width: int = 10, dropout: float = 0.0
) -> nn.Module:
    from engine.models.wrn import build_wrn

    return build_wrn(depth=depth, width=width, dropout=dropout, num_classes=num_classes)


@MODELS.register("wrn10_2", "WRN-10-2, tiny, for CPU smoke runs (0.3M params)")
def wrn10_2(num_classes: int = 100, *, dropout: float = 0.0) -> nn.Module:
    from engine.models.wrn import build_wrn

    return build_wrn(depth=10, width=2, dropout=dropout, num_classes=num_classes)


@MODELS.register("wrn16_4", "WRN-16-4 (2.8M params)")
def wrn16_4(num_classes: int = 100, *, dropout: float = 0.0) -> nn.Module:
    from engine.models.wrn import build_wrn

    return build_wrn(depth=16, width=4, dropout=dropout, num_classes=num_classes)


@MODELS.register("wrn28_10", "WRN-28-10 (36.5M params)")
def wrn28_10(num_classes: int = 100, *, dropout: float = 0.0) -> nn.Module:
    from engine.models.wrn import build_wrn

    return build_wrn(depth=28, width=10, dropout=dropout, num_classes=num_classes)


@MODELS.register("wrn40_10", "WRN-40-10 (55.9M params)")
def wrn40_10(num_classes: int = 100, *, dropout: float = 0.0) -> nn.Module:
    from engine.models.wrn import build_wrn

    return build_wrn(depth=40, width=10, dropout=dropout, num_classes=num_classes)


@MODELS.register(
    "vit",
    "Vision Transformer on 4x4 patches (64 tokens at 32x32); depth, width, heads configurable",
    limits={
        "patch_size": "1..32",
        "dim": ">= 8",
        "depth": ">= 1",
        "heads": ">= 1",
        "mlp_ratio": "> 0",
        "dropout": "0..1",
    },
)
def vit(
    num_classes: int = 100,
    *,
    patch_size: int = 4,
    dim: int = 384,
    depth: int = 6,
    heads: int = 6,
    mlp_ratio: float = 4.0,
    dropout: float = 0.0,
) -> nn.Module:
    from engine.models.vision_transformer import VisionTransformer

    return VisionTransformer(
        num_classes,
        patch_size=patch_size,
        dim=dim,
        depth=depth,
        heads=heads,
        mlp_ratio=mlp_ratio,
        dropout=dropout,
    )


@MODELS.register(
    "vit_small", "ViT-Small for CIFAR: 4x4 patches, dim 384, depth 6, 6 heads (10.7M params)"
)
def vit_small(num_classes: int = 100, *, dropout: float = 0.0) -> nn.Module:
    return vit(num_classes, dim=384, depth=6, heads=6, dropout=dropout)


@MODELS.register(
    "vit_base", "ViT-Base for CIFAR: 4x4 patches, dim 768, depth 12, 12 heads (85.2M params)"
)
def vit_base(num_classes: int = 100, *, dropout: float = 0.0) -> nn.Module:
    return vit(num_classes, dim=768, depth=12, heads=12, dropout=dropout)
