"""The batched augmentation path against the per-image torchvision reference.

Tolerances (uint8): exact for crop, flip, cutout, erasing, gridmask (no rotation), every
AutoAugment-family op, rotation, brightness, contrast, saturation, sharpness, hue (the kernels
repeat torchvision's float steps); composed colour jitter <= 2 levels (a 1-level difference at one
step can grow by the next factor); AugMix <= 1 level (float mix, then truncation); rotated gridmask
>= 97 % of pixels equal (nearest sampling ties on a rotated canvas).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from engine import augment_batch as B
from engine import augment_policies as policies
from engine import autoaugment as aa
from engine import batch_pixels as pixels
from engine.augment import CIFAR100_MEAN_U8, _Cutout, _GridMask
from engine.catalog import AUGMENTATIONS, MIXES
from tests.conftest import REAL_CIFAR, ROOT

N = 48


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors: one intra-op thread is faster than two on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Real CIFAR-100 test images when the shared copy is there (textures and edges matter for
    rounding checks), else seeded noise with smooth blobs."""
    path = REAL_CIFAR / "test"
    if path.is_file():
        with path.open("rb") as f:
            d = pickle.load(f, encoding="bytes")
        return torch.from_numpy(np.asarray(d[b"data"][:N])).view(N, 3, 32, 32).clone()
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (N, 3, 32, 32), generator=g, dtype=torch.uint8)
    smooth = F.gaussian_blur(noise.float(), [7, 7], [3.0, 3.0]).clamp(0, 255)
    return ((smooth - smooth.amin()) * 255 / (smooth.amax() - smooth.amin())).to(torch.uint8)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_close(out: torch.Tensor, ref: torch.Tensor, max_diff: int = 0) -> None:
    assert out.dtype == ref.dtype == torch.uint8 and out.shape == ref.shape
    diff = (out.int() - ref.int()).abs()
    assert diff.max().item() <= max_diff, f"max diff {diff.max().item()} > {max_diff}"


def per_image(fn, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
    return torch.stack([fn(x[i], *(float(a[i]) for a in args)) for i in range(len(x))])


# --------------------------------------------------------------------------- every op


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_shape_dtype_determinism_and_per_sample_randomness(name, images):
    op = AUGMENTATIONS.build(name)
    same = images[:1].expand(16, -1, -1, -1).contiguous()
    a, b, c = op(same, gen(1)), op(same, gen(1)), op(same, gen(2))
    assert a.dtype == torch.uint8 and a.shape == same.shape and a.device == same.device
    assert torch.equal(a, b)  # same seed, same output
    assert not torch.equal(a, c)  # another seed, another output
    # one draw per sample, not per batch: copies of one image come out differently
    assert len({bytes(t.numpy()) for t in a}) > 1
    # the per-image path accepts the same options and runs on the same image
    assert AUGMENTATIONS.build_reference(name)(images[0]).shape == (3, 32, 32)


def test_pipeline_composes_in_order_and_is_seeded(images):
    comps = [
        ("random_crop", {"padding": 4}),
        ("hflip", {}),
        ("rotation", {"degrees": 15}),
        ("autoaugment", {}),
        ("random_erasing", {}),
    ]
    pipe = B.build_batch_pipeline(comps)
    out = pipe(images, gen(3))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(out, pipe(images, gen(3)))
    g = gen(3)
    manual = images
    for name, params in comps:
        manual = AUGMENTATIONS.build(name, **params)(manual, g)
    assert torch.equal(out, manual)
    assert torch.equal(B.build_batch_pipeline([])(images, gen(0)), images)
    with pytest.raises(ValueError):
        pipe(images.float(), gen(0))


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "symmetric"])
def test_random_crop_matches_pad_then_crop(mode, images):
    op = B.RandomCrop(padding=4, padding_mode=mode, fill=77)
    params = op.params(N, gen(4))
    out = op.apply(images, params)
    fill = 77 if mode == "constant" else 0
    for i in range(N):
        padded = F.pad(images[i], [4], fill=fill, padding_mode=mode)
        top, left = int(params["top"][i]), int(params["left"][i])
        assert torch.equal(out[i], F.crop(padded, top, left, 32, 32))


def test_random_crop_offsets_uniform():
    params = B.RandomCrop(4, "constant", 0).params(9000, gen(5))
    for key in ("top", "left"):
        counts = torch.bincount(params[key], minlength=9)
        assert len(counts) == 9  # 0..2p only
        assert (counts - 1000).abs().max() < 150  # ~4.7 sigma


