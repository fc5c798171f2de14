"""Reproducibility cards: every field of a finished run's card, from the files of its folder."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
from pathlib import Path

import pytest

from engine import card as cards
from engine.card import CARD_FIELDS, build_card, write_card, write_card_safely
from tests.tui.fixtures import RUN_ID, make_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def finished(tmp_path: Path) -> Path:
    """A finished run folder (the dashboard tests' fixture) that belongs to a sweep."""
    run_dir = make_run(tmp_path)
    meta = {"run_id": RUN_ID, "preset": "quickstart", "sweep_id": "tiny-0a1b2c3d"}
    (run_dir / "run.json").write_text(json.dumps({**meta, "recipe": "base", "seed": 0}))
    (run_dir / "config.yaml").write_text(
        "model: {name: wrn10_2}\ndata: {dataset: synthetic}\ntrain: {epochs: 12, seed: 0}\n"
    )
    return run_dir


def test_the_card_of_a_finished_run_has_every_field_filled(finished):
    card = build_card(finished)
    assert tuple(card) == CARD_FIELDS
    summary = json.loads((finished / "summary.json").read_text())
    assert (card["run_id"], card["preset"], card["status"]) == (RUN_ID, "quickstart", "done")
    assert card["sweep"] == {"sweep_id": "tiny-0a1b2c3d", "recipe": "base", "seed": 0}
    assert card["seeds"] == {"train.seed": 0}
    assert card["config"]["model"] == {"name": "wrn10_2"}
    assert card["dataset"]["name"] == "synthetic" and card["dataset"]["synthetic"] is True
    assert card["device"] == "cpu"
    assert card["test"]["top1"] == summary["test_top1"]
    assert card["test"]["top5"] == summary["test_top5"]
    assert card["test"]["top1_last"] == summary["test_top1_last"]
    assert card["validation"]["best_val_top1"] == summary["best_val_top1"]
    assert card["validation"]["best_epoch"] == 12
    assert [p["epoch"] for p in card["validation"]["curve"]] == list(range(1, 13))
    assert card["timing"]["wall_s"] == summary["wall_s"] and card["timing"]["sessions"] == 1
    assert card["timing"]["finished"] > card["timing"]["started"]
    for section in ("dataset", "timing", "test"):
        missing = [k for k, v in card[section].items() if v is None]
        expected_missing = {"test": ["loss", "top5_last"], "timing": ["train_s"]}.get(section, [])
        assert missing == expected_missing, section  # the fixture's summary has no such keys
    assert card["tta"] is None


def test_code_version_is_the_checkouts_commit_and_libraries_their_installed_versions(finished):
    card = build_card(finished)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    assert card["code"]["git_commit"] == (head or None)
    assert card["code"]["package_version"] == importlib.metadata.version("cifar-tui")
    assert card["libraries"]["torch"] == importlib.metadata.version("torch")
    assert card["libraries"]["numpy"] == importlib.metadata.version("numpy")
    assert card["libraries"]["python"].count(".") == 2


def test_outside_a_git_checkout_the_commit_is_null(finished, tmp_path, monkeypatch):
    monkeypatch.setattr(cards, "SOURCE_DIR", tmp_path)  # no .git above a pytest tmp dir
    assert build_card(finished)["code"] == {
        "package_version": importlib.metadata.version("cifar-tui"),
        "git_commit": None,
        "git_dirty": None,
    }


def test_tta_numbers_come_from_the_summary(finished):
    summary = json.loads((finished / "summary.json").read_text())
    tta = {"views": [{"view": "identity"}, {"view": "hflip"}], "top1": 0.61, "top5": 0.9}
    (finished / "summary.json").write_text(json.dumps({**summary, "tta": tta}))
    card = write_card(finished)
    assert card["tta"] == tta
    assert "| test with TTA (2 distinct views, best checkpoint) | 61.00 % | 90.00 % |" in (
        (finished / "card.md").read_text()
    )


def test_card_files_are_written_and_the_markdown_holds_the_numbers(finished):
    card = write_card(finished)
    assert json.loads((finished / "card.json").read_text())["test"] == card["test"]
    md = (finished / "card.md").read_text()
    top1 = f"{100 * card['test']['top1']:.2f} %"
    assert f"| test, best-on-validation checkpoint | {top1} |" in md
    assert "(SYNTHETIC)" in md and "sweep `tiny-0a1b2c3d`" in md
    assert f"Expected calibration error (15 bins, best checkpoint): {card['test']['ece']:.4f}" in md
    assert "model:\n  name: wrn10_2" in md


def test_a_card_that_cannot_be_written_is_a_warning_not_an_error(finished, capsys):
    (finished / "card.json").mkdir()  # a folder where the file should go
    write_card_safely(finished)
    assert "warning: no run card" in capsys.readouterr().err
