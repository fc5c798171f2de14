"""Test-time augmentation (TTA): a model evaluated on several fixed views of every test image.

A view is (flip, dx, dy): the 32x32 window of the image zero-padded by 4 pixels on each side,
moved by (dx, dy) from the centre (output pixel (y, x) = input pixel (y + dy, x + dx), zero
outside), then mirrored left-right when `flip` (the training pipeline's order: random_crop, then
hflip). Names: `identity`, `hflip`, `shift:dx,dy`, `hflip+shift:dx,dy` with dx, dy in [-4, 4].

Views are canonicalised before anything runs, so `shift:0,0` is `identity` and a view asked for
twice costs one forward pass: the cost multiplier is the number of distinct views. The merged
prediction is the mean of the views' softmax probabilities.

Parsing is torch-free (the config and the CLI validate view names with it); evaluation imports
torch when called.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError
from engine.events import TTAEvaluated

if TYPE_CHECKING:
    import torch
    from torch import nn

    from engine.data import ImageSet

PAD = 4  # the zero padding a shifted view crops from (the training crop's padding)
_NUM = r"([+-]?\d+)"
_VIEW_RE = re.compile(rf"^(?:(identity)|(hflip)(?:\+shift:{_NUM},{_NUM})?|shift:{_NUM},{_NUM})$")
_HALF_SHIFT_RE = re.compile(rf"^(hflip\+)?shift:{_NUM}$")

# identity, the mirror, and 2-pixel shifts along each axis with and without the mirror: 10
# distinct views, so 10 forward passes per test image (10x the cost of a plain evaluation)
DEFAULT_VIEWS: tuple[str, ...] = (
    "identity",
    "hflip",
    "shift:2,0",
    "shift:-2,0",
    "shift:0,2",
    "shift:0,-2",
    "hflip+shift:2,0",
    "hflip+shift:-2,0",
    "hflip+shift:0,2",
    "hflip+shift:0,-2",
)


@dataclass(frozen=True)
class View:
    """One canonical view; equal views are the same forward pass."""

    flip: bool = False
    dx: int = 0
    dy: int = 0

    @property
    def name(self) -> str:
        shift = f"shift:{self.dx},{self.dy}" if (self.dx, self.dy) != (0, 0) else ""
        if self.flip:
            return f"hflip+{shift}" if shift else "hflip"
        return shift or "identity"


def all_view_names() -> list[str]:
    """Every distinct view's canonical name (2 x 9 x 9 = 162)."""
    r = range(-PAD, PAD + 1)
    return [View(flip, dx, dy).name for flip in (False, True) for dy in r for dx in r]


VIEW_FORMS = (
    f"identity, hflip, shift:dx,dy, hflip+shift:dx,dy with dx, dy integers in [-{PAD}, {PAD}]"
)


def parse_view(text: str, where: str = "") -> View:
    """A view name -> its canonical View. Raises ConfigError naming the nearest valid name.

    `where` prefixes the message (e.g. `eval.tta.2`)."""
    prefix = f"{where}: " if where else ""
    if not isinstance(text, str):
        raise ConfigError(f"{prefix}a TTA view is a name ({VIEW_FORMS}), got {text!r}")
    compact = "".join(text.split()).lower()
    match = _VIEW_RE.match(compact)
    if match is None:
        half = _HALF_SHIFT_RE.match(compact)
        if half:  # `shift:2`: most likely a YAML flow list that split `shift:2,0` at its comma
            near: str | None = f"{half.group(1) or ''}shift:{int(half.group(2))},0"
            quote = ' (inside a YAML [...] list, quote a view with a comma: ["shift:2,0"])'
        else:
            close = difflib.get_close_matches(compact, all_view_names(), n=1, cutoff=0.5)
            near, quote = (close[0] if close else None), ""
        hint = f"; did you mean {near!r}?" if near else ""
        raise ConfigError(f"{prefix}unknown TTA view {text!r}{hint}{quote} (valid: {VIEW_FORMS})")
    identity, hflip, fdx, fdy, sdx, sdy = match.groups()
    if identity:
        return View()
    dx, dy = (fdx, fdy) if hflip else (sdx, sdy)
    shift = (int(dx), int(dy)) if dx is not None else (0, 0)
    if any(abs(v) > PAD for v in shift):
        raise ConfigError(
            f"{prefix}TTA view {text!r}: shift ({shift[0]}, {shift[1]}) is out of range: "
            f"dx and dy must be in [-{PAD}, {PAD}] (the crop padding)"
        )
    return View(bool(hflip), *shift)


