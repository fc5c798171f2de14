"""The policy ops: AutoAugment, RandAugment, TrivialAugment, AugMix, batched.

Each draws an op (and magnitude, sign) per sample, then applies each op once to the sub-batch of
samples that drew it, with per-sample magnitudes."""

from __future__ import annotations

import torch

from engine import autoaugment as aa
from engine.batch_base import (
    BatchOp,
    Params,
    device_constant,
    rand,
    randint,
    sample_dirichlet,
    sign,
)
from engine.batch_pixels import (
    run_ops,
)


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
        choice = randint(g, len(self.names), *shape).cpu()
        bins = randint(g, bin_high, *shape).cpu() if bin_high else torch.full(shape, fixed_bin)
        signs = sign(g, *shape).cpu()
        mag = self.mag[choice, bins] * torch.where(self.signed[choice], signs, 1.0)
        return self.op[choice], mag


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
            "policy": randint(g, len(aa.CIFAR10_POLICY), n),
            "draw": rand(g, n, 2),
            "sign": sign(g, n, 2),
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
            depth = 1 + randint(g, 3, n, self.width).cpu()
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


def autoaugment() -> BatchOp:
    return AutoAugment()


def randaugment(*, num_ops: int, magnitude: int) -> BatchOp:
    return RandAugment(num_ops, magnitude)


def trivialaugment() -> BatchOp:
    return TrivialAugment()


def augmix(
    *, severity: int, width: int, depth: int, alpha: float, jsd: bool, jsd_weight: float
) -> BatchOp:
    """jsd / jsd_weight are read by the loader (three views per image), not by the op."""
    return AugMix(severity, width, depth, alpha)
