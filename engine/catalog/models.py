"""The model zoo: every trainable architecture, by name, for 32x32 inputs.

Implementations take `num_classes` (injected by the engine) first; every user-configurable
option is a parameter here, set from a config as `model.<name>`. Parameter counts in the
descriptions are for 100 classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.catalog.spec import Catalog, Spec, param

_DROPOUT = param("dropout", "float", 0.0, "dropout probability inside each block", limit="0..1")
_RESNET = "ResNet-{}{}, CIFAR stem ({}M params)"
_PREACT = "PreAct ResNet-{}{}, CIFAR stem ({}M params)"
_RESNET_PARAMS = {18: 11.2, 34: 21.3, 50: 23.7, 101: 42.7, 152: 58.3}


def wrn_depth_fault(depth: int) -> str | None:
    """Why `depth` is no WRN depth (d = 6n + 4, n >= 1), or None; the model builds refuse it
    with the same text."""
    if depth < 10 or (depth - 4) % 6 != 0:
        return (
            f"depth = {depth} is not a WRN depth: use 6n + 4 with n >= 1 "
            "(10, 16, 22, 28, 34, 40, ...)"
        )
    return None


def _check_wrn(params: Mapping[str, Any]) -> str | None:
    return wrn_depth_fault(int(params["depth"]))


def _check_vit(params: Mapping[str, Any]) -> str | None:
    dim, heads = int(params["dim"]), int(params["heads"])
    if dim % heads:
        return (
            f"dim = {dim} does not divide by heads = {heads}: each head gets dim / heads channels"
        )
    if 32 % int(params["patch_size"]):
        return f"patch_size = {params['patch_size']} does not divide the 32-pixel image side"
    return None


def _resnets(impl: str, title: str, prefix: str) -> list[Spec]:
    return [
        Spec(
            f"{prefix}{depth}",
            title.format(depth, " (bottleneck)" if depth >= 50 else "", millions),
            impl,
            fixed={"depth": depth},
        )
        for depth, millions in _RESNET_PARAMS.items()
    ]


def _wrn(depth: int, width: int, description: str) -> Spec:
    return Spec(
        f"wrn{depth}_{width}",
        description,
        "engine.models.wrn:build_wrn",
        params=(_DROPOUT,),
        fixed={"depth": depth, "width": width},
    )


def _vit(name: str, description: str, dim: int, depth: int, heads: int) -> Spec:
    return Spec(
        name,
        description,
        "engine.models.vision_transformer:VisionTransformer",
        params=(_DROPOUT,),
        fixed={"patch_size": 4, "dim": dim, "depth": depth, "heads": heads, "mlp_ratio": 4.0},
    )


MODELS = Catalog(
    "model",
    [
        *_resnets("engine.models.resnet:build_resnet", _RESNET, "resnet"),
        *_resnets("engine.models.preact_resnet:build_preact_resnet", _PREACT, "preact_resnet"),
        Spec(
            "wrn",
            "Wide ResNet WRN-depth-width; depth = 6n + 4 (default WRN-28-10)",
            "engine.models.wrn:build_wrn",
            params=(
                param("depth", "int", 28, limit=">= 10"),
                param("width", "int", 10, limit=">= 1"),
                _DROPOUT,
            ),
            check=_check_wrn,
        ),
        _wrn(10, 2, "WRN-10-2, tiny, for CPU smoke runs (0.3M params)"),
        _wrn(16, 2, "WRN-16-2, narrow: the first run's net on a CPU (0.7M params)"),
        _wrn(16, 4, "WRN-16-4 (2.8M params)"),
        _wrn(28, 10, "WRN-28-10 (36.5M params)"),
        _wrn(40, 10, "WRN-40-10 (55.9M params)"),
        Spec(
            "vit",
            "Vision Transformer on 4x4 patches (64 tokens at 32x32); depth, width, heads "
            "configurable",
            "engine.models.vision_transformer:VisionTransformer",
            params=(
                param("patch_size", "int", 4, limit="1..32"),
                param("dim", "int", 384, limit=">= 8"),
                param("depth", "int", 6, limit=">= 1"),
                param("heads", "int", 6, limit=">= 1"),
                param("mlp_ratio", "float", 4.0, limit="> 0"),
                _DROPOUT,
            ),
            check=_check_vit,
        ),
        _vit(
            "vit_small",
            "ViT-Small for CIFAR: 4x4 patches, dim 384, depth 6, 6 heads (10.7M params)",
            384,
            6,
            6,
        ),
        _vit(
            "vit_base",
            "ViT-Base for CIFAR: 4x4 patches, dim 768, depth 12, 12 heads (85.2M params)",
            768,
            12,
            12,
        ),
    ],
)
