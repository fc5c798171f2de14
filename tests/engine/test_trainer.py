"""The training loop (engine.trainer): EMA and mixing inside the step, against formulas."""

from __future__ import annotations

import torch


def test_ema_follows_the_update_formula(tmp_path):
    from engine.config import load_config
    from engine.events import EventWriter
    from engine.trainer import Trainer

    cfg = load_config(
        "quickstart", ["model.name=wrn", "model.depth=10", "model.width=1", "train.ema_decay=0.75"]
    )
    trainer = Trainer(cfg, tmp_path, "ema", "quickstart", EventWriter(tmp_path / "events.jsonl"))
    trainer._setup()
    assert trainer.ema is not None
    before = [p.detach().clone() for p in trainer.ema.parameters()]
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(1.0)
    trainer._update_ema()
    for old, live, kept in zip(
        before, trainer.model.parameters(), trainer.ema.parameters(), strict=True
    ):
        assert torch.allclose(kept, 0.75 * old + 0.25 * live.detach())


def test_mix_feeds_soft_targets_to_the_loss(tmp_path):
    from engine.config import load_config
    from engine.events import EventWriter
    from engine.trainer import Trainer

    cfg = load_config(
        "quickstart",
        ["model.name=wrn", "model.depth=10", "model.width=1", "mix.name=cutmix", "data.subset=320"],
    )
    trainer = Trainer(cfg, tmp_path, "mix", "quickstart", EventWriter(tmp_path / "events.jsonl"))
    trainer._setup()
    seen = []
    loss_fn = trainer.loss_fn

    def spy(logits, target):
        seen.append(target)
        return loss_fn(logits, target)

    trainer.loss_fn = spy
    images, labels = next(iter(trainer.loader))
    zero = torch.zeros((), dtype=torch.float64)
    trainer._step(images, labels, zero.clone(), torch.zeros((), dtype=torch.long))
    (target,) = seen
    assert target.shape == (len(labels), 100) and target.dtype.is_floating_point
    assert torch.allclose(target.sum(1), torch.ones(len(labels)))
    assert (target.max(1).values < 1).any()  # some rows really mixed two labels