def test_hflip_matches_and_rate(images):
    op = B.HorizontalFlip(0.5)
    params = op.params(N, gen(6))
    out = op.apply(images, params)
    for i in range(N):
        ref = F.horizontal_flip(images[i]) if params["flip"][i] else images[i]
        assert torch.equal(out[i], ref)
    for p in (0.0, 0.3, 1.0):
        rate = B.HorizontalFlip(p).params(20000, gen(7))["flip"].double().mean().item()
        assert abs(rate - p) < 0.015


def test_rotation_matches_torchvision_bilinear_zero_fill(images):
    angles = torch.linspace(-45, 45, N, dtype=torch.float64)
    out = B.Rotation(45).apply(images, {"angle": angles})
    ref = per_image(
        lambda im, a: F.rotate(im, a, v2.InterpolationMode.BILINEAR, fill=0), images, angles
    )
    assert_close(out, ref, 0)


def test_rotation_angles_uniform():
    angle = B.Rotation(15).params(20000, gen(8))["angle"]
    assert angle.min() >= -15 and angle.max() <= 15
    counts = torch.histc(angle.float(), bins=10, min=-15, max=15)
    assert (counts - 2000).abs().max() < 220
    assert abs(angle.mean().item()) < 0.15


# --------------------------------------------------------------------------- colour


@pytest.mark.parametrize(
    "kernel, reference, lo, hi",
    [
        (pixels.adjust_brightness, F.adjust_brightness, 0.0, 2.0),
        (pixels.adjust_contrast, F.adjust_contrast, 0.0, 2.0),
        (pixels.adjust_saturation, F.adjust_saturation, 0.0, 2.0),
        (pixels.adjust_sharpness, F.adjust_sharpness, 0.0, 2.0),
        (pixels.adjust_hue, F.adjust_hue, -0.5, 0.5),
    ],
)
def test_colour_kernels_match_torchvision(kernel, reference, lo, hi, images):
    factors = torch.linspace(lo, hi, N, dtype=torch.float64)
    assert_close(kernel(images, factors), per_image(reference, images, factors), 0)


def test_color_jitter_matches_sequential_torchvision(images):
    op = B.ColorJitter(0.4, 0.4, 0.4, 0.1)
    params = op.params(N, gen(9))
    out = op.apply(images, params)
    fns = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
    keys = ["brightness", "contrast", "saturation", "hue"]
    ref = []
    for i in range(N):
        im = images[i]
        for k in params["order"][i].tolist():
            im = fns[k](im, float(params[keys[k]][i]))
        ref.append(im)
    assert_close(out, torch.stack(ref), 2)


def test_color_jitter_factor_ranges_and_orders():
    params = B.ColorJitter(0.4, 0.4, 0.4, 0.1).params(24000, gen(10))
    for key in ("brightness", "contrast", "saturation"):
        assert params[key].min() >= 0.6 and params[key].max() <= 1.4
        assert abs(params[key].mean().item() - 1.0) < 0.01
    assert params["hue"].abs().max() <= 0.1
    perms = torch.unique(params["order"], dim=0, return_counts=True)[1]
    assert len(perms) == 24 and (perms - 1000).abs().max() < 150


# --------------------------------------------------------------------------- occlusion


@pytest.mark.parametrize("value", ["zero", "mean", "random"])
def test_random_erasing_matches_erase(value, images):
    op = B.RandomErasing(1.0, (0.02, 0.4), (0.3, 3.3), value)
    params = op.params(N, gen(11))
    out = op.apply(images, params)
    for i in range(N):
        if not params["apply"][i]:
            assert torch.equal(out[i], images[i])
            continue
        t, l_, h, w = (int(params[k][i]) for k in ("top", "left", "height", "width"))
        if value == "random":
            v = params["noise"][i, :, t : t + h, l_ : l_ + w]
        else:
            v = torch.tensor(
                (0, 0, 0) if value == "zero" else CIFAR100_MEAN_U8, dtype=torch.uint8
            ).view(3, 1, 1)
        assert torch.equal(out[i], F.erase(images[i], t, l_, h, w, v))


