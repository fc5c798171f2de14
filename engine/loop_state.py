"""Where a run stands, and what a checkpoint holds to continue it exactly.

A checkpoint is the loop's position (`LoopState`, down to the step within the epoch and the
epoch's partial sums), the weights (and EMA), optimizer and scheduler state, the history and
best epoch so far, the config, and the Python/numpy/torch/CUDA RNG states.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.checkpoint_files import CheckpointError
from engine.config import RunConfig, config_changes, config_hash, config_to_dict, parse_config
from engine.errors import ConfigError

CHECKPOINT_FORMAT = 2


@dataclass
class LoopState:
    """Where the run stands: `epoch` epochs complete plus `epoch_step` steps of the next."""

    epoch: int = 0
    step: int = 0
    epoch_step: int = 0
    epoch_loss_sum: float = 0.0  # sums over the steps done in the current epoch
    epoch_correct: int = 0
    epoch_seen: int = 0
    epoch_time: float = 0.0
    train_time: float = 0.0  # over the whole run, all sessions
    images_seen: int = 0
    wall_time: float = 0.0
    bad_steps: int = 0  # consecutive non-finite losses

    def close_epoch(self, epoch: int) -> float:
        """Epoch `epoch` is complete: its time joins the run's and its sums restart; returns
        its throughput (images per second)."""
        self.train_time += self.epoch_time
        img_per_s = self.epoch_seen / max(self.epoch_time, 1e-9)
        self.epoch, self.epoch_step = epoch, 0
        self.epoch_loss_sum, self.epoch_correct, self.epoch_seen, self.epoch_time = 0.0, 0, 0, 0.0
        return img_per_s


def capture_rng() -> dict[str, Any]:
    """Every RNG state, as a checkpoint stores it (numpy's keys as a torch tensor)."""
    np_state: tuple[Any, ...] = np.random.get_state()  # type: ignore[assignment]
    return {
        "python": random.getstate(),
        "numpy": [
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            *np_state[2:],
        ],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(rng: dict[str, Any]) -> None:
    """Set every RNG state from `capture_rng`'s dict (loaded to the CPU: set_rng_state takes
    CPU ByteTensors only)."""
    random.setstate(_as_tuple(rng["python"]))
    name, keys, *rest = rng["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def checkpoint_state(
    *,
    run_id: str,
    cfg: RunConfig,
    model: nn.Module,
    ema: nn.Module | None,
    optimizer: Any,
    scheduler: Any,
    loop: LoopState,
    history: list[dict[str, Any]],
    best_val_top1: float | None,
    best_epoch: int | None,
) -> dict[str, Any]:
    """The checkpoint of the run as it stands (tensors still on the device)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "run_id": run_id,
        "model": model.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "loop": asdict(loop),
        "history": history,
        "best_val_top1": best_val_top1,
        "best_epoch": best_epoch,
        "config": config_to_dict(cfg),
        "config_hash": config_hash(cfg),
        "rng": capture_rng(),
        "versions": {
            "torch": str(torch.__version__),
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
    }


# what a training checkpoint holds, by type: a file missing one (or holding another type) is
# not one of ours, whatever its signature says
_TRAINING_KEYS = {
    "model": dict,
    "optimizer": dict,
    "scheduler": dict,
    "loop": dict,
    "history": list,
    "config": dict,
    "rng": dict,
}


def check_training_state(state: dict[str, Any], path: Path) -> None:
    """Refuse (CheckpointError naming `path`) a checkpoint that cannot continue a run."""
    wrong = [k for k, kind in _TRAINING_KEYS.items() if not isinstance(state.get(k), kind)]
    if wrong:
        raise CheckpointError(
            f"checkpoint {path} cannot continue a run: its {', '.join(wrong)} "
            f"{'is' if len(wrong) == 1 else 'are'} missing or of the wrong type"
        )
    fields = {f.name for f in dataclasses.fields(LoopState)}
    if set(state["loop"]) != fields:
        raise CheckpointError(f"checkpoint {path} cannot continue a run: its loop state is damaged")


def restore_training(
    state: dict[str, Any],
    path: Path,
    model: nn.Module,
    ema: nn.Module | None,
    optimizer: Any,
    scheduler: Any,
) -> tuple[LoopState, list[dict[str, Any]], float | None, int | None]:
    """Load a checkpoint's weights, EMA, optimizer, scheduler and RNG states (checked by
    `check_training_state`); returns its position, history, best validation top-1 and best
    epoch. A checkpoint that does not fit this run's model or optimizer raises CheckpointError
    naming `path`.

    Loaded to the CPU: load_state_dict copies weights and optimizer state onto the device (the
    RNG states must stay CPU ByteTensors: `restore_rng`)."""
    if ema is not None and state.get("ema") is None:
        raise ConfigError("train.ema_decay is set but the checkpoint has no EMA weights")
    try:
        model.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        why = " ".join(lines[:2])[:200] or type(exc).__name__  # torch's heading, its first case
        raise CheckpointError(
            f"checkpoint {path} does not fit this run's model or optimizer ({why})"
        ) from None
    loop = LoopState(**state["loop"])
    return loop, list(state["history"]), state.get("best_val_top1"), state.get("best_epoch")


def check_config(
    state: dict[str, Any],
    cfg: RunConfig,
    path: Path,
    force: bool,
    accepted: dict[str, Any] | None = None,
) -> list[str]:
    """The recipe keys in which `cfg` differs from the config the checkpoint was trained with
    (a hand-edited config.yaml too); refused unless `force`, or unless `cfg` is the config a
    forced resume already accepted (`accepted`, its `resumed` event's) and the checkpoint
    predates. The checkpoint's config is read as the current code reads it, so a parameter
    added to a component since (with its default) is not a change."""
    try:
        trained = config_to_dict(parse_config(state["config"]))
    except ConfigError:  # a config this code no longer reads: compare as written
        trained = state["config"]
    current = config_to_dict(cfg)
    changes = config_changes(trained, current)
    already = accepted is not None and not config_changes(accepted, json.loads(json.dumps(current)))
    if changes and not force and not already:
        shown = ", ".join(changes[:6]) + (" ..." if len(changes) > 6 else "")
        raise ConfigError(
            f"config.yaml of run {path.parent.name} differs from its checkpoint {path} "
            f"({shown}), so it was edited after the run started; restore it, or resume with "
            "--force to train on with it"
        )
    return changes


def _as_tuple(value: Any) -> Any:
    """random.setstate needs tuples where a checkpoint round trip may give lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value
