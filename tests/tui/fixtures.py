"""A deterministic finished run folder (events.jsonl, eval.npz, summary.json, runs.sqlite rows)
for snapshot tests and the redraw benchmark: no engine, no torch, same bytes every time."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from engine.calibration import expected_calibration_error
from engine.events import EVENT_TYPES, Event
from engine.runs import DB_FILE, RunRegistry

T0 = 1_767_268_800.0  # 2026-01-01 12:00:00 UTC
RUN_ID = "20260101-120000-fixture-a1b2"
C, K = 100, 20


def _curves(
    y: np.ndarray, s: np.ndarray, grid: np.ndarray
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """AP, AUC and curves on `grid` for one class (numpy, ties ignored: scores are continuous)."""
    order = np.argsort(-s, kind="stable")
    y = y[order].astype(np.float64)
    tp, fp = np.cumsum(y), np.cumsum(1 - y)
    pos, neg = y.sum(), len(y) - y.sum()
    precision, recall = tp / (tp + fp), tp / pos
    ap = float((precision * y).sum() / pos)
    fpr, tpr = fp / neg, tp / pos
    auc = float(np.trapezoid(np.r_[0, tpr], np.r_[0, fpr]))
    best = np.maximum.accumulate(precision[::-1])[::-1]
    pr = np.interp(grid, np.r_[0.0, recall], np.r_[best[0], best])
    roc = np.interp(grid, np.r_[0.0, fpr], np.r_[0.0, tpr])
    return ap, auc, pr, roc


def fixture_images(n: int, seed: int = 1) -> np.ndarray:
    """n blocky uint8 [3, 32, 32] pictures (4x4 colour blocks, 8 pixels each)."""
    blocks = np.random.default_rng(seed).integers(0, 256, size=(n, 3, 4, 4), dtype=np.uint8)
    return blocks.repeat(8, axis=2).repeat(8, axis=3)


def write_eval(
    run_dir: Path,
    *,
    per_class: int = 20,
    seed: int = 0,
    predictions: bool = True,
    images: bool = True,
) -> dict[str, float]:
    """eval.npz of a 100-class test set; `predictions`: with the predictions a test pass writes
    now (else as written before them: `probs` only), and with `images` a synthetic run's test
    images."""
    rng = np.random.default_rng(seed)
    fine_to_coarse = np.arange(C) // (C // K)
    labels = np.repeat(np.arange(C), per_class)
    n = len(labels)
    skill = np.linspace(0.5, 3.5, C)[rng.permutation(C)]  # some classes much harder than others
    logits = rng.normal(size=(n, C))
    logits[np.arange(n), labels] += skill[labels]
    same_super = fine_to_coarse[labels][:, None] == fine_to_coarse[None, :]
    logits += 0.9 * same_super  # confusions stay mostly within a superclass
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    pred = probs.argmax(1)
    confusion = np.zeros((C, C), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    grid = np.linspace(0, 1, 101)
    ap, auc = np.zeros(C), np.zeros(C)
    pr, roc = np.zeros((C, 101)), np.zeros((C, 101))
    for k in range(C):
        ap[k], auc[k], pr[k], roc[k] = _curves(labels == k, probs[:, k], grid)
    onehot = np.zeros((n, C), dtype=bool)
    onehot[np.arange(n), labels] = True
    micro_ap, micro_auc, _, _ = _curves(onehot.ravel(), probs.ravel(), grid)
    extra: dict[str, Any] = {}
    if predictions:
        top5 = np.argsort(-probs, axis=1, kind="stable")[:, :5]
        extra = {
            "pred_index": np.arange(n, dtype=np.int32),
            "top5_classes": top5.astype(np.int16),
            "top5_probs": np.take_along_axis(probs, top5, axis=1).astype(np.float32),
            "losses": -np.log(probs[np.arange(n), labels]).astype(np.float32),
        }
        if images:
            extra["test_images"] = fixture_images(n)
    np.savez(
        run_dir / "eval.npz",
        **extra,
        confusion=confusion,
        labels=labels,
        probs=probs.astype(np.float16),
        class_names=np.array([f"class-{k:03d}" for k in range(C)]),
        coarse_names=np.array([f"group-{j:02d}" for j in range(K)]),
        fine_to_coarse=fine_to_coarse,
        ap=ap,
        auc=auc,
        macro_ap=np.float64(ap.mean()),
        macro_auc=np.float64(auc.mean()),
        micro_ap=np.float64(micro_ap),
        micro_auc=np.float64(micro_auc),
        curve_grid=grid,
        pr_precision=pr,
        roc_tpr=roc,
    )
    return {
        "test_top1": float((pred == labels).mean()),
        "macro_ap": float(ap.mean()),
        "macro_auc": float(auc.mean()),
        "ece": expected_calibration_error(probs, labels),
    }


def epoch_metrics(e: float, epochs: int) -> dict[str, float]:
    f = e / epochs
    return {
        "train_loss": 4.6 - 3.2 * (1 - math.exp(-4 * f)),
        "train_top1": 0.02 + 0.6 * (1 - math.exp(-3.5 * f)),
        "val_loss": 4.5 - 2.7 * (1 - math.exp(-4 * f)) + 0.15 * f * f,
        "val_top1": 0.03 + 0.52 * (1 - math.exp(-3.5 * f)),
        "val_top5": 0.10 + 0.7 * (1 - math.exp(-3.5 * f)),
        "lr": 0.05 * 0.5 * (1 + math.cos(math.pi * f)),
        "epoch_s": 30.0,
    }


def make_events(
    run_id: str, epochs: int, *, steps_per_epoch: int = 125, step_events: int = 5
) -> list[dict]:
    """The event log of a `epochs`-epoch synthetic run, `step_events` step events per epoch."""
    t = T0
    cfg = {"model": {"name": "wrn10_2"}, "data": {"dataset": "synthetic"}}
    events: list[dict] = [
        dict(type="run_started", t=t, run_id=run_id, preset="quickstart", dataset="synthetic",
             synthetic=True, device="cpu", model="wrn10_2", num_params=315316, epochs=epochs,
             steps_per_epoch=steps_per_epoch, batch_size=32, train_size=4000, val_size=1000,
             test_size=2000, config=cfg, pid=999999),
    ]  # fmt: skip
    total = epochs * steps_per_epoch
    best, best_epoch = 0.0, 0
    for e in range(1, epochs + 1):
        m0, m1 = epoch_metrics(e - 1, epochs), epoch_metrics(e, epochs)
        for i in range(1, step_events + 1):
            frac = i / step_events

            def mix(key: str, frac: float = frac, m0: dict = m0, m1: dict = m1) -> float:
                return m0[key] + frac * (m1[key] - m0[key])

            t += 30.0 / step_events
            step = (e - 1) * steps_per_epoch + round(frac * steps_per_epoch)
            events.append(
                dict(type="step", t=t, epoch=e, step=step,
                     epoch_step=round(frac * steps_per_epoch), steps_per_epoch=steps_per_epoch,
                     total_steps=total, loss=mix("train_loss"), top1=mix("train_top1"),
                     lr=epoch_metrics(e - 1 + frac, epochs)["lr"], img_per_s=133.0,
                     data_wait=0.03)
            )  # fmt: skip
        if m1["val_top1"] > best:
            best, best_epoch = m1["val_top1"], e
        events.append(
            dict(type="epoch_end", t=t, epoch=e, epochs=epochs, train_loss=m1["train_loss"],
                 train_top1=m1["train_top1"], val_loss=m1["val_loss"], val_top1=m1["val_top1"],
                 val_top5=m1["val_top5"], lr=m1["lr"], epoch_s=30.0, img_per_s=133.0,
                 best_val_top1=best, best_epoch=best_epoch, eta_s=30.0 * (epochs - e))
        )  # fmt: skip
        events.append(
            dict(type="checkpoint", t=t, epoch=e, step=e * steps_per_epoch, kind="last",
                 path="last.pt")
        )  # fmt: skip
    return events


def typed(event: dict) -> Event:
    """The engine's own event class for a dict: the fixture breaks loudly if the schema moves."""
    fields = dict(event)
    t = fields.pop("t")
    return EVENT_TYPES[fields.pop("type")](**fields, t=t)


