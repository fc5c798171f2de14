"""The model zoo: parameter counts, shapes, the CIFAR stem, init and the registry contract."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from engine.catalog import MODELS
from engine.models.resnet import build_resnet

ROOT = Path(__file__).resolve().parents[2]

# Exact parameter counts for 100 classes; a change here changes every published number.
EXACT_PARAMS = {
    "resnet18": 11_220_132,
    "resnet34": 21_328_292,
    "resnet50": 23_705_252,
    "resnet101": 42_697_380,
    "resnet152": 58_341_028,
    "preact_resnet18": 11_218_340,
    "preact_resnet34": 21_326_500,
    "preact_resnet50": 23_697_572,
    "preact_resnet101": 42_689_700,
    "preact_resnet152": 58_333_348,
    "wrn": 36_536_884,  # defaults: WRN-28-10
    "wrn10_2": 315_316,
    "wrn16_2": 703_284,
    "wrn16_4": 2_772_020,
    "wrn28_10": 36_536_884,
    "wrn40_10": 55_899_444,
    "vit": 10_730_212,  # defaults = vit_small; the formula is checked in test_numerics
    "vit_small": 10_730_212,
    "vit_base": 85_221_220,
}

# Published counts (millions, one decimal) for CIFAR-100 models.
PUBLISHED_M = {
    "resnet18": 11.2,
    "resnet50": 23.7,
    "resnet101": 42.7,
    "wrn28_10": 36.5,
    "wrn40_10": 55.9,
}

SMALL = ["resnet18", "preact_resnet18", "wrn10_2"]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_build(name: str, num_classes: int = 100, **options: object) -> nn.Module:
    """Build on the meta device: real shapes, no memory, no init cost."""
    with torch.device("meta"):
        return MODELS.build(name, num_classes, **options)


# --- parameter counts --------------------------------------------------------------------


@pytest.mark.parametrize(("name", "millions"), PUBLISHED_M.items())
def test_published_parameter_counts(name: str, millions: float) -> None:
    assert round(n_params(meta_build(name)) / 1e6, 1) == millions


@pytest.mark.parametrize("name", MODELS.names())
def test_exact_parameter_counts_and_descriptions(name: str) -> None:
    count = n_params(meta_build(name))
    assert count == EXACT_PARAMS[name]
    description = next(e.description for e in MODELS.entries() if e.name == name)
    stated = re.search(r"\(([\d.]+)M params\)", description)
    if stated:  # the menu text must not lie
        assert float(stated.group(1)) == round(count / 1e6, 1)


def test_exact_counts_cover_the_registry() -> None:
    assert sorted(EXACT_PARAMS) == MODELS.names()


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_resnet_matches_torchvision_except_stem(depth: int) -> None:
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        ours = build_resnet(100, depth=depth)
        ref = getattr(torchvision.models, f"resnet{depth}")(num_classes=100)
    # torchvision's stem is a 7x7 conv (+ max-pool, no params); ours a 3x3 conv.
    assert n_params(ref) - n_params(ours) == 64 * 3 * (7 * 7 - 3 * 3) == 7680
    # Past the stem the layouts are identical: same keys and shapes, stage by stage.
    for stage in ["layer1", "layer2", "layer3", "layer4", "fc"]:
        ours_sd = {k: v.shape for k, v in getattr(ours, stage).state_dict().items()}
        ref_sd = {k: v.shape for k, v in getattr(ref, stage).state_dict().items()}
        assert ours_sd == ref_sd, stage


def wrn_param_formula(depth: int, k: int, num_classes: int = 100) -> int:
    """WRN-d-k from the paper: 3x3 stem to 16 channels, groups of n pre-activation blocks with
    16k/32k/64k channels (BN-ReLU-conv3x3 twice; a 1x1 conv shortcut where the width changes),
    a final BN, and a linear head. Convs have no bias; a BN has 2 parameters per channel."""
    n = (depth - 4) // 6
    widths = [16, 16 * k, 32 * k, 64 * k]
    total = 3 * 16 * 9
    for c_in, c in zip(widths[:-1], widths[1:], strict=True):
        total += 2 * c_in + 9 * c_in * c + 2 * c + 9 * c * c  # first block
        total += c_in * c if c_in != c else 0  # its projection shortcut
        total += (n - 1) * (2 * c + 9 * c * c + 2 * c + 9 * c * c)  # the other blocks
    return total + 2 * widths[3] + widths[3] * num_classes + num_classes


@pytest.mark.parametrize(
    ("depth", "width"), [(10, 1), (10, 2), (16, 4), (22, 8), (28, 10), (40, 10)]
)
def test_wrn_count_matches_closed_form(depth: int, width: int) -> None:
    model = meta_build("wrn", depth=depth, width=width)
    assert n_params(model) == wrn_param_formula(depth, width)


# --- forward passes ----------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS.names())
def test_forward_shape(name: str) -> None:
    torch.manual_seed(0)
    model = MODELS.build(name, 100).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 100)
    assert torch.isfinite(out).all()


def test_num_classes_and_backward() -> None:
    torch.manual_seed(0)
    model = MODELS.build("wrn10_2", 10, dropout=0.3).train()
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


# --- architecture ------------------------------------------------------------------------


@pytest.mark.parametrize("name", SMALL)
def test_cifar_stem_keeps_full_resolution(name: str) -> None:
    model = MODELS.build(name, 100).eval()
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.kernel_size == (3, 3) and first_conv.stride == (1, 1)

    stages = ("layer1", "layer2", "layer3", "layer4", "group1", "group2", "group3")
    sizes: dict[str, tuple[int, int]] = {}
    for stage in stages:
        if hasattr(model, stage):
            getattr(model, stage).register_forward_hook(
                lambda _m, _i, out, s=stage: sizes.__setitem__(s, tuple(out.shape[-2:]))
            )
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert model.stem(x).shape[-2:] == (32, 32)
        model(x)
    expected = [(32, 32), (16, 16), (8, 8), (4, 4)][: len(sizes)]
    assert list(sizes.values()) == expected


def test_wrn_dropout_placement() -> None:
    assert not any(isinstance(m, nn.Dropout) for m in meta_build("wrn16_4").modules())
    drops = [m for m in meta_build("wrn16_4", dropout=0.3).modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 6 and all(d.p == 0.3 for d in drops)  # one per block, 3 groups x 2


def test_kaiming_init() -> None:
    torch.manual_seed(0)
    for name, layer in [("resnet18", "layer4.1.conv2"), ("wrn16_4", "group3.1.conv2")]:
        model = MODELS.build(name, 100)
        w = model.get_submodule(layer).weight
        fan_out = w.shape[0] * w.shape[2] * w.shape[3]
        assert w.numel() > 500_000
        assert w.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)
        assert abs(w.mean().item()) < 1e-3
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
        fc = model.get_submodule("fc")
        assert fc.weight.abs().max().item() <= 1 / math.sqrt(fc.in_features)  # default init


@pytest.mark.parametrize("depth", [27, 4, 0, 29])
def test_wrn_depth_validation(depth: int) -> None:
    with pytest.raises(ValueError, match=f"depth = {depth} is not a WRN depth"):
        MODELS.build("wrn", 100, depth=depth, width=1)


def test_resnet_depth_validation() -> None:
    with pytest.raises(ValueError, match="got 20"):
        build_resnet(100, depth=20)


# --- registry contract -------------------------------------------------------------------


def test_registry_names_and_descriptions() -> None:
    expected = [f"resnet{d}" for d in (18, 34, 50, 101, 152)]
    expected += [f"preact_resnet{d}" for d in (18, 34, 50, 101, 152)]
    expected += ["wrn", "wrn10_2", "wrn16_2", "wrn16_4", "wrn28_10", "wrn40_10"]
    expected += ["vit", "vit_small", "vit_base"]
    assert MODELS.names() == sorted(expected)
    assert len(MODELS) == len(expected)
    for entry in MODELS.entries():
        assert entry.description.strip(), entry.name


def test_vit_uses_64_patch_tokens_and_has_the_formula_parameter_count():
    from engine.catalog import MODELS

    def formula(dim: int, depth: int, p: int = 4, classes: int = 100, mlp: float = 4.0) -> int:
        n, hidden = (32 // p) ** 2, int(dim * mlp)
        embed = 3 * p * p * dim + dim + dim + (n + 1) * dim  # patch conv, cls, positions
        block = 2 * dim + (3 * dim * dim + 3 * dim) + (dim * dim + dim) + 2 * dim
        block += dim * hidden + hidden + hidden * dim + dim
        return embed + depth * block + 2 * dim + dim * classes + classes

    small = MODELS.build("vit_small", 100)
    assert sum(q.numel() for q in small.parameters()) == formula(384, 6)
    assert sum(
        q.numel() for q in MODELS.build("vit", 100, dim=96, depth=2, heads=4).parameters()
    ) == formula(96, 2)
    tokens = small.tokens(torch.zeros(2, 3, 32, 32))
    assert tokens.shape == (2, 64, 384)
    tiny = MODELS.build("vit", 100, dim=64, depth=1, heads=4, patch_size=8)
    assert tiny.tokens(torch.zeros(1, 3, 32, 32)).shape == (1, 16, 64)
    assert tiny(torch.zeros(2, 3, 32, 32)).shape == (2, 100)
