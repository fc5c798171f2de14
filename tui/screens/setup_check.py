"""Setup's check line: the same check `cifar-tui --run` applies before a run folder exists
(`parse_config`, then `tui.orchestration.launcher.check_before_run`), a one-line summary of a
valid recipe and the warnings it earns. No Textual here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.config import RunConfig, parse_config
from engine.errors import BadInputError
from tui.orchestration.launcher import check_before_run

# inside the dashboard a data folder is moved in Setup, not with --data-dir
SETUP_DATA_HINT = "or set data.data_dir in Setup's data section"


@dataclass(frozen=True)
class Check:
    """The outcome of checking a raw config: `config` when it would run, else `error`."""

    config: RunConfig | None
    error: str | None = None
    warnings: tuple[str, ...] = ()


def check_raw(raw: Any) -> Check:
    """Check a raw config mapping as `--run` would (its one-line refusal, the dashboard's data
    advice in it)."""
    try:
        cfg = parse_config(raw)
        check_before_run(cfg, where=SETUP_DATA_HINT)
    except BadInputError as exc:
        return Check(None, str(exc))
    return Check(cfg, None, tuple(recipe_warnings(cfg)))


def plural(n: float, noun: str) -> str:
    """`1 epoch`, `2 epochs`, `0.5 epochs`."""
    return f"{n:g} {noun}" if n == 1 else f"{n:g} {noun}s"


def recipe_warnings(cfg: RunConfig) -> list[str]:
    """Settings that run but are likely a mistake."""
    out = []
    warmup = cfg.schedule.params.get("warmup_epochs")
    if warmup and warmup >= cfg.train.epochs:
        out.append(
            f"schedule.warmup_epochs = {warmup:g} >= train.epochs = {cfg.train.epochs}: the "
            "rate never leaves its warmup"
        )
    return out


def summary_line(cfg: RunConfig) -> str:
    """`wrn, sgd lr 0.1 + asam rho 2, cosine, ce, 1 epoch x batch 128 on cifar100; crop > flip
    + mixup`."""
    optim = f"{cfg.optim.name} lr {cfg.optim.params.get('lr', '-')}"
    if cfg.sam is not None:
        optim += f" + {cfg.sam.name} rho {cfg.sam.params.get('rho', '-')}"
    synthetic = " (SYNTHETIC data)" if cfg.data.dataset == "synthetic" else ""
    augs = " > ".join(a.name for a in cfg.augment) or "no augmentation"
    if cfg.mix is not None:
        augs += f" + {cfg.mix.name}"
    return (
        f"{cfg.model.name}, {optim}, {cfg.schedule.name}, {cfg.loss.name}, "
        f"{plural(cfg.train.epochs, 'epoch')} x batch {cfg.data.batch_size} on "
        f"{cfg.data.dataset}{synthetic}; {augs}"
    )
