"""The preset and sweep files: where they live, reading them (strict safe YAML), descriptions.

A name is looked up in three folders, the first that has it winning:
1. `./presets` (`./sweeps`) in the working directory: a project's own recipes;
2. the user folder, `$CIFAR_TUI_PRESETS` (`$CIFAR_TUI_SWEEPS`), else the platform's config folder
   (`$XDG_CONFIG_HOME/cifar-tui/presets`, by default `~/.config/cifar-tui/presets`): where the
   dashboard saves presets;
3. the bundled recipe book, package data of `engine.recipes` (in the wheel as in the checkout).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from engine import strict_yaml
from engine.config_values import nearest
from engine.errors import ConfigError

PRESETS_ENV = "CIFAR_TUI_PRESETS"
SWEEPS_ENV = "CIFAR_TUI_SWEEPS"


def bundled_folder(kind: str) -> Path:
    """`engine/recipes/<kind>s`: a real folder, as pip installs wheels unzipped."""
    return Path(str(resources.files("engine.recipes") / f"{kind}s"))


def user_folder(kind: str) -> Path:
    """Where the user's own presets (sweeps) live, and where the dashboard saves presets."""
    env = os.environ.get(PRESETS_ENV if kind == "preset" else SWEEPS_ENV)
    if env:
        return Path(env).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "cifar-tui" / f"{kind}s"


@dataclass(frozen=True)
class Source:
    """A folder of named YAML files and how it is called in listings."""

    label: str  # "./presets", "user", "bundled"
    folder: Path


def sources(kind: str) -> list[Source]:
    """The folders a `kind` ("preset" or "sweep") name is looked up in, first wins."""
    return [
        Source(f"./{kind}s", Path.cwd() / f"{kind}s"),
        Source("user", user_folder(kind)),
        Source("bundled", bundled_folder(kind)),
    ]


@dataclass(frozen=True)
class Named:
    name: str
    path: Path
    source: Source


def named_files(kind: str) -> list[Named]:
    """Every name of `kind`, sorted, each from the first folder that has it."""
    found: dict[str, Named] = {}
    for source in sources(kind):
        for name in yaml_names(source.folder):
            found.setdefault(name, Named(name, source.folder / f"{name}.yaml", source))
    return [found[n] for n in sorted(found)]


def yaml_names(folder: Path) -> list[str]:
    try:
        return sorted(p.stem for p in folder.glob("*.yaml") if p.is_file())
    except OSError:  # an unreadable folder holds no names
        return []


def named_yaml(ref: str, kind: str) -> Path:
    """`ref` as a path to a YAML file, else as the name of a `kind` ("preset", "sweep") in its
    folders (`sources`). The error: "unknown preset 'x'; did you mean ...? (available: ...)"."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"{kind} file {path} does not exist")
        return path
    named = named_files(kind)
    for entry in named:
        if entry.name == ref:
            return entry.path
    names = [e.name for e in named]
    near = nearest(ref, names)
    hint = f"; did you mean {near!r}?" if near else ""
    raise ConfigError(f"unknown {kind} {ref!r}{hint} (available: {', '.join(names) or 'none'})")


def preset_names() -> list[str]:
    return [e.name for e in named_files("preset")]


def preset_path(preset: str) -> Path:
    """A preset name (./presets, the user folder, the bundled book) or a path to a YAML file."""
    return named_yaml(preset, "preset")


_PARSED: dict[tuple[str, int, int, int, int], Any] = {}


def read_yaml(path: Path) -> Any:
    """Strict safe YAML (`engine.strict_yaml`); errors name the file and line. A file read
    before and unchanged since (same inode, size, mtime and ctime) is parsed once: a sweep
    resolves its base preset for every recipe. Callers get their own copy to change."""
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        if key not in _PARSED:
            if len(_PARSED) >= 32:  # a small cache: the few files a sweep reads over and over
                _PARSED.clear()
            _PARSED[key] = strict_yaml.load(path.read_text())
        return copy.deepcopy(_PARSED[key])
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {strict_yaml.one_line(exc)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file (a preset is YAML)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def preset_description(path: Path) -> str:
    raw = read_yaml(path)
    if isinstance(raw, dict) and isinstance(raw.get("description"), str):
        return raw["description"].strip().splitlines()[0]
    return ""
