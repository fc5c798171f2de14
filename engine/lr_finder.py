"""LR range test ("LR finder"): `python -m engine lr-find CONFIG_YAML OUT_JSON`.

The learning rate grows exponentially from `start` to `end` over `steps` optimizer steps
(lr_i = start * (end / start) ** (i / (steps - 1)), set directly on every parameter group) while
training a deep copy of the model; the caller's model, buffers, optimizer and the global RNG are
left untouched. Each step records the training loss of its batch, smoothed with an exponential
moving average with bias correction (fastai's form):

    avg_i = beta * avg_{i-1} + (1 - beta) * loss_i,   avg_{-1} = 0
    smoothed_i = avg_i / (1 - beta ** (i + 1))

The sweep stops early once `smoothed_i > diverge * min(smoothed_0..i)` (the loss has diverged) or
when a loss is not finite (that point is not recorded).

Suggestion rule ("lr_min / 10", Smith 2017 / fastai v1): the learning rate at the minimum of the
smoothed loss, divided by 10, rounded to 3 significant digits. At the minimum the loss is about to
blow up, so a tenth of it is a large rate that still descends steadily.

The sweep's settings and their checks are torch-free, in `engine.lr_sweep`.
"""

from __future__ import annotations

import copy
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine import strict_json
from engine.config import RunConfig, fast_options, parse_config
from engine.errors import BadInputError
from engine.lr_sweep import (
    DEFAULT_DIVERGE,
    DEFAULT_END,
    DEFAULT_SMOOTHING,
    DEFAULT_START,
    DEFAULT_STEPS,
    SUGGESTION_RULE,
    check_sweep,
    sweep_lrs,
)
from engine.presets import read_yaml

Batch = tuple["torch.Tensor", "torch.Tensor"]


class Smoother:
    """Bias-corrected exponential moving average (see the module docstring)."""

    def __init__(self, beta: float) -> None:
        self.beta, self.avg, self.count = beta, 0.0, 0

    def update(self, value: float) -> float:
        self.avg = self.beta * self.avg + (1.0 - self.beta) * value
        self.count += 1
        return self.avg / (1.0 - self.beta**self.count)


def smooth_losses(losses: Iterable[float], beta: float) -> list[float]:
    smoother = Smoother(beta)
    return [smoother.update(x) for x in losses]


def suggest(lrs: list[float], smoothed: list[float]) -> float | None:
    """The suggestion rule: lr at the smoothed minimum / 10, to 3 significant digits."""
    if not smoothed:
        return None
    best = min(range(len(smoothed)), key=smoothed.__getitem__)
    return float(f"{lrs[best] / 10:.3g}")


