"""Learning: short CPU runs really learn, on synthetic and on real CIFAR-100 data."""

from __future__ import annotations

import pytest

from engine.config import load_config
from engine.events import EpochEnd, EventWriter, read_events
from engine.trainer import Trainer
from tests.conftest import real_cifar_or_skip

pytestmark = pytest.mark.e2e  # starts engine processes or trains: see pyproject's markers


def _train(tmp_path, preset: str, overrides: list[str]) -> dict:
    cfg = load_config(preset, overrides)
    return Trainer(cfg, tmp_path, "test-run", preset, EventWriter(tmp_path / "events.jsonl")).run()


def test_synthetic_run_ends_clearly_above_its_start(tmp_path):
    tiny = [
        "model.name=wrn",
        "model.depth=10",
        "model.width=1",
        "data.subset=3000",
        "train.epochs=3",
    ]
    summary = _train(tmp_path, "quickstart", tiny)
    epochs = [e for e in read_events(tmp_path / "events.jsonl") if isinstance(e, EpochEnd)]
    # measured: val top-1 7.5 % -> 16.5 %, test 17.7 % (chance 1 %)
    assert epochs[0].val_top1 is not None and epochs[-1].val_top1 is not None
    assert epochs[-1].val_top1 > epochs[0].val_top1 + 0.05, [e.val_top1 for e in epochs]
    assert summary["test_top1"] > 0.10


def test_real_cifar100_subset_beats_chance_by_a_wide_margin(tmp_path):
    root = real_cifar_or_skip()
    summary = _train(
        tmp_path,
        "resnet18",
        [
            f"data.data_dir={root}",
            "data.subset=2000",
            "data.val_size=1000",
            "data.download=false",
            "data.num_workers=0",
            "data.batch_size=32",
            "model.name=wrn",
            "model.depth=10",
            "model.width=1",
            "train.epochs=5",
            "schedule.warmup_epochs=0.3",
            "optim.lr=0.05",
            "augment=[]",
        ],
    )
    assert summary["dataset"] == "cifar100" and not summary["synthetic"]
    assert summary["test_size"] == 10_000 and summary["train_size"] == 2000
    # measured: 8.2 % top-1, 25 % top-5 in 38 s; chance is 1 % / 5 %
    assert summary["test_top1"] > 0.05, summary["test_top1"]
    assert summary["test_top5"] > 0.15, summary["test_top5"]
