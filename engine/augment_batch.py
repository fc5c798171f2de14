"""Batched augmentation: whole uint8 batches [B, 3, 32, 32], per-sample randomness.

The fast path of DESIGN section 4: the dataset stays a uint8 tensor on the training device and each
batch is augmented there in a few vectorised calls, every image drawing its own parameters from a
seeded `torch.Generator`. Each op mirrors the per-image torchvision transform registered under the
same name in `engine.augment` (same keyword-only options, same defaults, same distributions), which
stays the reference the tests check these against.

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

AutoAugment / RandAugment / TrivialAugment / AugMix draw an op (and magnitude, sign) per sample,
then apply each op once to the sub-batch of samples that drew it, with per-sample magnitudes.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as nnf
from torchvision.transforms.v2 import functional as tvf

from engine import autoaugment as aa
from engine.augment import CIFAR100_MEAN_U8, ERASE_VALUES, PADDING_MODES
from engine.registry import Registry

Params = dict[str, torch.Tensor]


class BatchAugment(Protocol):
    def __call__(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor: ...


class BatchOp(abc.ABC):
    """Base class: `params` draws per-sample parameters, `apply` uses them; `__call__` does both."""

    def params(self, n: int, g: torch.Generator) -> Params:
        return {}

    @abc.abstractmethod
    def apply(
        self, images: torch.Tensor, params: Params, host: Params | None = None
    ) -> torch.Tensor:
        """uint8 [B, 3, H, W] -> uint8 [B, 3, H, W] with the drawn `params`; no randomness.

        `host`: the same parameters where they were drawn (the CPU), for computing group indices
        without reading device memory; None means `params` serve for that too."""

    def __call__(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        _check_batch(images)
        host = self.params(images.shape[0], g)
        return self.apply(images, to_device(host, images.device), host)


def to_device(params: Params, device: torch.device) -> Params:
    """`params` on `device`, in one non-blocking copy (see `upload`)."""
    return upload([params], device)[0]


def upload(groups: list[Params], device: torch.device) -> list[Params]:
    """Copy every tensor of `groups` to `device` as one buffer: one non-blocking copy from
    pinned memory (CUDA) instead of one blocking copy per tensor. CPU: returned as they are."""
    if device.type == "cpu":
        return [dict(group) for group in groups]
    flat = [(i, k, v.contiguous()) for i, group in enumerate(groups) for k, v in group.items()]
    sizes = [-(-(v.numel() * v.element_size()) // 8) * 8 for _, _, v in flat]  # 8-byte aligned
    buffer = torch.empty(sum(sizes), dtype=torch.uint8)
    offset = 0
    for (_, _, v), size in zip(flat, sizes, strict=True):
        nbytes = v.numel() * v.element_size()
        if nbytes:
            buffer[offset : offset + nbytes] = v.reshape(-1).view(torch.uint8)
        offset += size
    if device.type == "cuda":
        buffer = buffer.pin_memory()
    on_device = buffer.to(device, non_blocking=True)
    out: list[Params] = [{} for _ in groups]
    offset = 0
    for (i, k, v), size in zip(flat, sizes, strict=True):
        nbytes = v.numel() * v.element_size()
        out[i][k] = on_device[offset : offset + nbytes].view(v.dtype).view(v.shape)
        offset += size
    return out


_CONSTANTS: dict[tuple[str, torch.device], torch.Tensor] = {}


def device_constant(
    key: str, device: torch.device, make: Callable[[], torch.Tensor]
) -> torch.Tensor:
    """`make()` (a CPU tensor) copied to `device` once and kept: constants are never copied
    per call. `key` names the constant and every parameter it depends on."""
    entry = (key, device)
    if entry not in _CONSTANTS:
        _CONSTANTS[entry] = make().to(device)
    return _CONSTANTS[entry]


def groups(
    keys: torch.Tensor, host_keys: torch.Tensor, count: int
) -> list[tuple[int, torch.Tensor]]:
    """The samples of each value 0..count-1 of `keys` (on the device), as (value, indices in
    ascending order); group sizes from `host_keys` (the same values on the host), so nothing is
    read back. Values >= count (inactive samples) belong to no group."""
    sizes = torch.bincount(host_keys.reshape(-1).cpu(), minlength=count + 1).tolist()
    members = torch.argsort(keys.reshape(-1), stable=True)
    out, start = [], 0
    for value, size in enumerate(sizes[:count]):
        if size:
            out.append((value, members[start : start + size]))
        start += size
    return out


def _check_batch(images: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"batched augmentation expects uint8 [B, 3, H, W], got {images.dtype} "
            f"{list(images.shape)}"
        )


# --------------------------------------------------------------------------- random draws


def _rand(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=g, device=g.device, dtype=torch.float64)


def _uniform(g: torch.Generator, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * _rand(g, *shape)


def _randint(g: torch.Generator, high: torch.Tensor | int, *shape: int) -> torch.Tensor:
    """Uniform integers in [0, high) (high may be a per-sample tensor)."""
    if isinstance(high, int):
        return torch.randint(0, high, shape, generator=g, device=g.device)
    return (_rand(g, *shape) * high).floor().long().clamp(max=high - 1)


def _sign(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.where(_rand(g, *shape) <= 0.5, -1.0, 1.0).double()


def sample_dirichlet(alpha: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Dirichlet rows (alpha [n, k]) from `g` (torch.distributions cannot take a generator)."""
    return torch._sample_dirichlet(alpha.to(g.device), generator=g)


