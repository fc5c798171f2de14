"""Evaluation during a run: validation after each epoch and the test pass at the end.

Distributed, each rank evaluates its `distributed.shard` of a set with rank 0's BatchNorm
statistics; sums (and, asked for, logits in order) cover the whole set. The test pass
evaluates the last weights and the best-on-validation checkpoint, writes `eval.npz` (confusion
matrix, probabilities, per-class curves) and runs test-time augmentation when configured.

A stop signal is honoured inside the test pass: before each of its batches and after each TTA
forward pass it raises `Stopped` (agreed by every rank for the sharded batches; TTA is rank 0's
alone). Nothing the pass writes is needed to redo it, so the run ends `interrupted` with its
checkpoints as training left them, and a resume runs the test pass again.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine import checkpoint, distributed, metrics, test_hooks
from engine import world as torchrun
from engine.calibration import expected_calibration_error
from engine.config import EvalConfig
from engine.data import DataBundle, ImageSet
from engine.device import Normalizer, autocast
from engine.events import Evaluated, Phase
from engine.predictions import prediction_arrays
from engine.run_record import RunRecord
from engine.system_stats import SystemSampler


class Stopped(Exception):
    """A stop signal (`signum`) came during the test pass."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum


@dataclass
class EvalResult:
    loss: float
    top1: float
    top5: float
    count: int
    logits: torch.Tensor | None = None  # float32 [N, C] on CPU, when asked for


class Evaluator:
    """A run's evaluation, done the way it trains (its normalisation, autocast, device), in
    batches of `eval.batch_size`. The test pass
    reads the run's best.pt, writes its eval.npz and emits the `evaluated` events; it stops when
    `stop_signal()` (the signal the process received, or None) says so."""

    def __init__(
        self,
        cfg: EvalConfig,
        device: torch.device,
        world: torchrun.World,
        normalize: Normalizer,
        amp: bool,
        num_classes: int,
        record: RunRecord,
        stop_signal: Callable[[], int | None],
    ) -> None:
        self.cfg, self.device, self.world = cfg, device, world
        self.stop_signal = stop_signal
        self._passed: Counter[str] = Counter()  # stop points passed, by phase (test hooks)
        self.normalize, self.amp, self.num_classes = normalize, amp, num_classes
        self.batch_size = cfg.batch_size
        self.run_dir, self.events = record.run_dir, record.events
        self._sets: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        gpu = (device.index or 0) if device.type == "cuda" else None
        self.system = SystemSampler(gpu)

    def sample_system(self) -> None:
        """A `system` event, when one is due (at most ~1 a second; rank 0 only)."""
        if self.world.is_main:
            self.system.maybe_emit(self.events)

    def phase(self, name: str, images: int, passes: int = 1, detail: str = "") -> None:
        """Say that a pass other than training starts (a `phase` event; rank 0 only)."""
        if self.world.is_main:
            self.events.emit(Phase(phase=name, images=images, passes=passes, detail=detail))
            self.sample_system()

    @torch.no_grad()
    def evaluate(
        self,
        net: nn.Module,
        data: ImageSet,
        training: nn.Module,
        keep_logits: bool = False,
        stoppable: bool = False,
        phase: tuple[str, str] | None = None,
    ) -> EvalResult:
        """Top-1/top-5/loss of `net` on `data`; `training` is put back in training mode.
        `stoppable`: a stop signal raises `Stopped` before a batch (see `_stop_point`).
        `phase`: (name, detail) of the `phase` event that announces the pass."""
        if phase is not None:
            self.phase(phase[0], len(data), detail=phase[1])
        distributed.broadcast_buffers(net)
        net.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros(2, dtype=torch.long, device=self.device)
        kept = []
        size = self.batch_size
        first, stop = distributed.shard(len(data), self.world)
        on_device = self._on_device(data)
        rounds = math.ceil(math.ceil(len(data) / self.world.size) / size)  # equal on every rank
        for start in range(first, first + rounds * size, size):
            if stoppable:
                self._stop_point("test_batch", agreed=True)
            end = min(start + size, stop)
            if start >= end:  # a shorter shard: this rank only agrees on stopping
                continue
            images, labels = on_device[0][start:end], on_device[1][start:end]
            with autocast(self.device, self.amp):
                logits = net(self.normalize(images)).float()
            loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum")
            correct += metrics.topk_correct(logits, labels, (1, 5))
            if keep_logits:  # gathered on the device when distributed
                kept.append(logits if self.world.distributed else logits.cpu())
        training.train()
        mine = loss_sum.new_tensor([float(stop - first)], dtype=torch.float64)
        totals = distributed.sum_across(
            torch.cat([loss_sum.double().view(1), correct.double(), mine])
        )
        total_loss, c1, c5, count = totals.tolist()
        n = max(int(count), 1)
        all_logits = torch.cat(kept) if kept else None
        if keep_logits and self.world.distributed:
            empty = torch.empty((0, self.num_classes), device=self.device)
            all_logits = distributed.gather_rows(
                all_logits if all_logits is not None else empty, len(data)
            ).cpu()
        return EvalResult(
            loss=total_loss / n,
            top1=c1 / n,
            top5=c5 / n,
            count=int(count),
            logits=all_logits,
        )

    def _stop_point(self, phase: str, agreed: bool) -> None:
        """Raise `Stopped` if a stop signal came. `agreed`: every rank asks at the same points
        and they stop together (one all-reduce), so none waits at a collective the others left.
        A test can pause the engine here (`test_hooks.pause_at`, `PHASE:N` at the N-th point)."""
        self._passed[phase] += 1
        test_hooks.pause_at(f"{phase}:{self._passed[phase]}")
        signum = self.stop_signal() or 0
        if agreed and self.world.distributed:
            flag = torch.tensor([float(signum)], device=self.device)
            signum = int(distributed.agree_max(flag).item())
        if signum:
            raise Stopped(signum)

    def _on_device(self, data: ImageSet) -> tuple[torch.Tensor, torch.Tensor]:
        """`data`'s images and labels on the device, copied once per run (validation is read
        every epoch)."""
        key = id(data)
        if key not in self._sets:
            self._sets[key] = (data.images.to(self.device), data.labels.to(self.device))
        return self._sets[key]

    def test_pass(
        self, model: nn.Module, ema: nn.Module | None, data: DataBundle, last_epoch: int
    ) -> dict[str, Any]:
        """Evaluate the last weights, then the best-on-validation checkpoint (loaded into
        `model` and `ema`), on the test set; the summary's test entries (empty off rank 0).

        When the best epoch is the last one, the weights are the same: one pass serves both. A stop
        signal raises `Stopped` (see `_stop_point`).
        """
        test, run_dir, events, tta_views = data.test, self.run_dir, self.events, self.cfg.tta
        test_hooks.pause_at("test_pass")
        evaluated = ema if ema is not None else model
        best_state = checkpoint.load(run_dir / "best.pt")
        best_epoch = int(best_state["loop"]["epoch"])
        best_is_last = best_epoch == last_epoch
        last = self.evaluate(
            evaluated, test, model, best_is_last, stoppable=True, phase=("testing", "last")
        )
        events.emit(
            Evaluated(
                split="test",
                checkpoint="last",
                epoch=last_epoch,
                loss=last.loss,
                top1=last.top1,
                top5=last.top5,
                count=last.count,
            )
        )
        if best_is_last:
            best = last
        else:
            model.load_state_dict(best_state["model"])
            if ema is not None:
                ema.load_state_dict(best_state["ema"])
            best = self.evaluate(
                evaluated, test, model, True, stoppable=True, phase=("testing", "best")
            )
        assert best.logits is not None
        if not self.world.is_main:  # the other ranks only help evaluate; rank 0 writes, runs TTA
            return {}
        self.phase("results", 0)  # the confusion matrix and per-class curves, then eval.npz
        eval_file = run_dir / "eval.npz"
        curves = write_eval_file(eval_file, best.logits, data)
        events.emit(
            Evaluated(
                split="test",
                checkpoint="best",
                epoch=best_epoch,
                loss=best.loss,
                top1=best.top1,
                top5=best.top5,
                count=best.count,
                eval_file=str(eval_file),
            )
        )
        tta: dict[str, Any] = {}
        if tta_views:  # test-time augmentation of the same best weights
            from engine.tta import evaluate_tta
            from engine.tta_views import unique_views

            distinct = [view.name for view in unique_views(tta_views)]
            self.phase("tta", len(test), len(distinct), ",".join(distinct))
            result = evaluate_tta(
                evaluated,
                test,
                tta_views,
                normalize=self.normalize,
                device=self.device,
                batch_size=self.batch_size,
                amp=self.amp,
                after_view=lambda: self._stop_point("tta", agreed=False),
            )
            events.emit(result.event(checkpoint="best", epoch=best_epoch))
            tta["tta"] = result.to_dict()

        def clean(values: np.ndarray) -> list[float | None]:
            return [None if math.isnan(v) else round(float(v), 6) for v in values]

        return {
            "test_top1": best.top1,
            "test_top5": best.top5,
            "test_loss": best.loss,
            "test_top1_last": last.top1,
            "test_top5_last": last.top5,
            "macro_ap": curves["macro_ap"],
            "macro_auc": curves["macro_auc"],
            "ece": curves["ece"],
            "per_class_ap": clean(curves["ap"]),
            "per_class_auc": clean(curves["auc"]),
            **tta,
        }