def make_run(root: Path, *, run_id: str = RUN_ID, epochs: int = 12, finished: bool = True) -> Path:
    """A run folder under `root` plus its registry rows; returns the folder."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_id, "preset": "quickstart"}))
    (run_dir / "config.yaml").write_text("model: {name: wrn10_2}\ndata: {dataset: synthetic}\n")
    events = make_events(run_id, epochs)
    t = events[-1]["t"]
    registry = RunRegistry(root)
    registry.start(run_id, preset="quickstart", dataset="synthetic", model="wrn10_2",
                   config={}, device="cpu", epochs=epochs)  # fmt: skip
    for e in range(1, epochs + 1):
        registry.record_epoch(run_id, e, epoch_metrics(e, epochs) | {"best_val_top1": None})
    if finished:
        scores = write_eval(run_dir)
        last = epoch_metrics(epochs, epochs)
        summary = {
            "run_id": run_id, "status": "done", "preset": "quickstart", "dataset": "synthetic",
            "synthetic": True, "model": "wrn10_2", "device": "cpu", "epochs": epochs,
            "epochs_done": epochs, "best_val_top1": last["val_top1"], "best_epoch": epochs,
            "test_top1": scores["test_top1"], "test_top5": 0.8,
            "test_top1_last": scores["test_top1"],
            "macro_ap": scores["macro_ap"], "macro_auc": scores["macro_auc"],
            "ece": scores["ece"],
            "wall_s": t - T0 + 20, "img_per_s": 133.0, "run_dir": str(run_dir),
        }  # fmt: skip
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        for ck in ("best", "last"):
            events.append(
                dict(type="evaluated", t=t + 10, split="test", checkpoint=ck, epoch=epochs,
                     loss=1.9, top1=scores["test_top1"], top5=0.8, count=2000,
                     eval_file="eval.npz")
            )  # fmt: skip
        events.append(dict(type="finished", t=t + 20, status="done", summary=summary))
        registry.finish(run_id, "done", summary)
    with (run_dir / "events.jsonl").open("w") as f:
        for ev in events:
            f.write(typed(ev).to_json() + "\n")
    db = sqlite3.connect(root / DB_FILE)
    with db:
        db.execute(
            "UPDATE runs SET started = ?, heartbeat = ?, pid = 999999 WHERE run_id = ?",
            (T0, t + 20, run_id),
        )
    db.close()
    return run_dir