def _where_sample(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


# --------------------------------------------------------------------------- kernels
# Per-sample versions of torchvision.transforms.v2.functional ops: `x` uint8 [n, 3, H, W], the
# parameters float64 [n] on x's device. Formulas follow torchvision 0.29 step by step.


def affine(
    x: torch.Tensor,
    *,
    angle: torch.Tensor | None = None,
    translate: tuple[torch.Tensor, torch.Tensor] | None = None,
    shear: tuple[torch.Tensor, torch.Tensor] | None = None,
    corner_center: bool = False,
    mode: str = "nearest",
    fill: float | None = None,
) -> torch.Tensor:
    """`tvf.affine` (angle clockwise, as torchvision's affine) with per-sample parameters."""
    n, _, h, w = x.shape
    zero = torch.zeros(n, dtype=torch.float64, device=x.device)
    rot = torch.deg2rad(angle) if angle is not None else zero
    sx, sy = (
        (torch.deg2rad(shear[0]), torch.deg2rad(shear[1])) if shear is not None else (zero,) * 2
    )
    tx, ty = translate if translate is not None else (zero, zero)
    cx, cy = (-w * 0.5, -h * 0.5) if corner_center else (0.0, 0.0)
    cos_sy, tan_sx = torch.cos(sy), torch.tan(sx)
    a = torch.cos(rot - sy) / cos_sy
    b = -(a * tan_sx + torch.sin(rot))
    c = torch.sin(rot - sy) / cos_sy
    d = torch.cos(rot) - c * tan_sx
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = cx - m0 * (cx + tx) - m1 * (cy + ty)
    m5 = cy - m3 * (cx + tx) - m4 * (cy + ty)
    theta = torch.stack([m0, m1, m2, m3, m4, m5], 1).view(n, 2, 3).float()
    return _grid_transform(x, theta, mode, fill)


def _grid_transform(
    x: torch.Tensor, theta: torch.Tensor, mode: str, fill: float | None
) -> torch.Tensor:
    n, ch, h, w = x.shape
    dev = x.device
    base = torch.empty(1, h, w, 3, dtype=torch.float32, device=dev)
    base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=dev))
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=dev).unsqueeze_(-1)
    base[..., 1].copy_(ys)
    base[..., 2].fill_(1)
    scale = device_constant(
        f"grid_scale {w} {h}", dev, lambda: torch.tensor([0.5 * w, 0.5 * h], dtype=torch.float32)
    )
    rescaled = theta.transpose(1, 2).div(scale)
    grid = base.view(1, h * w, 3).expand(n, -1, -1).bmm(rescaled).view(n, h, w, 2)
    img = x.float()
    if fill is not None:
        img = torch.cat([img, torch.ones(n, 1, h, w, device=dev)], dim=1)
    img = nnf.grid_sample(img, grid, mode=mode, padding_mode="zeros", align_corners=False)
    if fill is not None:
        img, mask = img[:, :ch], img[:, ch:].expand(-1, ch, -1, -1)
        if mode == "nearest":
            img = torch.where(mask < 0.5, torch.full_like(img, float(fill)), img)
        else:
            img = img.sub_(fill).mul_(mask).add_(fill)
    return img.round_().to(torch.uint8)


