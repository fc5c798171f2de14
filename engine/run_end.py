"""The test at the end of a session: after training, and when a stop asked for after an epoch
ends a long run early (it is the normal way to end one: its best checkpoint is tested as it stops,
the run stays `interrupted`, and a resume trains on and tests again at its end). A run stopped by
a signal, or diverged, is not tested here (the Results screen offers to evaluate it)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from engine.evaluation import Stopped
from engine.outcome import RunSummary

if TYPE_CHECKING:
    from engine.trainer import Trainer


def tested(trainer: Trainer, summary: RunSummary) -> RunSummary:
    """`summary` with the test pass's entries, when the session ends in one; a signal inside the
    pass leaves the run `interrupted` with its checkpoints as trained (a resume evaluates)."""
    stopped_early = summary.status == "interrupted" and trainer.stop_signal is None
    ends_tested = summary.status == "done" or stopped_early
    if not (ends_tested and trainer.cfg.eval.test and trainer.history):
        return summary
    last_epoch = trainer.history[-1]["epoch"]
    try:
        tests = trainer.evaluator.test_pass(trainer.model, trainer.ema, trainer.data, last_epoch)
    except Stopped as stopped:
        trainer.stop_signal = stopped.signum
        return dataclasses.replace(summary, status="interrupted")
    return dataclasses.replace(summary, **tests)
