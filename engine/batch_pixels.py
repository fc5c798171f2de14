"""Pixel kernels on batches with per-sample parameters: geometry, colour, the policy ops.

Each takes images (uint8 or float) [B, 3, H, W] and parameter tensors [B] on their device."""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torchvision.transforms.v2 import functional as tvf

from engine import autoaugment as aa
from engine.batch_base import (
    device_constant,
    groups,
    where_sample,
)

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
        out = where_sample(a == deg, torch.rot90(x, k=k, dims=(-2, -1)), out)
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