def shift(
    x: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, fill: float | None = None
) -> torch.Tensor:
    """Integer per-sample translation (what `tvf.affine` with integer translate does exactly,
    with either interpolation): out[y, x] = in[y - ty, x - tx], fill (or 0) outside."""
    n, c, h, w = x.shape
    ys = torch.arange(h, device=x.device).view(1, h, 1) - ty.view(-1, 1, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w) - tx.view(-1, 1, 1)
    valid = ((ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)).unsqueeze(1)
    index = (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).view(n, 1, h * w)
    out = x.reshape(n, c, -1).gather(2, index.expand(n, c, h * w)).view(n, c, h, w)
    return torch.where(valid, out, round(fill or 0.0))


def rotate(x: torch.Tensor, angle: torch.Tensor, mode: str, fill: float | None) -> torch.Tensor:
    """`tvf.rotate` (counter-clockwise degrees, about the centre) with per-sample angles,
    including torchvision's exact fast paths for multiples of 90 degrees."""
    a = torch.fmod(angle, 360.0)
    a = torch.where(a < 0, a + 360.0, a)  # Python's `angle % 360`
    out = affine(x, angle=-a, mode=mode, fill=fill)
    for deg, k in ((0.0, 0), (90.0, 1), (180.0, 2), (270.0, 3)):  # no `if hit.any()`: no sync
        out = _where_sample(a == deg, torch.rot90(x, k=k, dims=(-2, -1)), out)
    return out


def _blend(img1: torch.Tensor, img2: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    # addcmul and a complement taken in float64, as torchvision's `add_(image2, alpha=1 - ratio)`
    r = ratio.float().view(-1, 1, 1, 1)
    rest = (1.0 - ratio.double()).float().view(-1, 1, 1, 1)
    out = torch.addcmul(img1.float().mul(r), img2, rest)
    return out.clamp_(0, 255).to(torch.uint8)


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.float().unbind(dim=-3)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(-3).floor_()


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    out = x.float().mul(factor.float().view(-1, 1, 1, 1))
    return out.clamp_(0, 255).to(torch.uint8)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, _gray(x), factor)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, _gray(x).mean(dim=(-3, -2, -1), keepdim=True), factor)


def adjust_sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    kernel = device_constant("sharpness_kernel", x.device, _sharpness_kernel)
    out = x.float()
    blurred = nnf.conv2d(out, kernel, groups=3).round_()
    view = out[..., 1:-1, 1:-1]
    view.add_(blurred.sub_(view).mul_((1.0 - factor.double()).float().view(-1, 1, 1, 1)))
    return out.clamp_(0, 255).to(torch.uint8)


def _sharpness_kernel() -> torch.Tensor:
    a, b = 1.0 / 13.0, 5.0 / 13.0
    return torch.tensor([[a, a, a], [a, b, a], [a, a, a]]).expand(3, 1, 3, 3).contiguous()


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.v2.functional._color import _rgb_to_hsv

    hsv = _rgb_to_hsv(tvf.to_dtype(x, torch.float32, scale=True))
    h, s, v = hsv.unbind(dim=-3)
    h = h.add(factor.float().view(-1, 1, 1)).remainder_(1.0)
    rgb = _hsv_to_rgb(torch.stack((h, s, v), dim=-3))
    return tvf.to_dtype(rgb, torch.uint8, scale=True)


def _hsv_to_rgb(img: torch.Tensor) -> torch.Tensor:
    """torchvision 0.29's `_hsv_to_rgb` step by step, with its sector table a device constant
    (torchvision copies the table from host memory on every call)."""
    h, s, v = img.unbind(dim=-3)
    h6 = h.mul(6)
    i = torch.floor(h6)
    f = h6.sub_(i)
    i = i.to(dtype=torch.int32)
    sxf = s * f
    one_minus_s = 1.0 - s
    q = (1.0 - sxf).mul_(v).clamp_(0.0, 1.0)
    t = sxf.add_(one_minus_s).mul_(v).clamp_(0.0, 1.0)
    p = one_minus_s.mul_(v).clamp_(0.0, 1.0)
    i.remainder_(6)
    vpqt = torch.stack((v, p, q, t), dim=-3)
    table = device_constant(
        "hsv_sectors",
        img.device,
        lambda: torch.tensor([[0, 2, 1, 1, 3, 0], [3, 0, 0, 2, 1, 1], [1, 1, 3, 0, 0, 2]]),
    )
    select = table[:, i]
    if select.ndim > 3:
        select = select.moveaxis(0, -3)
    return vpqt.gather(-3, select)


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    b = bits.long().clamp(0, 8)
    mask = (((1 << b) - 1) << (8 - b)).to(torch.uint8)
    return x & mask.view(-1, 1, 1, 1)


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    t = threshold.float().view(-1, 1, 1, 1)
    return torch.where(x.float() >= t, 255 - x, x)