def test_random_erasing_draws_like_torchvision():
    """Two-sample check of the rectangle distribution against v2.RandomErasing.make_params."""
    n = 4000
    mine = B.RandomErasing(1.0, (0.02, 0.4), (0.3, 3.3), "mean").params(n, gen(12))
    ref = v2.RandomErasing(p=1.0, scale=(0.02, 0.4), ratio=(0.3, 3.3), value=0)
    img = torch.zeros(3, 32, 32, dtype=torch.uint8)
    torch.manual_seed(12)
    theirs = [ref.make_params([img]) for _ in range(n)]
    t_ok = torch.tensor([p["v"] is not None for p in theirs])
    t_h = torch.tensor([p["h"] for p in theirs])[t_ok].double()
    t_w = torch.tensor([p["w"] for p in theirs])[t_ok].double()
    t_i = torch.tensor([p["i"] for p in theirs])[t_ok].double()
    ok = mine["apply"]
    m_h, m_w = mine["height"][ok].double(), mine["width"][ok].double()
    assert abs(ok.double().mean() - t_ok.double().mean()) < 0.01
    assert abs((m_h * m_w).mean() - (t_h * t_w).mean()) < 0.05 * (t_h * t_w).mean()
    assert abs((m_h / m_w).log().mean() - (t_h / t_w).log().mean()) < 0.06
    assert abs(mine["top"][ok].double().mean() - t_i.mean()) < 0.6
    assert mine["height"][ok].max() < 32 and mine["width"][ok].max() < 32
    assert ((mine["top"] + mine["height"])[ok] <= 32).all()
    rate = B.RandomErasing(0.5, (0.02, 0.4), (0.3, 3.3), "mean").params(n, gen(13))["apply"]
    assert abs(rate.double().mean().item() - 0.5 * t_ok.double().mean().item()) < 0.03


def test_cutout_matches_reference_and_centres_uniform(images):
    op, ref = B.Cutout(8, 1.0), _Cutout(8, 1.0)
    params = op.params(N, gen(14))
    out = op.apply(images, params)
    for i in range(N):
        expect = ref.apply(images[i], int(params["cy"][i]), int(params["cx"][i]), True)
        assert torch.equal(out[i], expect)
    cy = B.Cutout(8, 1.0).params(16000, gen(15))["cy"]
    assert (torch.bincount(cy, minlength=32) - 500).abs().max() < 110


def test_gridmask_matches_published_construction(images):
    op = B.GridMask(24, 32, 0.4, 0, 1.0)
    ref = _GridMask(24, 32, 0.4, 0, 1.0)
    params = op.params(N, gen(16))
    out = op.apply(images, params)
    for i in range(N):
        d, sh, sw = (int(params[k][i]) for k in ("d", "st_h", "st_w"))
        assert torch.equal(out[i], ref.apply(images[i], d, sh, sw, 0, True))
    # rotated masks: nearest sampling on a turned canvas, allow boundary ties
    params["angle"] = torch.linspace(0, 45, N, dtype=torch.float64).round()
    out = op.apply(images, params)
    agree = 0.0
    for i in range(N):
        d, sh, sw, a = (int(params[k][i]) for k in ("d", "st_h", "st_w", "angle"))
        agree += (out[i] == ref.apply(images[i], d, sh, sw, a, True)).float().mean().item()
    assert agree / N >= 0.97


def test_gridmask_drop_fraction():
    ones = torch.full((2000, 3, 32, 32), 255, dtype=torch.uint8)
    op = B.GridMask(24, 32, 0.4, 0, 1.0)
    params = op.params(2000, gen(17))
    out = op.apply(ones, params)
    kept = (out == 255).double().mean((1, 2, 3))
    d, length = params["d"].double(), params["length"].double()
    expected = 1 - ((d - length) / d) ** 2  # the keep ratio of one unit, for the mean
    assert abs(kept.mean() - expected.mean()) < 0.04
    assert params["d"].min() == 24 and params["d"].max() == 32
    # dropped pixels are the CIFAR-100 mean, not black (GridMask's code masks after normalising)
    mean = torch.tensor(CIFAR100_MEAN_U8, dtype=torch.uint8).view(1, 3, 1, 1).expand_as(out)
    dropped = out != 255
    assert dropped.any() and torch.equal(out[dropped], mean[dropped])
    ref_out = _GridMask(24, 32, 0.4, 0, 1.0).apply(ones[0], 24, 0, 0, 0, True)
    assert set(ref_out.unique().tolist()) == {255, *CIFAR100_MEAN_U8}


# --------------------------------------------------------------------------- auto-augment family


def test_autoaugment_table_is_the_cifar10_policy():
    theirs = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)._policies
    assert len(aa.CIFAR10_POLICY) == 25
    assert [tuple(s) for s in aa.CIFAR10_POLICY] == [tuple(s) for s in theirs]


