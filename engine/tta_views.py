"""Test-time augmentation views: their names, parsing and canonical form (torch-free).

A view is (flip, dx, dy): the 32x32 window of the image zero-padded by 4 pixels on each side,
moved by (dx, dy) from the centre (output pixel (y, x) = input pixel (y + dy, x + dx), zero
outside), then mirrored left-right when `flip` (the training pipeline's order: random_crop, then
hflip). Names: `identity`, `hflip`, `shift:dx,dy`, `hflip+shift:dx,dy` with dx, dy in [-4, 4].

Views are canonicalised before anything runs, so `shift:0,0` is `identity` and a view asked for
twice costs one forward pass. The config and the CLI validate view names with this module;
`engine.tta` evaluates them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from engine.errors import ConfigError

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