def apply_op(
    name: str, x: torch.Tensor, mag: torch.Tensor, mode: str, fill: float | None
) -> torch.Tensor:
    """One AutoAugment-family op on a sub-batch with per-sample signed magnitudes (float64)."""
    if name == "Identity":
        return x
    if name in ("ShearX", "ShearY"):
        deg = torch.rad2deg(torch.atan(mag))
        zero = torch.zeros_like(deg)
        sh = (deg, zero) if name == "ShearX" else (zero, deg)
        return affine(x, shear=sh, corner_center=True, mode=mode, fill=fill)
    if name in ("TranslateX", "TranslateY"):
        t, zero = torch.trunc(mag).long(), torch.zeros_like(mag, dtype=torch.long)
        return shift(x, *((t, zero) if name == "TranslateX" else (zero, t)), fill=fill)
    if name == "Rotate":
        return rotate(x, mag, mode, fill)
    if name == "Brightness":
        return adjust_brightness(x, 1.0 + mag)
    if name == "Color":
        return adjust_saturation(x, 1.0 + mag)
    if name == "Contrast":
        return adjust_contrast(x, 1.0 + mag)
    if name == "Sharpness":
        return adjust_sharpness(x, 1.0 + mag)
    if name == "Posterize":
        return posterize(x, mag)
    if name == "Solarize":
        return solarize(x, 255.0 * mag)
    if name == "AutoContrast":
        return tvf.autocontrast(x)
    if name == "Equalize":
        return tvf.equalize(x)
    if name == "Invert":
        return 255 - x
    raise ValueError(f"unknown op {name!r}")


def run_ops(
    x: torch.Tensor,
    op: tuple[torch.Tensor, torch.Tensor],
    mag: torch.Tensor,
    active: tuple[torch.Tensor, torch.Tensor],
    mode: str = "nearest",
    fill: float | None = None,
) -> torch.Tensor:
    """Apply op `op[i]` (index into `aa.OPS`) with magnitude `mag[i]` to each sample where
    `active[i]`, one call per distinct op on the sub-batch that drew it. `op` and `active` are
    (on x's device, on the host) pairs of the same values; `mag` lives on x's device."""
    none = len(aa.OPS)
    keys = torch.where(active[0], op[0], none)
    host_keys = torch.where(active[1].cpu(), op[1].cpu(), none)
    out = x.clone()
    for k, sel in groups(keys, host_keys, none):
        out[sel] = apply_op(aa.OPS[k], out[sel], mag[sel], mode, fill)
    return out