@pytest.mark.parametrize(
    "space, cls, bins",
    [
        (aa.AUTOAUGMENT_SPACE, v2.AutoAugment, 10),
        (aa.RANDAUGMENT_SPACE, v2.RandAugment, 31),
        (aa.TRIVIALAUGMENT_SPACE, v2.TrivialAugmentWide, 31),
        (aa.AUGMIX_SPACE, None, 10),
    ],
)
def test_magnitude_spaces_match_torchvision(space, cls, bins):
    ref = v2.AugMix._PARTIAL_AUGMENTATION_SPACE if cls is None else cls._AUGMENTATION_SPACE
    assert list(space) == list(ref)
    for name, (fn, signed) in ref.items():
        assert (name in aa.SIGNED) == signed, name
        expect = fn(bins, 32, 32)
        kind, maximum = space[name]
        got = aa.magnitude_bins(kind, maximum, bins)
        if expect is None:
            assert got is None, name
        else:
            assert got == expect.float().tolist(), name


@pytest.mark.parametrize("op", aa.OPS)
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_each_policy_op_matches_torchvision(op, mode, images):
    mags = {
        "TranslateX": torch.linspace(-14.5, 14.5, N),
        "TranslateY": torch.linspace(-14.5, 14.5, N),
        "Rotate": torch.linspace(-135, 135, N),
        "Posterize": torch.arange(N) % 9,
        "Solarize": torch.linspace(0, 1, N),
    }.get(op, torch.linspace(-0.99, 0.99, N)).double()
    ref_t = v2.AutoAugment()
    ref = per_image(
        lambda im, m: ref_t._apply_image_or_video_transform(im, op, m, mode, ref_t._fill),
        images,
        mags,
    )
    assert_close(pixels.apply_op(op, images, mags, mode, None), ref, 0)


def _replay(images, steps, mode="nearest"):
    """Per-image torchvision ops replaying the batched draws: steps = [(op, mag, active)]."""
    t = v2.AutoAugment()
    out = []
    for i in range(len(images)):
        im = images[i]
        for op, mag, active in steps:
            if active[i]:
                im = t._apply_image_or_video_transform(
                    im, aa.OPS[int(op[i])], float(mag[i]), mode, t._fill
                )
        out.append(im)
    return torch.stack(out)


def test_autoaugment_groups_reproduce_per_image_policy(images):
    op = policies.AutoAugment()
    params = op.params(N, gen(18))
    out = op.apply(images, params)
    pol = params["policy"]
    steps = []
    for s in range(2):
        names = [aa.CIFAR10_POLICY[int(k)][s] for k in pol]
        ops = torch.tensor([aa.OPS.index(n) for n, _, _ in names])
        mags = []
        for i, (name, _, level) in enumerate(names):
            bins = aa.magnitude_bins(*aa.AUTOAUGMENT_SPACE[name], 10)
            m = 0.0 if bins is None or level is None else bins[level]
            mags.append(m * float(params["sign"][i, s]) if name in aa.SIGNED else m)
        prob = torch.tensor([p for _, p, _ in names], dtype=torch.float64)
        steps.append((ops, mags, params["draw"][:, s] <= prob))
    assert_close(out, _replay(images, steps), 0)


def test_autoaugment_subpolicy_and_step_frequencies():
    n = 25000
    op = policies.AutoAugment()
    params = op.params(n, gen(19))
    counts = torch.bincount(params["policy"], minlength=25)
    assert len(counts) == 25 and (counts - 1000).abs().max() < 150
    active = params["draw"] <= op.prob[params["policy"]]
    assert abs(active.double().mean() - op.prob.mean()) < 0.01
    signed = op.signed[params["policy"]]
    neg = (params["sign"] < 0)[signed].double().mean().item()
    assert abs(neg - 0.5) < 0.01


def test_randaugment_and_trivialaugment_reproduce_per_image(images):
    ra = policies.RandAugment(2, 9)
    p = ra.params(N, gen(20))
    steps = [(p["op"][:, s], p["mag"][:, s], torch.ones(N, dtype=torch.bool)) for s in range(2)]
    assert_close(ra.apply(images, p), _replay(images, steps), 0)
    ta = policies.TrivialAugment()
    p = ta.params(N, gen(21))
    steps = [(p["op"], p["mag"], torch.ones(N, dtype=torch.bool))]
    assert_close(ta.apply(images, p), _replay(images, steps), 0)