def write_eval_file(path: Path, logits: torch.Tensor, data: DataBundle) -> dict[str, Any]:
    """`eval.npz` from the test set's logits (float32 [N, C], in test order): the confusion
    matrix (row = true class), probabilities, names, per-class curves and the predictions error
    analysis shows (`engine.predictions`; a synthetic test set's images too, which the dashboard
    cannot regenerate without torch); returns the curves and the ECE (`engine.calibration`)."""
    probs = torch.softmax(logits, dim=1).numpy()
    labels = data.test.labels.numpy()
    losses = nn.functional.cross_entropy(logits, data.test.labels, reduction="none").numpy()
    confusion = metrics.confusion_matrix(logits.argmax(dim=1), data.test.labels, logits.shape[1])
    curves = metrics.per_class_curves(probs, labels)
    arrays: dict[str, Any] = dict(
        confusion=confusion.numpy(),
        labels=labels,
        probs=probs.astype(np.float16),
        class_names=np.array(data.class_names),
        coarse_names=np.array(data.coarse_names),
        fine_to_coarse=np.array(data.fine_to_coarse),
        **prediction_arrays(probs, losses),
        **curves,
    )
    # the synthetic images are noise that does not compress (5 %): stored as they are
    stored = {"test_images": data.test.images.numpy()} if data.synthetic else {}
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # readers never see half a file
    write_npz(temp, arrays, stored)
    temp.replace(path)
    return {**curves, "ece": expected_calibration_error(probs, labels)}


def write_npz(path: Path, compressed: dict[str, Any], stored: dict[str, Any]) -> None:
    """An .npz archive (what `np.load` reads) with the `compressed` arrays deflated and the
    `stored` ones not (`np.savez_compressed` deflates every member)."""
    with zipfile.ZipFile(path, "w", allowZip64=True) as archive:
        for arrays, method in ((compressed, zipfile.ZIP_DEFLATED), (stored, zipfile.ZIP_STORED)):
            for name, value in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = method
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
