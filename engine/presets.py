"""The preset files: where they live, reading them (strict safe YAML), their descriptions."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from engine import strict_yaml
from engine.config_values import nearest
from engine.errors import ConfigError

PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"


def yaml_names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def named_yaml(ref: str, folder: Path, kind: str, listed: str) -> Path:
    """`ref` as a path to a YAML file, else as the name of one in `folder` (`kind` and `listed`
    word the error: "unknown preset 'x'; did you mean ...? (available: ...)")."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"{kind} file {path} does not exist")
        return path
    candidate = folder / f"{ref}.yaml"
    if candidate.is_file():
        return candidate
    names = yaml_names(folder)
    near = nearest(ref, names)
    hint = f"; did you mean {near!r}?" if near else ""
    raise ConfigError(f"unknown {kind} {ref!r}{hint} ({listed}: {', '.join(names) or 'none'})")


def preset_names() -> list[str]:
    return yaml_names(PRESETS_DIR)


def preset_path(preset: str) -> Path:
    """A preset name from presets/ or a path to a YAML file."""
    return named_yaml(preset, PRESETS_DIR, "preset", "available")


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