def unique_views(names: Iterable[str], where: str | None = None) -> list[View]:
    """Parse and canonicalise; duplicates dropped, first occurrence order kept.

    `where` names the list in errors (e.g. `eval.tta`: the message says `eval.tta.2`)."""
    out: list[View] = []
    for i, name in enumerate(names):
        view = parse_view(name, f"{where}.{i}" if where else "")
        if view not in out:
            out.append(view)
    return out


# --------------------------------------------------------------------------- evaluation


def apply_view(images: torch.Tensor, view: View) -> torch.Tensor:
    """Images [B, C, H, W] (any dtype; uint8 before normalisation) seen through `view`."""
    import torch.nn.functional as F

    out = images
    if (view.dx, view.dy) != (0, 0):
        h, w = images.shape[-2:]
        padded = F.pad(images, (PAD, PAD, PAD, PAD))
        out = padded[..., PAD + view.dy : PAD + view.dy + h, PAD + view.dx : PAD + view.dx + w]
    return out.flip(-1) if view.flip else out


@dataclass
class ViewScore:
    view: str
    top1: float
    top5: float


@dataclass
class TTAResult:
    views: list[ViewScore]  # the distinct views, in the order first asked for
    top1: float  # merged: mean of the views' softmax probabilities
    top5: float
    count: int  # test images
    cost: int  # forward passes per image relative to a plain evaluation (= distinct views)
    requested: int  # views asked for, duplicates included

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def event(self, checkpoint: str, epoch: int) -> TTAEvaluated:
        d = self.to_dict()
        return TTAEvaluated(split="test", checkpoint=checkpoint, epoch=epoch, **d)


def evaluate_tta(
    net: nn.Module,
    data: ImageSet,
    views: Sequence[str],
    *,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    batch_size: int,
    amp: bool = False,
    on_batch: Callable[[], None] | None = None,
) -> TTAResult:
    """Top-1/top-5 of `net` on each distinct view of `data`, and of their merged prediction.

    `normalize` maps uint8 images to the network's input (engine.device.Normalizer); views are
    taken on the uint8 images before it, like the training crop. `amp`: bf16 autocast, as the
    trainer evaluates on CUDA. `net` is put in eval mode and handed back in the mode it had.
    """
    import torch

    from engine import metrics

    unique = unique_views(views)
    if not unique:
        raise ConfigError("TTA needs at least one view")
    was_training = net.training
    net.eval()
    correct = torch.zeros(len(unique), 2, dtype=torch.long, device=device)
    merged = torch.zeros(2, dtype=torch.long, device=device)
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                images = data.images[start : start + batch_size].to(device, non_blocking=True)
                labels = data.labels[start : start + batch_size].to(device, non_blocking=True)
                prob_sum: torch.Tensor | None = None
                for i, view in enumerate(unique):
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                        logits = net(normalize(apply_view(images, view))).float()
                    correct[i] += metrics.topk_correct(logits, labels, (1, 5))
                    probs = logits.softmax(dim=1)
                    prob_sum = probs if prob_sum is None else prob_sum + probs
                assert prob_sum is not None
                merged += metrics.topk_correct(prob_sum / len(unique), labels, (1, 5))
                if on_batch is not None:
                    on_batch()
    finally:
        net.train(was_training)
    n = max(len(data), 1)
    scores = [
        ViewScore(view.name, c1 / n, c5 / n)
        for view, (c1, c5) in zip(unique, correct.tolist(), strict=True)
    ]
    m1, m5 = merged.tolist()
    return TTAResult(scores, m1 / n, m5 / n, len(data), len(unique), len(views))
