"""Hand-built run folders for the comparison tests: run.json, config.yaml, a registry row with
its epochs, an event log, and an eval.npz holding only what every evaluation has (`confusion`,
`labels`, the names), made from per-image predictions that the tests keep as the reference."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from engine.runs import RunRegistry
from tests.tui.fixtures import epoch_metrics, make_events, typed

CLASSES = ["apple", "bear", "cloud", "dolphin", "maple", "rose"]
COARSE = ["living", "things"]
FINE_TO_COARSE = np.array([1, 0, 1, 0, 1, 1])
IMAGES_PER_CLASS = 30


@dataclass
class Made:
    run_id: str
    labels: np.ndarray  # int [N], the true class of each test image
    preds: np.ndarray  # int [N], the predicted class


def recipe(optim: str = "sgd", lr: float = 0.1, seed: int = 0) -> dict:
    return {
        "description": f"{optim} at {lr}",
        "model": {"name": "wrn", "depth": 10, "width": 1},
        "data": {"dataset": "cifar100", "batch_size": 32, "data_dir": "/somewhere"},
        "augment": [{"name": "random_crop", "padding": 4}, {"name": "hflip"}],
        "optim": {"name": optim, "lr": lr},
        "train": {"epochs": 3, "seed": seed, "device": "cpu"},
    }


def predictions(skill: list[float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image labels and predictions: class k right with probability skill[k], else a wrong
    class drawn at random (seeded)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), IMAGES_PER_CLASS)
    right = rng.random(len(labels)) < np.asarray(skill)[labels]
    wrong = (labels + rng.integers(1, len(CLASSES), len(labels))) % len(CLASSES)
    return labels, np.where(right, labels, wrong)


def make_compared_run(
    root: Path,
    run_id: str,
    config: dict,
    skill: list[float],
    *,
    preset: str = "quickstart",
    noise_seed: int = 0,
    edited: bool = False,
    started: float = 0.0,
) -> Made:
    """A finished run folder under `root` with its registry row; `skill`: each class's chance
    of a right prediction."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    meta = {"run_id": run_id, "preset": preset, "created_ns": int(started * 1e9) + 1}
    if edited:
        meta["edited"] = True
    (run_dir / "run.json").write_text(json.dumps(meta))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    labels, preds = predictions(skill, noise_seed)
    confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    np.add.at(confusion, (labels, preds), 1)
    np.savez(
        run_dir / "eval.npz",
        confusion=confusion,
        labels=labels,
        class_names=np.array(CLASSES),
        coarse_names=np.array(COARSE),
        fine_to_coarse=FINE_TO_COARSE,
    )
    epochs = config["train"]["epochs"]
    registry = RunRegistry(root)
    registry.start(run_id, preset=preset, dataset="cifar100", model="wrn", config=config,
                   device="cpu", epochs=epochs, at=1_767_268_800.0 + started)  # fmt: skip
    for e in range(1, epochs + 1):
        metrics = epoch_metrics(e, epochs)
        metrics["val_top1"] += 0.01 * noise_seed + 0.1 * (config["optim"]["name"] == "adamw")
        registry.record_epoch(run_id, e, metrics | {"best_val_top1": None})
    top1 = float((labels == preds).mean())
    registry.finish(run_id, "done", {"test_top1": top1, "epochs_done": epochs})
    with (run_dir / "events.jsonl").open("w") as f:
        for event in make_events(run_id, epochs, steps_per_epoch=10, step_events=2):
            f.write(typed(event).to_json() + "\n")
    return Made(run_id, labels, preds)


SKILL_A = [0.5, 0.6, 0.7, 0.5, 0.6, 0.7]
SKILL_B = [0.95, 0.6, 0.8, 0.45, 0.3, 0.7]  # B: apple much better, maple much worse


def two_arms(root: Path, seeds: tuple[int, ...] = (0, 1, 2)) -> tuple[list[Made], list[Made]]:
    """Arm A (sgd) and arm B (adamw, other class skills), one run per seed; ids sort A before B.
    Runs of one seed share their random draws, as runs of one seed share data order and
    augmentation: a class of the same skill in both arms comes out the same."""
    a, b = [], []
    for i, seed in enumerate(seeds):
        config = recipe("sgd", 0.1, seed)
        run_id = f"20260101-12000{i}-sgd-a{i}a{i}"
        a.append(make_compared_run(root, run_id, config, SKILL_A, noise_seed=seed, started=i))
    for i, seed in enumerate(seeds):
        config, run_id = recipe("adamw", 0.001, seed), f"20260102-12000{i}-adamw-b{i}b{i}"
        b.append(
            make_compared_run(
                root, run_id, config, SKILL_B, preset="adamw", noise_seed=seed, started=10 + i
            )
        )
    return a, b