@dataclass
class LRCurve:
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float | None
    min_lr: float | None  # lr at the minimum of the smoothed loss
    stopped_early: bool
    reason: str
    rule: str = SUGGESTION_RULE
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> Path:
        """Write the curve as JSON, atomically (temp file + rename)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(strict_json.dumps(self.to_dict(), indent=1) + "\n")
        tmp.replace(path)
        return path


Progress = Callable[[int, float, float, float], None]  # (step, lr, loss, smoothed)


def lr_sweep(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    batches: Iterable[Batch],
    start: float = DEFAULT_START,
    end: float = DEFAULT_END,
    steps: int = DEFAULT_STEPS,
    smoothing: float = DEFAULT_SMOOTHING,
    diverge: float = DEFAULT_DIVERGE,
    *,
    autocast: Callable[[], AbstractContextManager[Any]] | None = None,
    progress: Progress | None = None,
) -> LRCurve:
    """Run the range test on a deep copy of `model`; see the module docstring for the rules.

    `batches` yields (inputs, targets); a re-iterable (a list) is cycled when it runs out, an
    iterator that runs out ends the sweep. `make_optimizer` builds the optimizer on the copy.
    `autocast` (optional) returns the context the forward pass and loss run in.
    Losses are assumed >= 0 (the divergence test compares ratios).
    """

    check_sweep(start, end, steps, smoothing, diverge)
    lrs = sweep_lrs(start, end, steps)
    cuda = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    seen_lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    smoother = Smoother(smoothing)
    best = math.inf
    stopped_early, reason = False, f"completed all {steps} steps"
    with torch.random.fork_rng(devices=cuda):  # the caller's RNG stream is not consumed
        net = copy.deepcopy(model)
        net.train()
        optimizer = make_optimizer(net)
        source: Iterator[Batch] = iter(batches)
        for i, lr in enumerate(lrs):
            try:
                inputs, targets = next(source)
            except StopIteration:
                fresh = iter(batches)
                if fresh is source or fresh is batches:  # an iterator: it cannot restart
                    stopped_early, reason = True, f"ran out of batches after {i} steps"
                    break
                source = fresh
                try:
                    inputs, targets = next(source)
                except StopIteration:
                    stopped_early, reason = True, "no batches"
                    break
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            with autocast() if autocast is not None else nullcontext():
                outputs = net(inputs)
                if outputs.dtype in (torch.float16, torch.bfloat16):  # the loss in fp32
                    outputs = outputs.float()
                loss = loss_fn(outputs, targets)
            value = float(loss.detach())
            if not math.isfinite(value):
                stopped_early, reason = True, f"non-finite loss ({value}) at lr {lr:.3g}"
                break
            loss.backward()
            optimizer.step()
            smooth = smoother.update(value)
            seen_lrs.append(lr)
            losses.append(value)
            smoothed.append(smooth)
            best = min(best, smooth)
            if progress is not None:
                progress(i, lr, value, smooth)
            if smooth > diverge * best:
                stopped_early = True
                reason = (
                    f"diverged at lr {lr:.3g}: smoothed loss {smooth:.4g} > {diverge:g} x its "
                    f"minimum {best:.4g}"
                )
                break
    suggestion = suggest(seen_lrs, smoothed)
    min_lr = seen_lrs[smoothed.index(min(smoothed))] if smoothed else None
    notes = []
    if min_lr is not None and min_lr == seen_lrs[0]:
        notes.append("the smoothed loss was lowest at the first step: try a lower --start")
    if not stopped_early:
        notes.append("the loss did not diverge by --end: the suggestion may be low; raise --end")
    return LRCurve(
        lrs=seen_lrs,
        losses=losses,
        smoothed=smoothed,
        suggestion=suggestion,
        min_lr=min_lr,
        stopped_early=stopped_early,
        reason=reason,
        notes=notes,
        config={
            "start": start,
            "end": end,
            "steps": steps,
            "smoothing": smoothing,
            "diverge": diverge,
        },
    )


# --------------------------------------------------------------------------- from a run config


def training_batches(
    cfg: RunConfig, images: torch.Tensor, labels: torch.Tensor, num_classes: int, normalize: Any
) -> Iterator[Batch]:
    """Endless augmented training batches, as training sees them: the batched augmentation
    pipeline, then MixUp/CutMix (soft targets) when configured, then normalisation. `images` and
    `labels` already sit on the device; the random draws come from a CPU generator seeded by
    `train.seed`. Epochs are reshuffled; a last partial batch is dropped."""

    from engine import build

    pipeline = build.build_batch_augment(cfg)
    mixer = build.build_mix(cfg)
    g = torch.Generator().manual_seed(cfg.train.seed)
    n, size = len(labels), cfg.data.batch_size
    while True:
        order = torch.randperm(n, generator=g).to(images.device)
        for first in range(0, n - size + 1, size):
            pick = order[first : first + size]
            batch = pipeline(images[pick], g)
            targets = labels[pick]
            if mixer is not None:
                batch, targets = mixer(batch, targets, num_classes, g)
            yield normalize(batch), targets


def find_lr(
    cfg: RunConfig,
    start: float = DEFAULT_START,
    end: float = DEFAULT_END,
    steps: int = DEFAULT_STEPS,
    *,
    smoothing: float = DEFAULT_SMOOTHING,
    diverge: float = DEFAULT_DIVERGE,
    log: Callable[[str], None] | None = None,
) -> LRCurve:
    """The range test for a resolved run config: its data, model, loss and base optimizer.

    SAM is not applied (the base optimizer takes every step) and the schedule is replaced by the
    sweep; both are said in the curve's notes. Raises BadInputError for bad input.
    """

    from engine import build
    from engine import device as devices

    say = log or (lambda _msg: None)
    check_sweep(start, end, steps, smoothing, diverge)
    device = devices.resolve_device(cfg.train.device)
    devices.seed_everything(cfg.train.seed)
    d = cfg.data
    data = build.load_run_data(cfg, progress=sys.stderr.isatty())
    build.check_batch_fits(cfg, data)
    amp, channels_last = fast_options(cfg.train, device.type)
    num_classes = data.num_classes
    torch.manual_seed(cfg.train.seed)
    model = devices.to_device(build.build_model(cfg, num_classes), device, channels_last)
    loss_fn = build.build_loss(cfg, data.train.labels, num_classes)

    def make_optimizer(net: nn.Module) -> torch.optim.Optimizer:
        opt: torch.optim.Optimizer = build.build_optimizer(cfg, net, sam=False)
        return opt

    normalize = devices.Normalizer.of(data, device, channels_last, amp)
    batches = training_batches(
        cfg, data.train.images.to(device), data.train.labels.to(device), num_classes, normalize
    )
    notes = [f"schedule {cfg.schedule.name!r} is replaced by the sweep"]
    if cfg.sam is not None:
        notes.append(
            f"SAM ({cfg.sam.name}) is not applied during the sweep: plain {cfg.optim.name} steps"
        )
    tag = "SYNTHETIC data" if data.synthetic else data.name
    say(
        f"lr-find: {cfg.model.name} on {tag} ({len(data.train)} training images, batch "
        f"{d.batch_size}), {cfg.optim.name}, {steps} steps from {start:g} to {end:g} on {device}"
    )
    for note in notes:
        say(f"lr-find: note: {note}")
    every = max(steps // 10, 1)

    def progress(i: int, lr: float, loss: float, smooth: float) -> None:
        if (i + 1) % every == 0:
            say(
                f"lr-find: step {i + 1}/{steps}  lr {lr:.3g}  loss {loss:.4f}  "
                f"smoothed {smooth:.4f}"
            )

    def autocast() -> AbstractContextManager[Any]:
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    curve = lr_sweep(
        model,
        loss_fn,
        make_optimizer,
        batches,
        start,
        end,
        steps,
        smoothing,
        diverge,
        autocast=autocast,
        progress=progress,
    )
    curve.notes = notes + curve.notes
    curve.config.update(
        model=cfg.model.name,
        dataset=data.name,
        synthetic=data.synthetic,
        train_size=len(data.train),
        batch_size=d.batch_size,
        augment=[a.name for a in cfg.augment],
        mix=cfg.mix.name if cfg.mix else None,
        optim={"name": cfg.optim.name, **cfg.optim.params},
        sam=cfg.sam.name if cfg.sam else None,
        loss={"name": cfg.loss.name, **cfg.loss.params},
        device=str(device),
        bf16=amp,
        seed=cfg.train.seed,
    )
    return curve


def main(config: Path, out: Path, start: float, end: float, steps: int) -> int:
    """`python -m engine lr-find`: 0 done, 2 bad input (one line on stderr)."""

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        check_sweep(start, end, steps)
        cfg = parse_config(read_yaml(config))
        curve = find_lr(cfg, start, end, steps, log=say)
    except BadInputError as exc:
        print(f"cifar-tui: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lr-find: interrupted", file=sys.stderr)
        return 130
    try:
        curve.save(out)
    except OSError as exc:
        print(f"cifar-tui: error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    say(f"lr-find: {curve.reason}")
    return 0
