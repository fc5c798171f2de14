"""Setup keeps a user's edits: another preset is loaded only after asking, a switched component
keeps the values that still apply, a run launched with edits is named as edited, a preset is
saved under a name checked in place; checkboxes say their state without colour."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from textual.widgets import Input, Label, OptionList, Static

from engine.config import RunConfig, dump_config, load_config
from engine.run_record import RunRecord
from tests.tui.conftest import wait_for, write_tiny_preset
from tests.tui.test_keys import _control, _setup_ready
from tui.app import CifarApp
from tui.orchestration import launcher
from tui.screens.setup_dialogs import DiscardEditsScreen, JumpScreen, PresetNameScreen
from tui.screens.setup_fields import switch_component
from tui.screens.setup_form import TickBox, control_path


def _focused_path(app: CifarApp) -> tuple[Any, ...] | None:
    return control_path(app.focused) if app.focused is not None else None


def test_switching_a_component_keeps_the_values_that_still_apply() -> None:
    sgd = {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}
    switched = switch_component("optim", sgd, "adamw")
    assert switched.component["lr"] == 0.1 and switched.component["weight_decay"] == 5e-4
    assert switched.kept == ("lr", "weight_decay")
    assert switched.dropped == ("momentum", "nesterov")
    note = switched.note("optimizer")
    assert note.startswith("optimizer adamw: kept lr 0.1, weight_decay 0.0005")
    assert "dropped momentum, nesterov" in note
    # a value out of the new entry's range is reset to its default, and said so
    reset = switch_component("schedule", {"name": "cosine", "warmup_epochs": 2.0}, "step")
    assert reset.kept == ("warmup_epochs",) and reset.component["name"] == "step"


def test_an_edited_launch_is_named_as_edited_and_records_its_preset(tmp_path, monkeypatch) -> None:
    write_tiny_preset(tmp_path / "presets")
    cfg = load_config(str(tmp_path / "presets" / "tiny.yaml"))
    monkeypatch.setattr(launcher, "start_engine", lambda *a, **k: None)  # no engine process
    edited = launcher.launch("tiny", cfg, tmp_path / "ck", edited=True)
    plain = launcher.launch("tiny", cfg, tmp_path / "ck")
    assert "-tiny-edited-" in edited.run_id and "-edited" not in plain.run_id
    meta = json.loads((edited.run_dir / "run.json").read_text())
    assert meta["preset"] == "tiny" and meta["edited"] is True
    assert "edited" not in json.loads((plain.run_dir / "run.json").read_text())
    # the engine's run_started event carries it (its RunRecord reads run.json)
    assert RunRecord(edited.run_dir, edited.run_id, "tiny", None).edited  # type: ignore[arg-type]
    assert not RunRecord(plain.run_dir, plain.run_id, "tiny", None).edited  # type: ignore[arg-type]
    assert dump_config(cfg) == (edited.run_dir / "config.yaml").read_text()


def test_setup_asks_before_discarding_edits_and_saves_under_a_checked_name(
    tmp_path, checkpoints, monkeypatch
) -> None:
    async def scenario() -> None:
        presets = tmp_path / "presets"
        write_tiny_preset(presets)
        write_tiny_preset(presets, "wide-other-with-a-rather-long-preset-name")
        app = CifarApp(checkpoints=checkpoints, presets_dir=presets)
        launched: list[tuple[str, RunConfig, bool]] = []

        async def start_run(preset: str, config: RunConfig, *, edited: bool = False) -> None:
            launched.append((preset, config, edited))

        monkeypatch.setattr(app, "start_run", start_run)  # no engine in this test
        async with app.run_test(size=(100, 30)) as pilot:
            setup = await _setup_ready(app, pilot)
            # the highlighted preset's description shows before any key
            doc = str(setup.query_one("#preset-doc", Static).render())
            assert "tiny synthetic run" in doc
            assert setup.preset == "tiny" and not setup.edited
            # a long preset name takes one line, cut with an ellipsis
            assert setup.query_one("#presets", OptionList).virtual_size.height == 2

            # the first Tab from the preset list lands on the form's first field, on screen
            assert app.focused is setup.query_one("#presets", OptionList)
            await pilot.press("tab")
            assert _focused_path(app) == ("description",)
            # ctrl+f (`/` outside a text field) finds a field by name, ctrl+o (`o`) lists the
            # sections
            await pilot.press("ctrl+f")
            await wait_for(pilot, lambda: isinstance(app.screen, JumpScreen), 5, "find")
            app.screen.query_one("#jump-query", Input).value = "lr"  # as if typed
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen is setup, 5, "the field")
            assert _focused_path(app) == ("optim", "lr")
            await pilot.press("ctrl+o")
            await wait_for(pilot, lambda: isinstance(app.screen, JumpScreen), 5, "sections")
            titles = [t.title for t in app.screen.shown]  # type: ignore[attr-defined]
            assert titles[:2] == ["§ description (description)", "§ model (model)"]
            app.screen.query_one("#jump-query", Input).value = "§ train"
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen is setup, 5, "the section")
            assert (_focused_path(app) or ("?",))[0] == "train"
            assert app.focused is not None
            form = setup.query_one("#form")
            assert form.scrollable_content_region.contains_region(app.focused.region)

            # a checkbox reads without colour
            box = next(w for w in setup.query(TickBox))
            before = box.value
            assert str(box.render()).startswith("[x]" if before else "[ ]")
            box.value = not before
            await pilot.pause()
            assert str(box.render()).startswith("[ ]" if before else "[x]")
            box.value = before
            await pilot.pause()

            # an edit (sgd -> adamw in the form: tests/tui/test_keys.py)
            _control(setup, ("train", "epochs"), Input).value = "3"
            await wait_for(pilot, lambda: setup.raw["train"]["epochs"] == 3, 5, "the edit")
            assert setup.edited

            # picking another preset asks; keeping the edits keeps them
            presets_list = setup.query_one("#presets", OptionList)
            presets_list.focus()
            presets_list.highlighted = 1  # the other preset
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DiscardEditsScreen), 5, "ask")
            await pilot.press("n")
            await wait_for(pilot, lambda: app.screen is setup, 5, "setup again")
            assert setup.preset == "tiny" and setup.raw["train"]["epochs"] == 3

            # launched with the edits: named as edited
            await setup.action_launch()
            assert launched[-1][0] == "tiny" and launched[-1][2] is True

            # saving: a bad name keeps the dialog and the text, with the reason and the path
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, PresetNameScreen), 5, "save")
            dialog = app.screen
            where = str(dialog.query_one("#where", Label).render())
            assert str(presets.resolve()) in where and where.endswith("tiny-custom.yaml")
            answer = dialog.query_one("#answer", Input)
            answer.value = "bad name!"
            await pilot.press("enter")
            assert app.screen is dialog and answer.value == "bad name!"
            assert "not a preset name" in str(dialog.query_one("#name-error", Label).render())
            answer.value = "mine"
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen is setup, 5, "saved")
            assert (presets / "mine.yaml").is_file() and not setup.edited

    asyncio.run(scenario())


def test_setup_lists_every_preset_source_and_saves_into_the_user_folder(tmp_path, monkeypatch):
    """Without a folder of its own, Setup lists ./presets, the user folder and the bundled book,
    and saves to the user folder: never into the package (site-packages once installed)."""
    from engine.presets import bundled_folder
    from tui.screens.setup import SetupScreen

    user = tmp_path / "user"
    user.mkdir()
    (user / "mine.yaml").write_text("description: my own\n")
    monkeypatch.setenv("CIFAR_TUI_PRESETS", str(user))
    monkeypatch.chdir(tmp_path)
    setup = SetupScreen()
    assert {"mine", "quickstart", "resnet18"} <= set(setup.preset_names())
    assert setup.preset_file("mine") == user / "mine.yaml"
    assert setup.preset_file("quickstart") == bundled_folder("preset") / "quickstart.yaml"
    assert setup.save_folder == user
