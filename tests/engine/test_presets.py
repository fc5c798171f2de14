"""Every bundled preset trains: real optimizer steps on CPU with its own optimizer, SAM, loss and
augmentation pipeline (on a tiny synthetic subset, constant lr), with finite losses that fall.

The backbone is swapped for WRN-10-2 to keep this inside the suite's time budget on 2 cores
(a WRN-40-10 SAM step takes tens of seconds there); every registered backbone's forward pass and
parameter count are tested in test_models.py."""

from __future__ import annotations

import math

import pytest
import torch

from engine.config import load_config
from engine.events import EventWriter
from engine.presets import preset_names
from engine.trainer import Trainer

TINY_DATA = [
    "model.name=wrn10_2",
    "data.dataset=synthetic",
    "data.subset=8",
    "data.batch_size=4",
    "data.val_size=100",
    "data.num_workers=0",
    "schedule.warmup_epochs=0",  # the presets' 5 warm-up epochs would keep the lr near 0 here
]
EPOCHS = 6


@pytest.mark.parametrize("preset", preset_names())
def test_preset_takes_real_steps_with_finite_loss(tmp_path, preset):
    cfg = load_config(preset, TINY_DATA)
    trainer = Trainer(cfg, tmp_path, "p", preset, EventWriter(tmp_path / "events.jsonl"))
    trainer._setup()  # the preset's model, optimizer (+ SAM), schedule, loss and augmentations
    losses = []
    loss_fn = trainer.loss_fn

    def recording(logits, target):
        loss = loss_fn(logits, target)
        losses.append(float(loss.detach()))
        return loss

    trainer.loss_fn = recording
    before = [p.detach().clone() for p in trainer.model.parameters()]
    loss_sum, correct = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.long)
    for epoch in range(1, EPOCHS + 1):  # the same 8 images again and again: the loss must fall
        trainer.loader.start(epoch)
        for images, labels in trainer.loader:
            trainer._step(images, labels, loss_sum, correct)
    assert trainer.state.step == 2 * EPOCHS and trainer.state.bad_steps == 0
    assert losses and all(math.isfinite(x) for x in losses)
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first, f"{preset}: mean loss {first:.3f} over the first steps, {last:.3f} last"
    after = list(trainer.model.parameters())
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))


def test_read_yaml_parses_an_unchanged_file_once_and_hands_out_copies(tmp_path, monkeypatch):
    """A sweep resolves its base preset for every recipe: parsed once, each caller its own
    copy, and an edited file read again."""
    import os

    from engine import presets, strict_yaml

    parses: list[str] = []
    real_load = strict_yaml.load

    def counted(text: str):
        parses.append(text)
        return real_load(text)

    monkeypatch.setattr(strict_yaml, "load", counted)
    read_yaml = presets.read_yaml
    path = tmp_path / "p.yaml"
    path.write_text("optim: {lr: 0.1}\n")
    first = read_yaml(path)
    first["optim"]["lr"] = 99
    assert read_yaml(path) == {"optim": {"lr": 0.1}} and len(parses) == 1
    path.write_text("optim: {lr: 0.2}\n")
    os.utime(path, ns=(1, 1))  # a new mtime even where the clock is coarse
    assert read_yaml(path) == {"optim": {"lr": 0.2}}


def test_a_name_is_found_in_dot_presets_then_the_user_folder_then_the_bundled_book(
    tmp_path, monkeypatch
):
    from engine.errors import ConfigError
    from engine.presets import bundled_folder, named_files, preset_path, user_folder

    project, user = tmp_path / "project", tmp_path / "user"
    (project / "presets").mkdir(parents=True)
    user.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.setenv("CIFAR_TUI_PRESETS", str(user))
    bundled = bundled_folder("preset")
    assert preset_path("quickstart") == bundled / "quickstart.yaml"
    (user / "quickstart.yaml").write_text("description: mine\n")
    (user / "mine.yaml").write_text("description: mine\n")
    assert preset_path("quickstart") == user / "quickstart.yaml"  # the user's shadows the book
    (project / "presets" / "quickstart.yaml").write_text("description: project\n")
    assert preset_path("quickstart") == project / "presets" / "quickstart.yaml"
    sources = {e.name: e.source.label for e in named_files("preset")}
    assert sources["quickstart"] == "./presets" and sources["mine"] == "user"
    assert sources["resnet18"] == "bundled"
    with pytest.raises(ConfigError, match=r"unknown preset 'mien'; did you mean 'mine'\?"):
        preset_path("mien")
    monkeypatch.delenv("CIFAR_TUI_PRESETS")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert user_folder("preset") == tmp_path / "xdg" / "cifar-tui" / "presets"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.delenv("CIFAR_TUI_SWEEPS")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_folder("sweep") == tmp_path / "home" / ".config" / "cifar-tui" / "sweeps"
