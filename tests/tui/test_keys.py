"""Keys and commands without an engine: digits in text fields, screen keys, `?`, the palette."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from textual.command import CommandList
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Input, Select

from engine.config import RunConfig
from tests.tui.conftest import wait_for, write_tiny_preset
from tui.app import CifarApp
from tui.screens.keys import KeysScreen
from tui.screens.runs import RunsScreen
from tui.screens.setup import SetupScreen
from tui.screens.setup_form import control_path


async def _setup_ready(app: CifarApp, pilot: Pilot[Any]) -> SetupScreen:
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, SetupScreen) and app.screen.form_ready,
        15,
        "the setup form",
    )
    assert isinstance(app.screen, SetupScreen)
    return app.screen


W = TypeVar("W", bound=Widget)


def _control(setup: SetupScreen, path: tuple[Any, ...], kind: type[W]) -> W:
    return next(w for w in setup.query(kind) if control_path(w) == path)


def test_digits_type_into_a_field_and_alt_digits_switch_screens(tmp_path, checkpoints) -> None:
    async def scenario() -> None:
        write_tiny_preset(tmp_path / "presets")
        app = CifarApp(checkpoints=checkpoints, presets_dir=tmp_path / "presets")
        async with app.run_test(size=(100, 30)) as pilot:
            setup = await _setup_ready(app, pilot)
            epochs = _control(setup, ("train", "epochs"), Input)
            epochs.focus()
            epochs.value = ""
            await pilot.press("1", "2", "4")
            assert epochs.value == "124" and setup.raw["train"]["epochs"] == 124
            assert app.screen is setup  # the digits typed, no screen switched

            await pilot.press("alt+4")  # works from inside the field
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 5, "the runs screen")
            await pilot.press("1")  # outside a text field digits switch
            await wait_for(pilot, lambda: app.screen is setup, 5, "setup again")
            assert epochs.value == "124"

    asyncio.run(scenario())


def test_help_lists_the_bindings_in_effect(tmp_path, checkpoints) -> None:
    async def scenario() -> None:
        write_tiny_preset(tmp_path / "presets")
        app = CifarApp(checkpoints=checkpoints, presets_dir=tmp_path / "presets")
        async with app.run_test(size=(100, 30)) as pilot:
            setup = await _setup_ready(app, pilot)
            await pilot.press("question_mark")
            assert isinstance(app.screen, KeysScreen)
            rows = {(keys, what) for _, keys, what in app.screen.rows}
            assert ("1 / alt+1", "setup") in rows and ("? / f1", "keys") in rows
            assert ("ctrl+l / l", "launch") in rows and ("esc", "presets") in rows
            await pilot.press("escape")
            assert app.screen is setup

            _control(setup, ("train", "epochs"), Input).focus()
            await pilot.press("f1")  # `?` would type; F1 opens the help from a text field
            assert isinstance(app.screen, KeysScreen) and app.screen.in_text_field
            rows = {(keys, what) for _, keys, what in app.screen.rows}
            assert ("alt+1", "setup") in rows and ("ctrl+l", "launch") in rows  # 1 and l would type
            assert not any(keys.startswith("1") for keys, _ in rows)

    asyncio.run(scenario())


def test_palette_launches_the_edited_setup_or_the_preset_as_saved(
    tmp_path, checkpoints, monkeypatch
) -> None:
    async def scenario() -> None:
        write_tiny_preset(tmp_path / "presets")
        app = CifarApp(checkpoints=checkpoints, presets_dir=tmp_path / "presets")
        launched: list[tuple[str, RunConfig, bool]] = []

        async def start_run(preset: str, config: RunConfig, *, edited: bool = False) -> None:
            launched.append((preset, config, edited))

        monkeypatch.setattr(app, "start_run", start_run)  # no engine in this test
        async with app.run_test(size=(100, 30)) as pilot:
            setup = await _setup_ready(app, pilot)
            _control(setup, ("optim", "name"), Select).value = "adamw"
            await wait_for(pilot, lambda: setup.raw["optim"]["name"] == "adamw", 5, "the edit")
            await wait_for(pilot, lambda: setup.form_ready, 5, "the optimizer's parameters")
            assert _control(setup, ("optim", "name"), Select).value == "adamw"
            # the values that still apply are kept, and the user is told which
            assert setup.raw["optim"]["lr"] == 0.05
            assert any("adamw: kept lr 0.05" in n.message for n in app._notifications)

            for query in ("launch the setup config", "start preset tiny"):
                await pilot.press("ctrl+p")
                await wait_for(pilot, lambda: app.screen.query(CommandList), 5, "the palette")
                await pilot.press(*query)
                palette = app.screen

                def offered(q: str = query, palette=palette) -> bool:  # noqa: ANN001
                    commands = palette.query_one(CommandList)
                    return (
                        palette.query_one(Input).value == q
                        and commands.highlighted == 0
                        and str(commands.get_option_at_index(0).prompt).lower().startswith(q)
                    )

                await wait_for(pilot, offered, 10, f"the palette to offer {query}")
                await pilot.pause(0.3)  # the search settles (it runs again per typed key)
                before = len(launched)
                await pilot.press("enter")

                def one_more(n: int = before) -> bool:
                    return len(launched) > n

                await wait_for(pilot, one_more, 10, query)
            (edited_name, edited, was_edited), (saved_name, saved, was_saved) = launched
            assert edited_name == saved_name == "tiny"
            assert was_edited and not was_saved  # the edited one is named as edited
            assert edited.optim.name == "adamw" and saved.optim.name == "sgd"

    asyncio.run(scenario())


def test_auto_true_false_fields_are_menus_that_reach_the_config(tmp_path, checkpoints) -> None:
    """train.bf16 / train.channels_last: null means auto (CUDA only); the form offers all three."""

    async def scenario() -> None:
        write_tiny_preset(tmp_path / "presets")
        app = CifarApp(checkpoints=checkpoints, presets_dir=tmp_path / "presets")
        async with app.run_test(size=(100, 30)) as pilot:
            setup = await _setup_ready(app, pilot)
            bf16 = _control(setup, ("train", "bf16"), Select)
            assert bf16.value == "auto"
            assert [str(option[0]) for option in bf16._options] == ["auto", "true", "false"]
            bf16.value = "true"

            def bf16_setting() -> bool | None | str:
                cfg = setup.config()
                return "not valid" if cfg is None else cfg.train.bf16

            await wait_for(pilot, lambda: bf16_setting() is True, 10, "bf16 = true")
            bf16.value = "auto"
            await wait_for(pilot, lambda: bf16_setting() is None, 10, "bf16 = auto")

    asyncio.run(scenario())


HOSTILE = ["[", "&a [*a]", "!!python/object/apply:os.system [x]", "1e999"]


def test_no_text_typed_into_setup_raises(tmp_path, checkpoints) -> None:
    """YAML's special characters typed into a list field (eval.tta), and hostile YAML in every
    text field: the check line says what is wrong, the app never raises (a `[` in a list field
    used to crash it and lose every edit)."""
    from textual.widgets import Static

    async def scenario() -> None:
        write_tiny_preset(tmp_path / "presets")
        app = CifarApp(checkpoints=checkpoints, presets_dir=tmp_path / "presets")
        async with app.run_test(size=(100, 30)) as pilot:
            setup = await _setup_ready(app, pilot)
            tta = _control(setup, ("eval", "tta"), Input)
            tta.focus()
            tta.value = ""
            typed = "[]{}&*!|>'\"%@`#,:-?"
            await pilot.press(*typed)
            await pilot.pause()
            assert app.is_running and app.return_code is None
            assert tta.value == typed, tta.value
            inputs = [w for w in setup.query(Input) if control_path(w) is not None]
            assert len(inputs) > 20
            for field in inputs:
                for text in HOSTILE:
                    field.value = text
            await pilot.pause()
            assert app.is_running and app.return_code is None
            check = str(setup.query_one("#check", Static).render())
            assert check.startswith("✗ ")

    asyncio.run(scenario())