def test_policy_op_draws_uniform():
    p = policies.TrivialAugment().params(28000, gen(22))
    counts = torch.bincount(p["op"], minlength=len(aa.OPS))
    used = counts[[aa.OPS.index(n) for n in aa.TRIVIALAUGMENT_SPACE]]
    assert (used - 2000).abs().max() < 250 and counts.sum() == used.sum()
    ra = policies.RandAugment(2, 9).params(14000, gen(23))["op"]
    counts = torch.bincount(ra.flatten(), minlength=len(aa.OPS))
    assert (counts[[aa.OPS.index(n) for n in aa.RANDAUGMENT_SPACE]] - 2000).abs().max() < 250


def test_augmix_reproduces_per_image_mix(images):
    op = policies.AugMix(3, 3, -1, 1.0)
    p = op.params(N, gen(24))
    out = op.apply(images, p)
    m = p["m"].float()
    w = p["weights"].float() * m[:, 1:2]
    mix = m[:, 0].view(-1, 1, 1, 1) * images
    for i in range(3):
        steps = [(p["op"][:, i, s], p["mag"][:, i, s], p["depth"][:, i] > s) for s in range(3)]
        mix = mix + w[:, i].view(-1, 1, 1, 1) * _replay(images, steps, "bilinear")
    assert_close(out, mix.to(torch.uint8), 1)
    assert torch.allclose(p["weights"].sum(1).double(), torch.ones(N, dtype=torch.float64))
    assert set(p["depth"].flatten().tolist()) <= {1, 2, 3}


# --------------------------------------------------------------------------- MixUp / CutMix


def _constant(n: int, value: int) -> torch.Tensor:
    return torch.full((n, 3, 32, 32), value, dtype=torch.uint8)


def test_mixup_pixel_mass_equals_label_mass():
    n = 256
    images = torch.cat([_constant(n // 2, 255), _constant(n // 2, 0)])
    labels = torch.cat([torch.zeros(n // 2), torch.ones(n // 2)]).long()
    out, targets = MIXES.build("mixup", alpha=1.0)(images, labels, 10, gen(25))
    assert out.dtype == torch.uint8 and targets.shape == (n, 10)
    assert torch.allclose(targets.sum(1), torch.ones(n))
    white = out[:, 0, 0, 0].double() / 255  # fraction of the white image in each pixel
    assert (white - targets[:, 0].double()).abs().max() <= 0.5 / 255 + 1e-6
    assert (out == out[:, :1, :1, :1]).all()  # a constant image stays constant


@pytest.mark.parametrize("name", ["cutmix", "mixup_cutmix"])
def test_cutmix_label_equals_pasted_area(name):
    n = 512
    images = torch.cat([_constant(n // 2, 200), _constant(n // 2, 10)])
    labels = torch.cat([torch.full((n // 2,), 3), torch.full((n // 2,), 7)]).long()
    mix = MIXES.build(name)
    params = mix.params(n, 32, 32, gen(26))
    out, targets = mix.apply(images, labels, 100, params)
    assert torch.allclose(targets.sum(1), torch.ones(n))
    partner = params["partner"]
    cut = params["cutmix"]
    if name == "cutmix":
        assert cut.all()
    else:
        assert 0.4 < cut.double().mean() < 0.6
    own = torch.where(labels == 3, 200, 10).view(-1, 1, 1, 1)
    differ = labels != labels[partner]
    rows = cut & differ
    from_partner = (out[rows] != own[rows]).double().mean((1, 2, 3))
    own_label = targets[rows, labels[rows]].double()
    assert torch.allclose(from_partner, 1 - own_label, atol=1e-6)
    assert (from_partner > 0).any()


def test_mix_draws_are_seeded_and_per_sample():
    images = torch.randint(0, 256, (64, 3, 32, 32), generator=gen(27), dtype=torch.uint8)
    labels = torch.randint(0, 100, (64,), generator=gen(28))
    mix = MIXES.build("mixup_cutmix")
    a, ta = mix(images, labels, 100, gen(1))
    b, tb = mix(images, labels, 100, gen(1))
    c, _ = mix(images, labels, 100, gen(2))
    assert torch.equal(a, b) and torch.equal(ta, tb) and not torch.equal(a, c)
    lam = mix.params(4000, 32, 32, gen(29))["lam"]
    assert len(torch.unique(lam[:64])) == 64  # one lambda per sample
    # Beta(1, 1) (CutMix) and Beta(0.8, 0.8) (MixUp) both have mean 1/2
    assert abs(lam.mean().item() - 0.5) < 0.02


def test_the_mix_catalog_loads_without_torch():
    """The config layer validates a `mix:` section against it (engine.mix itself is torch)."""
    import subprocess
    import sys

    code = "import sys, engine.catalog.mixes; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"
