"""Batched augmentation: whole uint8 batches [B, 3, 32, 32], per-sample randomness.

The fast path of DESIGN section 4: the dataset stays a uint8 tensor on the training device and each
batch is augmented there in a few vectorised calls, every image drawing its own parameters from a
seeded `torch.Generator`. Each op mirrors the per-image torchvision transform of the same name in
`engine.augment` (same options, same distributions), the reference the tests check these against;
both are described once, by one spec each in `engine.catalog.augmentations`.

Every op splits the random draw from its application: `op.params(n, g)` returns a dict of small
parameter tensors drawn from `g` (on `g`'s device: a CPU generator is the usual choice and works
for images on any device), and `op.apply(images, params, host)` is deterministic. `op(images, g)`
does both: it copies the parameters to the images' device in one non-blocking copy (`upload`) and
also passes the drawn ones (`host`), from which the ops that split a batch into groups (policies,
colour jitter) take the group sizes; the group members are found on the device (a stable argsort
of the per-sample choice). Constants (pad maps, magnitude tables, kernels, fill colours) are built
once per device (`device_constant`). So no op reads a device tensor back on the host or copies
host data synchronously: on a GPU the whole pipeline is queued without a single synchronisation
(tests count it on the `meta` stand-in with `engine.dispatch_count`).

`engine.loader` augments chunks of many batches at once (`params` per batch under each batch's
own generator, concatenated, one `apply`): every op is per-sample, so the result is the same as
batch by batch, with a fraction of the launches.

The pixel kernels are `engine.batch_pixels`; the policy ops (AutoAugment, RandAugment,
TrivialAugment, AugMix) `engine.augment_policies`; draws and uploads `engine.batch_base`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from engine.augment import CIFAR100_MEAN_U8
from engine.batch_base import (
    BatchOp,
    Params,
    check_batch,
    device_constant,
    groups,
    rand,
    randint,
    to_device,
    uniform,
    where_sample,
)
from engine.batch_pixels import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    rotate,
)
from engine.catalog.augmentations import AUGMENTATIONS, ERASE_VALUES, PADDING_MODES

# --------------------------------------------------------------------------- geometric ops


def _pad_index(n: int, p: int, mode: str) -> torch.Tensor:
    """Source index of each position of a length-n axis padded by p on both sides (-1: fill)."""
    i = torch.arange(-p, n + p)
    if mode == "constant":
        return torch.where((i >= 0) & (i < n), i, -1)
    if mode == "edge":
        return i.clamp(0, n - 1)
    if mode == "reflect":
        i = i.abs()
        return torch.where(i > n - 1, 2 * (n - 1) - i, i)
    if mode == "symmetric":
        i = torch.where(i < 0, -i - 1, i)
        return torch.where(i > n - 1, 2 * n - 1 - i, i)
    raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {mode!r}")


class RandomCrop(BatchOp):
    """Pad by `padding` (constant/reflect/edge/symmetric), crop back at a per-sample offset
    uniform over 0..2*padding on each axis; one gather, no padded copy."""

    def __init__(self, padding: int, padding_mode: str, fill: int) -> None:
        _pad_index(1, 0, padding_mode)  # validates the mode
        self.padding, self.padding_mode, self.fill = padding, padding_mode, fill

    def params(self, n: int, g: torch.Generator) -> Params:
        span = 2 * self.padding + 1
        return {"top": randint(g, span, n), "left": randint(g, span, n)}

    def apply(
        self, images: torch.Tensor, params: Params, host: Params | None = None
    ) -> torch.Tensor:
        b, c, h, w = images.shape
        p, dev, mode = self.padding, images.device, self.padding_mode
        rows_map = device_constant(f"pad {h} {p} {mode}", dev, lambda: _pad_index(h, p, mode))
        cols_map = device_constant(f"pad {w} {p} {mode}", dev, lambda: _pad_index(w, p, mode))
        padded = images.index_select(2, rows_map.clamp(min=0))
        padded = padded.index_select(3, cols_map.clamp(min=0))
        if self.padding_mode == "constant" and p > 0:
            for border in (padded[:, :, :p], padded[:, :, -p:], padded[..., :p], padded[..., -p:]):
                border.fill_(self.fill)
        wp = w + 2 * p
        rows = params["top"].view(-1, 1, 1) + torch.arange(h, device=dev).view(1, h, 1)
        cols = params["left"].view(-1, 1, 1) + torch.arange(w, device=dev).view(1, 1, w)
        index = (rows * wp + cols).view(b, 1, h * w).expand(b, c, h * w)
        return padded.reshape(b, c, -1).gather(2, index).view(b, c, h, w)


class HorizontalFlip(BatchOp):
    def __init__(self, p: float) -> None:
        self.p = p

    def params(self, n: int, g: torch.Generator) -> Params:
        return {"flip": rand(g, n) < self.p}

    def apply(
        self, images: torch.Tensor, params: Params, host: Params | None = None
    ) -> torch.Tensor:
        return where_sample(params["flip"], images.flip(-1), images)


class Rotation(BatchOp):
    """Angle uniform in [-degrees, degrees], counter-clockwise, bilinear, fill 0 (as
    v2.RandomRotation(degrees, BILINEAR), including its fill-mask blending at the borders)."""

    def __init__(self, degrees: float) -> None:
        self.degrees = float(degrees)

    def params(self, n: int, g: torch.Generator) -> Params:
        return {"angle": uniform(g, -self.degrees, self.degrees, n)}

    def apply(
        self, images: torch.Tensor, params: Params, host: Params | None = None
    ) -> torch.Tensor:
        return rotate(images, params["angle"], "bilinear", 0.0)


# --------------------------------------------------------------------------- colour


class ColorJitter(BatchOp):
    """Per-sample factors and a per-sample random order of the four adjustments, as
    v2.ColorJitter: brightness/contrast/saturation factor uniform in [max(0, 1-v), 1+v], hue shift
    uniform in [-hue, hue]; an adjustment with strength 0 is skipped."""

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float) -> None:
        self.strength = (float(brightness), float(contrast), float(saturation), float(hue))

    def params(self, n: int, g: torch.Generator) -> Params:
        order = torch.argsort(rand(g, n, 4), dim=1)
        b, c, s, h = self.strength
        return {
            "order": order,
            "brightness": uniform(g, max(0.0, 1 - b), 1 + b, n),
            "contrast": uniform(g, max(0.0, 1 - c), 1 + c, n),
            "saturation": uniform(g, max(0.0, 1 - s), 1 + s, n),
            "hue": uniform(g, -h, h, n),
        }

    def apply(
        self, images: torch.Tensor, params: Params, host: Params | None = None
    ) -> torch.Tensor:
        fns: list[tuple[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = [
            ("brightness", adjust_brightness),
            ("contrast", adjust_contrast),
            ("saturation", adjust_saturation),
            ("hue", adjust_hue),
        ]
        order = params["order"]
        host_order = (host if host is not None else params)["order"]
        out = images.clone()
        for step in range(4):
            for k, sel in groups(order[:, step], host_order[:, step], len(fns)):
                if self.strength[k] == 0:
                    continue
                key, fn = fns[k]
                out[sel] = fn(out[sel], params[key][sel])
        return out


# --------------------------------------------------------------------------- occlusion


def _box_mask(
    top: torch.Tensor, left: torch.Tensor, bottom: torch.Tensor, right: torch.Tensor, h: int, w: int
) -> torch.Tensor:
    """bool [n, 1, h, w]: rows top..bottom-1 and columns left..right-1 of each sample."""
    ys = torch.arange(h, device=top.device).view(1, h, 1)
    xs = torch.arange(w, device=top.device).view(1, 1, w)
    rows = (ys >= top.view(-1, 1, 1)) & (ys < bottom.view(-1, 1, 1))
    cols = (xs >= left.view(-1, 1, 1)) & (xs < right.view(-1, 1, 1))
    return (rows & cols).unsqueeze(1)


def _fill_value(value: str, images: torch.Tensor, fill: torch.Tensor | None) -> torch.Tensor:
    if value == "zero":
        return device_constant("zero_u8", images.device, lambda: torch.zeros((), dtype=torch.uint8))
    if value == "mean":
        return device_constant(
            "cifar100_mean_u8",
            images.device,
            lambda: torch.tensor(CIFAR100_MEAN_U8, dtype=torch.uint8).view(3, 1, 1),
        )
    assert fill is not None
    return fill


class RandomErasing(BatchOp):
    """v2.RandomErasing per sample: with probability p, up to 10 tries of area fraction uniform in
    [scale_lo, scale_hi] and aspect log-uniform in [ratio_lo, ratio_hi]; h, w = round(sqrt(area *
    aspect)), round(sqrt(area / aspect)); the first try that fits wins, placed uniformly; no fit
    in 10 tries: the image is left as is. Filled with 0, the CIFAR-100 mean, or uniform noise."""

    def __init__(
        self, p: float, scale: tuple[float, float], ratio: tuple[float, float], value: str
    ) -> None:
        if value not in ERASE_VALUES:
            raise ValueError(f"value must be one of {ERASE_VALUES}, got {value!r}")
        self.p, self.scale, self.ratio, self.value = p, scale, ratio, value

    def params_hw(self, n: int, g: torch.Generator, h: int, w: int) -> Params:
        area = h * w
        erase = area * uniform(g, self.scale[0], self.scale[1], n, 10)
        lo, hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(uniform(g, lo, hi, n, 10))
        eh = torch.sqrt(erase * aspect).round().long()
        ew = torch.sqrt(erase / aspect).round().long()
        fits = (eh < h) & (ew < w)
        first = fits.long().argmax(1, keepdim=True)
        eh, ew = eh.gather(1, first).squeeze(1), ew.gather(1, first).squeeze(1)
        top = randint(g, h - eh + 1, n)
        left = randint(g, w - ew + 1, n)
        apply = (rand(g, n) < self.p) & fits.any(1)
        out = {"apply": apply, "top": top, "left": left, "height": eh, "width": ew}
        if self.value == "random":
            out["noise"] = torch.randint(
                0, 256, (n, 3, h, w), generator=g, device=g.device, dtype=torch.uint8
            )
        return out

    def params(self, n: int, g: torch.Generator) -> Params:
        return self.params_hw(n, g, 32, 32)

    def __call__(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        check_batch(images)
        b, _, h, w = images.shape
        host = self.params_hw(b, g, h, w)
        return self.apply(images, to_device(host, images.device), host)

    def apply(
        self, images: torch.Tensor, params: Params, host: Params | None = None
    ) -> torch.Tensor:
        _, _, h, w = images.shape
        top, left = params["top"], params["left"]
        box = _box_mask(top, left, top + params["height"], left + params["width"], h, w)
        box &= params["apply"].view(-1, 1, 1, 1)
        return torch.where(box, _fill_value(self.value, images, params.get("noise")), images)


class Cutout(BatchOp):
    """DeVries & Taylor (2017): with probability p, a size x size square centred on a pixel drawn
    uniformly over the image, clipped at the border, filled with the CIFAR-100 mean (the published
    code zeroes the normalised image, i.e. paints the mean)."""

    def __init__(self, size: int, p: float) -> None:
        self.size, self.p = size, p

    def params(self, n: int, g: torch.Generator) -> Params:
        return {"cy": randint(g, 32, n), "cx": randint(g, 32, n), "apply": rand(g, n) < self.p}

    def apply(
        self, images: torch.Tensor, params: Params, host: Params | None = None
    ) -> torch.Tensor:
        _, _, h, w = images.shape
        half = self.size // 2
        cy, cx = params["cy"], params["cx"]
        box = _box_mask(
            (cy - half).clamp(0, h),
            (cx - half).clamp(0, w),
            (cy + half).clamp(0, h),
            (cx + half).clamp(0, w),
            h,
            w,
        )
        box &= params["apply"].view(-1, 1, 1, 1)
        return torch.where(box, _fill_value("mean", images, None), images)


def gridmask_keep(
    d: torch.Tensor,
    length: torch.Tensor,
    st_h: torch.Tensor,
    st_w: torch.Tensor,
    angle: torch.Tensor,
    h: int,
    w: int,
) -> torch.Tensor:
    """GridMask keep-mask bool [n, 1, h, w] (the published code's mode 1): on a grid of unit d
    offset by (st_h, st_w), the square of side d - l after a band of width l is dropped; the grid
    is built on a ceil(diagonal) canvas, turned by `angle` degrees counter-clockwise about its
    centre (nearest) and centre-cropped, as in the published code."""
    hh = math.ceil(math.sqrt(h * h + w * w))
    dev = d.device
    ys = torch.arange(h, device=dev, dtype=torch.float64) + (hh - h) // 2 + 0.5 - hh / 2
    xs = torch.arange(w, device=dev, dtype=torch.float64) + (hh - w) // 2 + 0.5 - hh / 2
    yy, xx = ys.view(1, h, 1), xs.view(1, 1, w)
    t = torch.deg2rad(angle.double()).view(-1, 1, 1)
    cos, sin = torch.cos(t), torch.sin(t)
    # source position on the canvas of each output pixel, for a counter-clockwise turn
    src_x = (cos * xx - sin * yy + hh / 2).floor().long()
    src_y = (sin * xx + cos * yy + hh / 2).floor().long()
    dd, ll = d.view(-1, 1, 1), length.view(-1, 1, 1)
    in_row = (src_y - st_h.view(-1, 1, 1)).remainder(dd) >= ll
    in_col = (src_x - st_w.view(-1, 1, 1)).remainder(dd) >= ll
    return ~(in_row & in_col).unsqueeze(1)


class GridMask(BatchOp):
    """Chen et al. (2020) GridMask, per sample: with probability p, unit d uniform over the
    integers d_min..d_max, band l = ceil(d * ratio), offsets uniform in 0..d-1, angle uniform
    over the integers 0..rotate degrees; dropped pixels become the CIFAR-100 mean (the published
    code masks the normalised image, where the mean is 0)."""

    def __init__(self, d_min: int, d_max: int, ratio: float, rotate: int, p: float) -> None:
        if d_max < d_min:
            raise ValueError(f"gridmask needs d_min <= d_max, got {d_min} > {d_max}")
        self.d_min, self.d_max, self.ratio, self.rotate, self.p = d_min, d_max, ratio, rotate, p

    def params(self, n: int, g: torch.Generator) -> Params:
        d = self.d_min + randint(g, self.d_max - self.d_min + 1, n)
        return {
            "d": d,
            "length": torch.ceil(d.double() * self.ratio).long(),
            "st_h": randint(g, d, n),
            "st_w": randint(g, d, n),
            "angle": randint(g, self.rotate + 1, n).double(),
            "apply": rand(g, n) < self.p,
        }

    def apply(
        self, images: torch.Tensor, params: Params, host: Params | None = None
    ) -> torch.Tensor:
        _, _, h, w = images.shape
        keep = gridmask_keep(
            params["d"], params["length"], params["st_h"], params["st_w"], params["angle"], h, w
        )
        keep |= ~params["apply"].view(-1, 1, 1, 1)
        return torch.where(keep, images, _fill_value("mean", images, None))


def random_crop(*, padding: int, padding_mode: str, fill: int) -> BatchOp:
    return RandomCrop(padding, padding_mode, fill)


def hflip(*, p: float) -> BatchOp:
    return HorizontalFlip(p)


def rotation(*, degrees: float) -> BatchOp:
    return Rotation(degrees)


def color_jitter(*, brightness: float, contrast: float, saturation: float, hue: float) -> BatchOp:
    return ColorJitter(brightness, contrast, saturation, hue)


def random_erasing(
    *, p: float, scale_lo: float, scale_hi: float, ratio_lo: float, ratio_hi: float, value: str
) -> BatchOp:
    return RandomErasing(p, (scale_lo, scale_hi), (ratio_lo, ratio_hi), value)


def cutout(*, size: int, p: float) -> BatchOp:
    return Cutout(size, p)


def gridmask(*, d_min: int, d_max: int, ratio: float, rotate: int, p: float) -> BatchOp:
    return GridMask(d_min, d_max, ratio, rotate, p)


def build_ops(components: list[tuple[str, dict[str, Any]]]) -> list[BatchOp]:
    return [AUGMENTATIONS.build(name, **params) for name, params in components]


def draw_params(op: BatchOp, n: int, h: int, w: int, g: torch.Generator) -> Params:
    """`op`'s parameters for n images of h x w, drawn from `g` as `op(images, g)` draws them."""
    if isinstance(op, RandomErasing):
        return op.params_hw(n, g, h, w)
    return op.params(n, g)


def build_batch_pipeline(
    components: list[tuple[str, dict[str, Any]]],
) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Compose the listed augmentations, in order, into one batched transform
    (uint8 [B, 3, H, W], generator) -> uint8 [B, 3, H, W]."""
    ops = build_ops(components)

    def pipeline(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        check_batch(images)
        for op in ops:
            images = op(images, g)
        return images

    return pipeline
