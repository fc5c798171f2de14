"""The preset files: where they live, reading them (strict safe YAML), their descriptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from engine.config_values import nearest
from engine.errors import ConfigError

PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_path(preset: str) -> Path:
    """A preset name from presets/ or a path to a YAML file."""
    path = Path(preset)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"preset file {path} does not exist")
        return path
    candidate = PRESETS_DIR / f"{preset}.yaml"
    if candidate.is_file():
        return candidate
    names = preset_names()
    near = nearest(preset, names)
    hint = f"; did you mean {near!r}?" if near else ""
    raise ConfigError(f"unknown preset {preset!r}{hint} (available: {', '.join(names)})")


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """Safe YAML (no Python tags) with duplicate keys refused; errors name the file and line."""
    try:
        return yaml.load(path.read_text(), Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        one_line = " ".join(str(exc).split())
        raise ConfigError(f"{path} is not valid YAML: {one_line}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def preset_description(path: Path) -> str:
    raw = read_yaml(path)
    if isinstance(raw, dict) and isinstance(raw.get("description"), str):
        return raw["description"].strip().splitlines()[0]
    return ""
