"""Setup: pick a preset, edit it through menus filled from the registries and the config
dataclasses, check it, preview the augmentations, save it as a preset, launch it.

The screen edits a raw config mapping (the YAML form); every change is validated with
`parse_config`, whose ConfigError text is shown as is. What may be edited comes from
`setup_fields` (plain records of the engine's metadata), the form's rows from `setup_form`.
"""

from __future__ import annotations

import asyncio
import copy
import re
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Footer, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from engine.config import RunConfig, config_to_dict, dump_config, load_config, parse_config
from engine.errors import ConfigError
from engine.presets import named_files, preset_description, user_folder, yaml_names
from tui.screens.common import CifarScreen, ConfirmScreen, TitleBar
from tui.screens.setup_check import check_raw, summary_line
from tui.screens.setup_dialogs import (
    DiscardEditsScreen,
    JumpScreen,
    JumpTarget,
    PresetNameScreen,
    jump_targets,
)
from tui.screens.setup_fields import (
    COMPONENT_TITLES,
    NONE,
    component_defaults,
    component_names,
    is_component_kind,
    switch_component,
)
from tui.screens.setup_form import (
    Path_,
    aug_widgets,
    control_path,
    form_blocks,
    parse_value,
    section_widgets,
    value_text,
)


class SetupScreen(CifarScreen):
    DEFAULT_CSS = """
    SetupScreen #left { width: 26; border-right: solid $panel-lighten-2; }
    SetupScreen #presets { height: 1fr; border: none; text-wrap: nowrap; text-overflow: ellipsis; }
    SetupScreen #preset-doc { height: auto; max-height: 4; padding: 0 1; color: $text-muted; }
    SetupScreen #form { padding: 0 1; }
    SetupScreen .section { text-style: bold; margin-top: 1; color: $accent; }
    SetupScreen .doc { color: $text-muted; margin: 0 0 0 2; height: auto; }
    SetupScreen .block { height: auto; }
    SetupScreen #augs { height: auto; }
    SetupScreen .aug { height: auto; border-left: tall $panel-lighten-2; margin: 0 0 0 2; }
    SetupScreen .aug-head { height: 1; }
    SetupScreen .aug-head > Select { width: 22; }
    SetupScreen .aug-head > Button { min-width: 5; width: 5; margin: 0 0 0 1; }
    SetupScreen #add-aug { height: 1; border: none; min-width: 20; margin: 0 0 0 2; }
    SetupScreen #check { height: auto; max-height: 4; padding: 0 1; }
    SetupScreen #check.-ok { color: $success; }
    SetupScreen #check.-bad { color: $error; }
    SetupScreen #check.-warn { color: $warning; }
    """
    BINDINGS = [
        Binding("ctrl+l,l", "launch", "launch"),
        Binding("ctrl+g,g", "preview", "aug preview"),
        Binding("ctrl+s,s", "save", "save preset"),
        Binding("ctrl+o,o", "sections", "sections"),
        Binding("ctrl+f,slash", "find", "find field"),
        Binding("ctrl+n", "add_aug", "add aug", show=False),
        Binding("escape", "focus_presets", "presets", show=False),
    ]

    def __init__(self, *, presets_dir: Path | None = None) -> None:
        super().__init__()
        # a folder given (tests): only its presets, saved there; else every source, saved to
        # the user folder (engine.presets: ./presets, the user folder, the bundled book)
        self.presets_dir = None if presets_dir is None else Path(presets_dir)
        self.preset: str | None = None
        self.raw: dict[str, Any] = config_to_dict(parse_config({}))
        self._loaded: dict[str, Any] = copy.deepcopy(self.raw)  # the preset as loaded or saved
        self.error: str | None = None
        self._built = False
        self._form_lock = asyncio.Lock()

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield TitleBar("Setup", id="title")
        with Horizontal():
            with Vertical(id="left"):
                yield Label(" presets", classes="section")
                yield OptionList(id="presets")
                yield Static("", id="preset-doc")
            # not a focus stop itself: Tab from the presets lands on the first field
            with VerticalScroll(id="form", can_focus=False):
                yield Static("building the form ...", classes="doc", id="form-wait")
        yield Static("", id="check")
        yield Footer()

    def on_mount(self) -> None:
        """Preset list, title and check line now; the form (~200 widgets, most of a second on a
        small CPU) after the first frame is on the terminal."""
        self.load_preset_list()
        names = self.preset_names()
        first = "quickstart" if "quickstart" in names else (names[0] if names else None)
        self._load_preset(first)
        if first is not None:
            self.load_preset_list(highlight=first)  # its description shows at once
        self.validate()
        self.query_one("#presets", OptionList).focus()
        self.call_after_refresh(self._build_later)

    def _build_later(self) -> None:
        self.run_worker(
            self.rebuild_form(), group="form", name="building the form", exit_on_error=False
        )

    def preset_names(self) -> list[str]:
        if self.presets_dir is not None:
            return yaml_names(self.presets_dir)
        return [e.name for e in named_files("preset")]

    def preset_file(self, name: str) -> Path:
        if self.presets_dir is not None:
            return self.presets_dir / f"{name}.yaml"
        return next((e.path for e in named_files("preset") if e.name == name), Path(name))

    @property
    def save_folder(self) -> Path:
        """Where `s` saves a preset: the user folder (never the installed package)."""
        return self.presets_dir if self.presets_dir is not None else user_folder("preset")

    def load_preset_list(self, highlight: str | None = None) -> None:
        options = self.query_one("#presets", OptionList)
        options.clear_options()
        names = self.preset_names()
        options.add_options([Option(n, id=n) for n in names])
        target = highlight or self.preset
        if target in names:
            options.highlighted = names.index(target)
            self._show_preset_doc(target)

    @on(OptionList.OptionHighlighted, "#presets")
    def _preset_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self._show_preset_doc(event.option.id)

    def _show_preset_doc(self, name: str) -> None:
        path = self.preset_file(name)
        try:
            doc = preset_description(path)
        except ConfigError as exc:
            doc = str(exc)
        self.query_one("#preset-doc", Static).update(Text(doc))

    @property
    def edited(self) -> bool:
        """The form differs from the preset as it was loaded (or saved)."""
        try:
            return config_to_dict(parse_config(self.raw)) != self._loaded
        except ConfigError:
            return True  # a value that does not parse is an edit too

    @on(OptionList.OptionSelected, "#presets")
    async def _preset_selected(self, event: OptionList.OptionSelected) -> None:
        name = event.option.id
        if not name:
            return
        if not self.edited:
            await self._pick_preset(name)
            return

        async def answered(discard: bool | None) -> None:
            if discard:
                await self._pick_preset(name)
            else:
                self.load_preset_list()  # the list shows the preset being edited again
                self.notify("kept your edits: save them with s, or launch with l")

        question = (
            f"Setup has edits to preset {self.preset or '-'} that are not saved. Discard them "
            f"and load {name}?"
        )
        self.app.push_screen(DiscardEditsScreen(question), answered)

    async def _pick_preset(self, name: str) -> None:
        await self.select_preset(name)
        self.notify(f"preset {name} loaded: edit it on the right (Tab)")

    def _load_preset(self, name: str | None) -> bool:
        if name is None:
            return True
        try:
            cfg = load_config(str(self.preset_file(name)))
        except ConfigError as exc:
            self.notify(f"preset {name}: {exc}", severity="error", timeout=10)
            return False
        self.preset = name
        self.raw = config_to_dict(cfg)
        self._loaded = copy.deepcopy(self.raw)
        return True

    async def select_preset(self, name: str | None) -> None:
        if self._load_preset(name):
            self.validate()
            await self.rebuild_form()

    # ------------------------------------------------------------------ the form

    @property
    def form_ready(self) -> bool:
        """The form shows `self.raw` (built, and no rebuild in progress)."""
        return self._built and not self._form_lock.locked()

    async def rebuild_form(self) -> None:
        """Rebuild every section, one block at a time (the screen stays live in between).

        A lock serialises rebuilds: a preset picked while the form is being built waits its turn.
        """
        async with self._form_lock:
            form = self.query_one("#form", VerticalScroll)
            await form.remove_children()
            for block in form_blocks(self.raw):
                await form.mount(block)
            self._built = True

    async def rebuild_section(self, section: str) -> None:
        """Rebuild one component's block (its name changed: other parameters)."""
        async with self._form_lock:
            block = self.query_one(f"#sec-{section}", Vertical)
            await block.remove_children()
            await block.mount_all(section_widgets(section, self.raw))

    async def rebuild_augs(self, focus: str | None = None) -> None:
        async with self._form_lock:
            box = self.query_one("#augs", Vertical)
            await box.remove_children()
            await box.mount_all(aug_widgets(self.raw))
        self.validate()
        if focus is not None:
            found = self.query(f"#{focus}")
            if found:
                found.first().focus()

    # ------------------------------------------------------------------ edits

    def _set(self, path: Path_, value: Any) -> bool:
        """Store `value` at `path`; False when it was there already (a control just mounted)."""
        node: Any = self.raw
        for key in path[:-1]:
            node = node[key]
        if isinstance(node, dict) and path[-1] in node and node[path[-1]] == value:
            return False
        node[path[-1]] = value
        return True

    def set_field(self, path: Path_, value: Any) -> None:
        """Set one config field from outside the form (the LR finder's "apply"): its control
        shows the value, and the check line is redone."""
        if not self._set(path, value):
            return
        for widget in self.query("#form Input"):
            if control_path(widget) == path and isinstance(widget, Input):
                widget.value = value_text(value)
        self.validate()

    @staticmethod
    def _path_of(widget: Widget) -> Path_ | None:
        """Where a control's value goes; None for controls that are not config fields, or were
        removed by a rebuild (a late Changed from a replaced component must not write into the
        new one)."""
        path = control_path(widget)
        return path if path is not None and widget.is_attached else None

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        path = self._path_of(event.input)
        if path is None:
            return
        value = event.value if path == ("description",) else parse_value(event.value)
        if self._set(path, value):
            self.validate()

    @on(Checkbox.Changed)
    def _checkbox_changed(self, event: Checkbox.Changed) -> None:
        path = self._path_of(event.checkbox)
        if path is None:
            return
        if self._set(path, event.value):
            self.validate()

    @on(Select.Changed)
    async def _select_changed(self, event: Select.Changed) -> None:
        path = self._path_of(event.select)
        if path is None or event.value is Select.NULL:
            return
        if path[-1] == "name" and is_component_kind(path[0]):
            node: Any = self.raw
            for key in path[:-2]:
                node = node[key]
            current = node[path[-2]]
            if (current or {}).get("name", NONE) == event.value:
                return
            if event.value == NONE:
                node[path[-2]] = None
            else:  # the values that still apply carry over; the user is told which
                switched = switch_component(path[0], current, str(event.value))
                node[path[-2]] = switched.component
                if current and current.get("name") not in (None, NONE):
                    title = COMPONENT_TITLES.get(path[0], "augmentation")
                    self.notify(switched.note(title), timeout=8)
            if path[0] == "augment":
                await self.rebuild_augs()
                self._focus_path(path)
            else:
                await self.rebuild_section(path[0])
                self._focus_path(path)
            self.validate()
            return
        if self._set(path, event.value):
            self.validate()

    def _focus_path(self, path: Path_) -> None:
        for widget in self.query("#form Select, #form Input, #form Checkbox"):
            if control_path(widget) == path:
                widget.focus()
                widget.scroll_visible(animate=False)
                return

    @on(Button.Pressed)
    async def _button(self, event: Button.Pressed) -> None:
        bid = event.button.id or ""
        augs = self.raw.setdefault("augment", [])
        if bid == "add-aug":
            await self.action_add_aug()
            return
        m = re.match(r"aug-(up|down|del)-(\d+)$", bid)
        if not m:
            return
        op, i = m.group(1), int(m.group(2))
        focus = None
        if op == "del":
            del augs[i]
        elif op == "up" and i > 0:
            augs[i - 1], augs[i] = augs[i], augs[i - 1]
            focus = f"aug-up-{i - 1}"
        elif op == "down" and i < len(augs) - 1:
            augs[i + 1], augs[i] = augs[i], augs[i + 1]
            focus = f"aug-down-{i + 1}"
        await self.rebuild_augs(focus=focus)

    async def action_add_aug(self) -> None:
        used = {a.get("name") for a in self.raw.get("augment") or []}
        names = component_names("augment")
        name = next((n for n in names if n not in used), names[0])
        self.raw.setdefault("augment", []).append(component_defaults("augment", name))
        await self.rebuild_augs()
        last = len(self.raw["augment"]) - 1
        self._focus_path(("augment", last, "name"))

    # ------------------------------------------------------------------ check, save, run

    def validate(self) -> bool:
        """Run `--run`'s own check on the edits and show its outcome on the check line."""
        check = self.query_one("#check", Static)
        result = check_raw(self.raw)
        self._title()
        if result.config is None:
            self.error = result.error
            check.set_classes("-bad")
            check.update(Text(f"✗ {result.error}"))
            return False
        self.error = None
        line = f"✓ valid: {summary_line(result.config)}"
        if result.warnings:
            check.set_classes("-warn")
            line += "".join(f"\n! {w}" for w in result.warnings)
        else:
            check.set_classes("-ok")
        check.update(Text(line))
        return True

    def _title(self) -> None:
        synthetic = (self.raw.get("data") or {}).get("dataset") == "synthetic"
        tag = Text(" SYNTHETIC ", style="bold reverse") if synthetic else ""
        self.query_one("#title", TitleBar).set(f"preset {self.preset or '-'}", tag)

    def config(self) -> RunConfig | None:
        result = check_raw(self.raw)
        if result.config is None:
            self.notify(str(result.error), title="config not valid", severity="error", timeout=10)
        return result.config

    async def action_launch(self) -> None:
        cfg = self.config()
        if cfg is None:
            return
        await self.cifar.start_run(self.preset or "custom", cfg, edited=self.edited)

    def action_preview(self) -> None:
        cfg = self.config()
        if cfg is None:
            return
        from tui.screens.preview import PreviewScreen

        self.app.push_screen(PreviewScreen(dump_config(cfg)))

    def action_save(self) -> None:
        if self.config() is None:
            return

        def named(name: str | None) -> None:
            if not name:
                return
            path = self.save_folder / f"{name}.yaml"
            if path.exists():
                self.app.push_screen(
                    ConfirmScreen(f"Preset {name} exists. Overwrite {path}?", yes="Overwrite"),
                    lambda yes: self._write_preset(name, path) if yes else None,
                )
            else:
                self._write_preset(name, path)

        suggestion = f"{self.preset}-custom" if self.preset else "my-preset"
        self.app.push_screen(PresetNameScreen(self.save_folder, suggestion), named)

    def _write_preset(self, name: str, path: Path) -> None:
        cfg = self.config()
        if cfg is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(dump_config(cfg))
        tmp.replace(path)
        self.preset = name
        self._loaded = config_to_dict(cfg)
        self.load_preset_list(highlight=name)
        self._title()
        self.notify(f"saved {path.resolve()}")

    # ------------------------------------------------------------------ navigation

    def jump_targets(self) -> list[JumpTarget]:
        controls = self.query("#form Select, #form Input, #form Checkbox")
        return jump_targets(p for p in map(control_path, controls) if p is not None)

    def _jump(self, query: str) -> None:
        if not self.form_ready:
            self.notify("the form is still being built", severity="warning")
            return

        def went(target: JumpTarget | None) -> None:
            if target is not None:
                self._focus_path(target.path)

        self.app.push_screen(JumpScreen(self.jump_targets(), query), went)

    def action_sections(self) -> None:
        """A list of the form's sections and fields to jump to."""
        self._jump("§")

    def action_find(self) -> None:
        """Find a field by (part of) its name."""
        self._jump("")

    def action_focus_presets(self) -> None:
        self.query_one("#presets", OptionList).focus()