class _Space:
    """A magnitude space as tensors: op index and magnitude table [ops, bins], signed flags."""

    def __init__(self, space: aa.Space, bins: int) -> None:
        self.names = list(space)
        self.op = torch.tensor([aa.OPS.index(n) for n in self.names])
        table = []
        for name in self.names:
            kind, top = space[name]
            values = aa.magnitude_bins(kind, top, bins)
            table.append(values if values is not None else [0.0] * bins)
        self.mag = torch.tensor(table, dtype=torch.float64)
        self.signed = torch.tensor([n in aa.SIGNED for n in self.names])

    def draw(
        self, g: torch.Generator, shape: tuple[int, ...], bin_high: int | None, fixed_bin: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Uniform op per entry of `shape`; bin uniform in [0, bin_high) (or `fixed_bin`); sign
        +-1 with probability 1/2 for signed ops. Returns (op index into aa.OPS, magnitude)."""
        choice = _randint(g, len(self.names), *shape).cpu()
        bins = _randint(g, bin_high, *shape).cpu() if bin_high else torch.full(shape, fixed_bin)
        sign = _sign(g, *shape).cpu()
        mag = self.mag[choice, bins] * torch.where(self.signed[choice], sign, 1.0)
        return self.op[choice], mag


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
        return {"top": _randint(g, span, n), "left": _randint(g, span, n)}

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
        return {"flip": _rand(g, n) < self.p}

    def apply(
        self, images: torch.Tensor, params: Params, host: Params | None = None
    ) -> torch.Tensor:
        return _where_sample(params["flip"], images.flip(-1), images)


class Rotation(BatchOp):
    """Angle uniform in [-degrees, degrees], counter-clockwise, bilinear, fill 0 (as
    v2.RandomRotation(degrees, BILINEAR), including its fill-mask blending at the borders)."""

    def __init__(self, degrees: float) -> None:
        self.degrees = float(degrees)

    def params(self, n: int, g: torch.Generator) -> Params:
        return {"angle": _uniform(g, -self.degrees, self.degrees, n)}

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
        order = torch.argsort(_rand(g, n, 4), dim=1)
        b, c, s, h = self.strength
        return {
            "order": order,
            "brightness": _uniform(g, max(0.0, 1 - b), 1 + b, n),
            "contrast": _uniform(g, max(0.0, 1 - c), 1 + c, n),
            "saturation": _uniform(g, max(0.0, 1 - s), 1 + s, n),
            "hue": _uniform(g, -h, h, n),
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
        erase = area * _uniform(g, self.scale[0], self.scale[1], n, 10)
        lo, hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(_uniform(g, lo, hi, n, 10))
        eh = torch.sqrt(erase * aspect).round().long()
        ew = torch.sqrt(erase / aspect).round().long()
        fits = (eh < h) & (ew < w)
        first = fits.long().argmax(1, keepdim=True)
        eh, ew = eh.gather(1, first).squeeze(1), ew.gather(1, first).squeeze(1)
        top = _randint(g, h - eh + 1, n)
        left = _randint(g, w - ew + 1, n)
        apply = (_rand(g, n) < self.p) & fits.any(1)
        out = {"apply": apply, "top": top, "left": left, "height": eh, "width": ew}
        if self.value == "random":
            out["noise"] = torch.randint(
                0, 256, (n, 3, h, w), generator=g, device=g.device, dtype=torch.uint8
            )
        return out

    def params(self, n: int, g: torch.Generator) -> Params:
        return self.params_hw(n, g, 32, 32)

    def __call__(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        _check_batch(images)
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
        return {"cy": _randint(g, 32, n), "cx": _randint(g, 32, n), "apply": _rand(g, n) < self.p}

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
    over the integers 0..rotate degrees; dropped pixels become 0."""

    def __init__(self, d_min: int, d_max: int, ratio: float, rotate: int, p: float) -> None:
        if d_max < d_min:
            raise ValueError(f"gridmask needs d_min <= d_max, got {d_min} > {d_max}")
        self.d_min, self.d_max, self.ratio, self.rotate, self.p = d_min, d_max, ratio, rotate, p

    def params(self, n: int, g: torch.Generator) -> Params:
        d = self.d_min + _randint(g, self.d_max - self.d_min + 1, n)
        return {
            "d": d,
            "length": torch.ceil(d.double() * self.ratio).long(),
            "st_h": _randint(g, d, n),
            "st_w": _randint(g, d, n),
            "angle": _randint(g, self.rotate + 1, n).double(),
            "apply": _rand(g, n) < self.p,
        }

    def apply(
        self, images: torch.Tensor, params: Params, host: Params | None = None
    ) -> torch.Tensor:
        _, _, h, w = images.shape
        keep = gridmask_keep(
            params["d"], params["length"], params["st_h"], params["st_w"], params["angle"], h, w
        )
        keep |= ~params["apply"].view(-1, 1, 1, 1)
        return images * keep


# --------------------------------------------------------------------------- policies


class AutoAugment(BatchOp):
    """The CIFAR-10 AutoAugment policy: each sample draws one of the 25 sub-policies; each of its
    two steps runs with its probability, magnitude from 10 bins, random sign for signed ops;
    nearest interpolation, zero fill (torchvision's AutoAugment(CIFAR10) conventions)."""

    def __init__(self) -> None:
        space = _Space(aa.AUTOAUGMENT_SPACE, 10)
        op, mag, prob, signed = [], [], [], []
        for sub in aa.CIFAR10_POLICY:
            for name, p, level in sub:
                k = space.names.index(name)
                op.append(aa.OPS.index(name))
                mag.append(float(space.mag[k, level]) if level is not None else 0.0)
                prob.append(p)
                signed.append(name in aa.SIGNED)
        shape = (len(aa.CIFAR10_POLICY), 2)
        self.op = torch.tensor(op).view(shape)
        self.mag = torch.tensor(mag, dtype=torch.float64).view(shape)
        self.prob = torch.tensor(prob, dtype=torch.float64).view(shape)
        self.signed = torch.tensor(signed).view(shape)

    def params(self, n: int, g: torch.Generator) -> Params:
        return {
            "policy": _randint(g, len(aa.CIFAR10_POLICY), n),
            "draw": _rand(g, n, 2),
            "sign": _sign(g, n, 2),
        }

    def apply(
        self, images: torch.Tensor, params: Params, host: Params | None = None
    ) -> torch.Tensor:
        dev = images.device
        signed, table, op_table, prob = (
            device_constant(f"autoaugment {name}", dev, table.clone)
            for name, table in (
                ("signed", self.signed),
                ("mag", self.mag),
                ("op", self.op),
                ("prob", self.prob),
            )
        )
        pol = params["policy"]
        sign = torch.where(signed[pol], params["sign"], 1.0)
        mag = table[pol] * sign
        op, active = op_table[pol], params["draw"] <= prob[pol]
        drawn = host if host is not None else params
        pol_host = drawn["policy"].cpu()
        op_host, active_host = self.op[pol_host], drawn["draw"].cpu() <= self.prob[pol_host]
        out = images
        for step in range(2):
            out = run_ops(
                out,
                (op[:, step], op_host[:, step]),
                mag[:, step],
                (active[:, step], active_host[:, step]),
            )
        return out


class RandAugment(BatchOp):
    """RandAugment (Cubuk et al. 2020) as v2.RandAugment: num_ops steps, each a uniform draw of 14
    ops (incl. Identity) per sample, magnitude bin `magnitude` of 31, random sign."""

    def __init__(self, num_ops: int, magnitude: int) -> None:
        self.num_ops, self.magnitude = num_ops, magnitude
        self.space = _Space(aa.RANDAUGMENT_SPACE, 31)

    def params(self, n: int, g: torch.Generator) -> Params:
        op, mag = self.space.draw(g, (n, self.num_ops), None, self.magnitude)
        return {"op": op, "mag": mag}

    def apply(
        self, images: torch.Tensor, params: Params, host: Params | None = None
    ) -> torch.Tensor:
        op, op_host = params["op"], (host if host is not None else params)["op"]
        out = images
        active = (
            torch.ones(images.shape[0], dtype=torch.bool, device=images.device),
            torch.ones(images.shape[0], dtype=torch.bool),
        )
        for step in range(self.num_ops):
            out = run_ops(out, (op[:, step], op_host[:, step]), params["mag"][:, step], active)
        return out


class TrivialAugment(BatchOp):
    """TrivialAugment (Mueller & Hutter 2021), wide space, as v2.TrivialAugmentWide: one op per
    sample, magnitude bin uniform over 31, random sign."""

    def __init__(self) -> None:
        self.space = _Space(aa.TRIVIALAUGMENT_SPACE, 31)

    def params(self, n: int, g: torch.Generator) -> Params:
        op, mag = self.space.draw(g, (n,), 31)
        return {"op": op, "mag": mag}

    def apply(
        self, images: torch.Tensor, params: Params, host: Params | None = None
    ) -> torch.Tensor:
        op_host = (host if host is not None else params)["op"]
        active = (
            torch.ones(images.shape[0], dtype=torch.bool, device=images.device),
            torch.ones(images.shape[0], dtype=torch.bool),
        )
        return run_ops(images, (params["op"], op_host), params["mag"], active)


class AugMix(BatchOp):
    """AugMix (Hendrycks et al. 2020) as v2.AugMix(all_ops=False), per sample: `width` chains of
    depth `depth` (or uniform 1..3 when depth <= 0) of ops with magnitude bin uniform in
    [0, severity) of 10; chains mixed with Dirichlet(alpha) weights, then mixed with the original
    by m ~ Beta(alpha, alpha); bilinear interpolation; the result truncated to uint8."""

    def __init__(self, severity: int, width: int, depth: int, alpha: float) -> None:
        self.severity, self.width, self.depth, self.alpha = severity, width, depth, alpha
        self.space = _Space(aa.AUGMIX_SPACE, 10)

    def params(self, n: int, g: torch.Generator) -> Params:
        steps = self.depth if self.depth > 0 else 3
        op, mag = self.space.draw(g, (n, self.width, steps), self.severity)
        if self.depth > 0:
            depth = torch.full((n, self.width), self.depth)
        else:
            depth = 1 + _randint(g, 3, n, self.width).cpu()
        m = sample_dirichlet(torch.full((n, 2), float(self.alpha)), g)
        w = sample_dirichlet(torch.full((n, self.width), float(self.alpha)), g)
        return {"op": op, "mag": mag, "depth": depth, "m": m, "weights": w}

    def apply(
        self, images: torch.Tensor, params: Params, host: Params | None = None
    ) -> torch.Tensor:
        drawn = host if host is not None else params
        op_host, depth_host = drawn["op"].cpu(), drawn["depth"].cpu()
        op, depth = params["op"], params["depth"]
        m = params["m"].float()
        weights = params["weights"].float() * m[:, 1:2]
        mix = m[:, 0].view(-1, 1, 1, 1) * images
        for i in range(self.width):
            aug = images
            for step in range(op.shape[2]):
                active = (depth[:, i] > step, depth_host[:, i] > step)
                ops = (op[:, i, step], op_host[:, i, step])
                aug = run_ops(aug, ops, params["mag"][:, i, step], active, "bilinear")
            mix.add_(weights[:, i].view(-1, 1, 1, 1) * aug)
        return mix.to(torch.uint8)


# --------------------------------------------------------------------------- registry
# Names, options and defaults equal engine.augment's (a test checks it), so one preset entry
# selects both paths; the config layer validates against engine.augment.AUGMENTATIONS.

BATCH_AUGMENTATIONS: Registry[Any] = Registry("batched augmentation")
_reg = BATCH_AUGMENTATIONS.register


@_reg("random_crop", "random 32x32 crop after padding each side")
def random_crop(*, padding: int = 4, padding_mode: str = "constant", fill: int = 0) -> BatchOp:
    return RandomCrop(padding, padding_mode, fill)


@_reg("hflip", "horizontal flip with probability p")
def hflip(*, p: float = 0.5) -> BatchOp:
    return HorizontalFlip(p)


@_reg("rotation", "random rotation by an angle in [-degrees, degrees] (bilinear, zero fill)")
def rotation(*, degrees: float = 15.0) -> BatchOp:
    return Rotation(degrees)


@_reg("color_jitter", "random brightness, contrast, saturation and hue, in random order")
def color_jitter(
    *, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.1
) -> BatchOp:
    return ColorJitter(brightness, contrast, saturation, hue)


@_reg("random_erasing", "erase a random rectangle with probability p")
def random_erasing(
    *,
    p: float = 0.5,
    scale_lo: float = 0.02,
    scale_hi: float = 0.4,
    ratio_lo: float = 0.3,
    ratio_hi: float = 3.3,
    value: str = "mean",
) -> BatchOp:
    return RandomErasing(p, (scale_lo, scale_hi), (ratio_lo, ratio_hi), value)


@_reg("cutout", "paint a size x size square at a random centre with the mean")
def cutout(*, size: int = 8, p: float = 1.0) -> BatchOp:
    return Cutout(size, p)


@_reg("gridmask", "drop a rotated grid of squares")
def gridmask(
    *, d_min: int = 24, d_max: int = 32, ratio: float = 0.4, rotate: int = 0, p: float = 0.8
) -> BatchOp:
    return GridMask(d_min, d_max, ratio, rotate, p)


@_reg("autoaugment", "AutoAugment, CIFAR-10 policy")
def autoaugment() -> BatchOp:
    return AutoAugment()


@_reg("randaugment", "RandAugment: num_ops random ops at one magnitude")
def randaugment(*, num_ops: int = 2, magnitude: int = 9) -> BatchOp:
    return RandAugment(num_ops, magnitude)


@_reg("trivialaugment", "TrivialAugment (wide): one random op at a random magnitude")
def trivialaugment() -> BatchOp:
    return TrivialAugment()


@_reg("augmix", "AugMix: mix of random op chains, mixed with the original")
def augmix(
    *,
    severity: int = 3,
    width: int = 3,
    depth: int = -1,
    alpha: float = 1.0,
    jsd: bool = False,
    jsd_weight: float = 12.0,
) -> BatchOp:
    """jsd / jsd_weight are read by the loader (three views per image), not by the op."""
    return AugMix(severity, width, depth, alpha)


def build_ops(components: list[tuple[str, dict[str, Any]]]) -> list[BatchOp]:
    return [BATCH_AUGMENTATIONS.build(name, **params) for name, params in components]


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
        _check_batch(images)
        for op in ops:
            images = op(images, g)
        return images

    return pipeline
