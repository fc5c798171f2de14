"""Typed run configuration: YAML presets, `--set key=value` overrides, validation, resolution.

A config has fixed sections (`data`, `train`, `eval`: dataclasses) and component sections
(`model`, `optim`, `schedule`, `loss`, and the ordered list `augment`): a registry `name` plus
that builder's keyword-only parameters. Everything is checked before a run starts: unknown keys
(with the nearest valid key), wrong types and out-of-range values raise `ConfigError`.

This module and the registries it reads are torch-free, so the dashboard can use them.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.augment import AUGMENTATIONS
from engine.datafiles import DATASETS
from engine.errors import ConfigError
from engine.losses import LOSSES
from engine.mix import MIXES
from engine.models import MODELS
from engine.optim import OPTIMIZERS, SAM_VARIANTS
from engine.registry import Registry
from engine.schedule import SCHEDULES
from engine.tta import unique_views

LOADERS = ("device", "torchvision")  # engine.loader.LOADER_CLASSES implements each

PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def _meta(
    doc: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[str, ...] | None = None,
    pattern: re.Pattern[str] | None = None,
) -> dict[str, Any]:
    return {"doc": doc, "lo": lo, "hi": hi, "choices": choices, "pattern": pattern}


@dataclass
class DataConfig:
    dataset: str = field(
        default="cifar100", metadata=_meta("cifar100 | synthetic", choices=DATASETS)
    )
    data_dir: str | None = field(
        default=None,
        metadata=_meta("folder holding cifar-100-python/ (else $CIFAR_TUI_DATA, ./data)"),
    )
    download: bool = field(default=True, metadata=_meta("download CIFAR-100 when missing"))
    batch_size: int = field(default=128, metadata=_meta("training batch size (images)", lo=1))
    val_size: int = field(
        default=5000, metadata=_meta("held-out stratified validation images", lo=0)
    )
    subset: int | None = field(
        default=None, metadata=_meta("train on only N training images (stratified)", lo=1)
    )
    num_workers: int = field(default=2, metadata=_meta("DataLoader worker processes", lo=0, hi=64))
    augment_chunk: int = field(
        default=4096,
        metadata=_meta(
            "device loader: augment this many images at once (whole batches, at least one)",
            lo=1,
        ),
    )
    loader: str = field(
        default="device",
        metadata=_meta(
            "device: the dataset on the training device, batched augmentation there (fast path) "
            "| torchvision: per-image transforms in DataLoader workers (reference)",
            choices=LOADERS,
        ),
    )


@dataclass
class TrainConfig:
    epochs: int = field(default=200, metadata=_meta("training epochs", lo=1))
    seed: int = field(default=0, metadata=_meta("seed for data split, init and augmentation", lo=0))
    device: str = field(
        default="auto", metadata=_meta("auto | cpu | cuda | cuda:N", pattern=_DEVICE_RE)
    )
    bf16: bool | None = field(
        default=None,
        metadata=_meta("bf16 autocast: true | false | null (auto: on CUDA, not on the CPU)"),
    )
    channels_last: bool | None = field(
        default=None,
        metadata=_meta("channels_last memory: true | false | null (auto: on CUDA, not on the CPU)"),
    )
    max_steps_per_epoch: int | None = field(
        default=None, metadata=_meta("cap on steps per epoch (smoke runs)", lo=1)
    )
    ema_decay: float | None = field(
        default=None,
        metadata=_meta("keep an EMA of the weights (e.g. 0.999) and evaluate it", lo=0, hi=1),
    )
    checkpoint_every_s: float = field(
        default=600.0, metadata=_meta("also save last.pt inside an epoch this often", lo=1)
    )
    max_bad_steps: int = field(
        default=20, metadata=_meta("consecutive non-finite losses before 'diverged'", lo=1)
    )
    compile: bool = field(
        default=False, metadata=_meta("torch.compile the model (CUDA; minutes of warm-up)")
    )
    compile_mode: str = field(
        default="default",
        metadata=_meta(
            "torch.compile mode: default | reduce-overhead (CUDA graphs of forward and backward) "
            "| max-autotune",
            choices=("default", "reduce-overhead", "max-autotune"),
        ),
    )
    log_interval_s: float = field(
        default=0.5, metadata=_meta("seconds between step events", lo=0.05, hi=60)
    )
    sync_bn: bool = field(
        default=False,
        metadata=_meta("with --gpus N > 1: BatchNorm statistics over the global batch"),
    )


@dataclass
class EvalConfig:
    batch_size: int = field(default=1000, metadata=_meta("evaluation batch size", lo=1))
    test: bool = field(default=True, metadata=_meta("evaluate best and last on the test set"))
    tta: list[str] = field(
        default_factory=list,
        metadata=_meta("test-time augmentation views of the best checkpoint (engine.tta); [] off"),
    )


@dataclass
class Component:
    """A registry entry chosen by `name`, with its resolved keyword parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunConfig:
    description: str = ""
    model: Component = field(default_factory=lambda: Component("resnet18"))
    data: DataConfig = field(default_factory=DataConfig)
    augment: list[Component] = field(default_factory=list)
    optim: Component = field(default_factory=lambda: Component("sgd"))
    sam: Component | None = None  # SAM / ASAM around the optimizer; None: plain steps
    mix: Component | None = None  # MixUp / CutMix on each batch (soft targets); None: off
    schedule: Component = field(default_factory=lambda: Component("cosine"))
    loss: Component = field(default_factory=lambda: Component("cross_entropy"))
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


SECTION_CLASSES: dict[str, type] = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig}
COMPONENT_REGISTRIES: dict[str, Registry[Any]] = {
    "model": MODELS,
    "optim": OPTIMIZERS,
    "schedule": SCHEDULES,
    "loss": LOSSES,
    "augment": AUGMENTATIONS,
    "sam": SAM_VARIANTS,
    "mix": MIXES,
}
TOP_LEVEL = ["description", *COMPONENT_REGISTRIES, *SECTION_CLASSES]


# --------------------------------------------------------------------------- helpers


def _nearest(word: str, options: list[str]) -> str | None:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return close[0] if close else None


def _unknown_key(path: str, key: str, valid: list[str]) -> ConfigError:
    near = _nearest(key, valid)
    prefix = f"{path}." if path else ""
    hint = f"; did you mean {prefix}{near}?" if near else ""
    return ConfigError(
        f"unknown key {prefix}{key}{hint} (valid keys: {', '.join(prefix + v for v in valid)})"
    )


def fast_options(train: TrainConfig, device_type: str) -> tuple[bool, bool]:
    """(bf16 autocast, channels_last) for a run on `device_type`: as set, else on for CUDA only
    (on the CPU both are honoured when asked for, but slower for most models)."""
    auto = device_type == "cuda"
    bf16 = auto if train.bf16 is None else train.bf16
    channels_last = auto if train.channels_last is None else train.channels_last
    return bf16, channels_last


def coerce(value: Any, annotation: str, key: str) -> Any:
    """Convert a YAML / --set value to the annotated type (`int`, `float | None`, ...)."""
    ann = annotation.replace(" ", "")
    if ann.endswith("|None") or ann.startswith("None|"):
        if value is None or value == "null" or value == "none":
            return None
        if ann in ("bool|None", "None|bool"):
            if value == "auto":
                return None
            if not isinstance(value, bool) and str(value).lower() not in (
                "true",
                "false",
                "yes",
                "no",
            ):
                raise ConfigError(f"{key} must be true, false or auto (null), got {value!r}")
        ann = ann.replace("|None", "").replace("None|", "")
    if ann.startswith(("tuple[", "list[")):
        inner = ann[ann.index("[") + 1 : -1].split(",")
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        if ann.startswith("tuple[") and len(value) != len(inner):
            raise ConfigError(f"{key} must have {len(inner)} values, got {len(value)}")
        item_ann = inner[0]
        out = [coerce(v, item_ann, f"{key}[{i}]") for i, v in enumerate(value)]
        return out
    if ann == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if ann == "int":
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if number.is_integer():
                    return int(number)
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if ann == "float":
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if ann == "str":
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} must be a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {annotation}")


def check_range(
    value: Any, key: str, lo: float | None, hi: float | None, *, open_lo: bool = False
) -> None:
    if value is None or isinstance(value, bool | str):
        return
    values = value if isinstance(value, list) else [value]
    for v in values:
        too_low = lo is not None and (v <= lo if open_lo else v < lo)
        if too_low or (hi is not None and v > hi):
            lo_txt = "-inf" if lo is None else f"{lo:g}"
            hi_txt = "inf" if hi is None else f"{hi:g}"
            bracket = "(" if open_lo or lo is None else "["
            raise ConfigError(f"{key} = {v!r} is out of range {bracket}{lo_txt}, {hi_txt}]")


def _check_choice(value: Any, key: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        near = _nearest(str(value), list(allowed))
        hint = f"; did you mean {near!r}?" if near else ""
        raise ConfigError(f"{key} = {value!r} is not one of {', '.join(allowed)}{hint}")


# --------------------------------------------------------------------------- components


def component_params(registry: Registry[Any], name: str) -> dict[str, inspect.Parameter]:
    """The keyword-only parameters of a registered builder: what a config may set."""
    sig = inspect.signature(registry.get(name))
    return {p.name: p for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _parse_component(raw: Any, path: str, registry: Registry[Any]) -> Component:
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping with a 'name' key, got {raw!r}")
    if "name" not in raw:
        raise ConfigError(f"{path}.name is missing (valid: {', '.join(registry.names())})")
    name = raw["name"]
    if name not in registry:
        near = _nearest(str(name), registry.names())
        hint = f"; did you mean {near!r}?" if near else ""
        raise ConfigError(
            f"{path}.name: unknown {registry.kind} {name!r}{hint} "
            f"(valid: {', '.join(registry.names())})"
        )
    spec = component_params(registry, name)
    limits = registry.limits(name)
    params: dict[str, Any] = {}
    for key, param in spec.items():
        params[key] = param.default
    for key, value in raw.items():
        if key == "name":
            continue
        if key not in spec:
            raise _unknown_key(path, key, ["name", *spec])
        ann = spec[key].annotation
        ann_text = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
        params[key] = coerce(value, ann_text, f"{path}.{key}")
    for key, (lo, hi, open_lo) in limits.items():
        check_range(params.get(key), f"{path}.{key}", lo, hi, open_lo=open_lo)
    for key, allowed in registry.choices(name).items():
        _check_choice(params.get(key), f"{path}.{key}", allowed)
    return Component(str(name), params)


def _optional_component(raw: Any, path: str, registry: Registry[Any]) -> Component | None:
    return None if raw in (None, "none") else _parse_component(raw, path, registry)


def _parse_section(raw: Any, path: str, cls: type) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            raise _unknown_key(path, str(key), list(fields))
        f = fields[key]
        key_path = f"{path}.{key}"
        v = coerce(value, str(f.type), key_path)
        meta = f.metadata
        check_range(v, key_path, meta.get("lo"), meta.get("hi"))
        if meta.get("choices"):
            _check_choice(v, key_path, meta["choices"])
        if meta.get("pattern") is not None and v is not None and not meta["pattern"].match(v):
            raise ConfigError(f"{key_path} = {v!r} is not valid ({meta['doc']})")
        values[key] = v
    return cls(**values)


def parse_config(raw: Any) -> RunConfig:
    """Validate a raw mapping (from YAML) and resolve every default. Raises ConfigError."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    for key in raw:
        if key not in TOP_LEVEL:
            raise _unknown_key("", str(key), TOP_LEVEL)
    cfg = RunConfig()
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError("description must be a string")
    cfg.description = description
    for section in ("model", "optim", "schedule", "loss"):
        default = getattr(cfg, section)
        cfg_raw = raw.get(section, {"name": default.name})
        setattr(cfg, section, _parse_component(cfg_raw, section, COMPONENT_REGISTRIES[section]))
    augment = raw.get("augment", []) or []
    if not isinstance(augment, list):
        raise ConfigError("augment must be a list of {name: ..., param: value} entries")
    cfg.sam = _optional_component(raw.get("sam"), "sam", SAM_VARIANTS)
    cfg.mix = _optional_component(raw.get("mix"), "mix", MIXES)
    cfg.augment = [
        _parse_component(a, f"augment.{i}", AUGMENTATIONS) for i, a in enumerate(augment)
    ]
    for section, cls in SECTION_CLASSES.items():
        setattr(cfg, section, _parse_section(raw.get(section), section, cls))
    unique_views(cfg.eval.tta, "eval.tta")  # every view name valid (nearest one suggested)
    _check_combination(cfg)
    return cfg


def _check_combination(cfg: RunConfig) -> None:
    """Refuse combinations that cannot work, with the reason."""
    if cfg.data.subset is not None and cfg.data.subset < cfg.data.batch_size:
        raise ConfigError(
            f"data.subset = {cfg.data.subset} is smaller than data.batch_size = "
            f"{cfg.data.batch_size}: not one full training batch"
        )
    jsd = [i for i, a in enumerate(cfg.augment) if a.params.get("jsd")]
    if len(jsd) > 1:
        raise ConfigError(
            f"augment.{jsd[0]} and augment.{jsd[1]} both ask for AugMix's JSD loss; one AugMix "
            "entry can have jsd: true"
        )
    if jsd and cfg.mix is not None:
        raise ConfigError(
            f"augment.{jsd[0]}.jsd = true cannot go with mix.name = {cfg.mix.name}: the "
            "Jensen-Shannon loss compares predictions on views of the same image, and "
            f"{cfg.mix.name} mixes different images; drop one of them"
        )


# --------------------------------------------------------------------------- overrides, IO


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one `a.b=c` (or `augment.0.p=0.3`) override to a raw config mapping in place.

    The value is parsed as YAML (`0.1`, `true`, `[1, 2]`, `null`), then checked like a preset value.
    """
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got {assignment!r}")
    path, text = assignment.split("=", 1)
    keys = path.strip().split(".")
    if not all(keys):
        raise ConfigError(f"--set: bad key {path!r}")
    value = yaml.safe_load(text) if text.strip() else None
    node: Any = raw
    for i, key in enumerate(keys[:-1]):
        where = ".".join(keys[: i + 1])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(
                    f"--set {path}: {where} is not an index of the list (0..{len(node) - 1})"
                )
            node = node[int(key)]
            continue
        if i == 0 and key not in TOP_LEVEL:
            raise _unknown_key("", key, TOP_LEVEL)
        child = node.get(key)
        if child is None:
            child = [] if key == "augment" else {}
            node[key] = child
        elif isinstance(child, str) and key in COMPONENT_REGISTRIES:
            child = {"name": child}
            node[key] = child
        node = child
    last = keys[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"--set {path}: {last} is not an index of the list")
        node[int(last)] = value
    else:
        if len(keys) == 1 and last not in TOP_LEVEL:
            raise _unknown_key("", last, TOP_LEVEL)
        if last == "name" and len(keys) == 2 and keys[0] in COMPONENT_REGISTRIES:
            node.clear()  # a new component starts from its own defaults
        node[last] = value


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
    near = _nearest(preset, names)
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


def load_config(preset: str, overrides: list[str] = ()) -> RunConfig:  # type: ignore[assignment]
    """Load a preset (name or path), apply `key=value` overrides, validate and resolve."""
    raw = read_yaml(preset_path(preset)) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"preset {preset} must be a mapping of sections")
    for assignment in overrides:
        apply_override(raw, assignment)
    return parse_config(raw)


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """Plain, YAML-ready form: components flattened back to `{name: ..., param: ...}`."""

    def comp(c: Component) -> dict[str, Any]:
        return {"name": c.name, **c.params}

    return {
        "description": cfg.description,
        "model": comp(cfg.model),
        "data": dataclasses.asdict(cfg.data),
        "augment": [comp(a) for a in cfg.augment],
        "optim": comp(cfg.optim),
        "sam": comp(cfg.sam) if cfg.sam else None,
        "mix": comp(cfg.mix) if cfg.mix else None,
        "schedule": comp(cfg.schedule),
        "loss": comp(cfg.loss),
        "train": dataclasses.asdict(cfg.train),
        "eval": dataclasses.asdict(cfg.eval),
    }


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def config_hash(cfg: RunConfig) -> str:
    text = json.dumps(config_to_dict(cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def recipe_summary(cfg: RunConfig) -> dict[str, str]:
    """Short columns for a recipe: model, optimizer (+ SAM), loss, augmentation (+ mix), epochs."""

    def with_params(c: Component, keys: tuple[str, ...]) -> str:
        shown = [f"{k} {c.params[k]:g}" for k in keys if c.params.get(k)]
        return " ".join([c.name, *shown])

    optim = with_params(cfg.optim, ("lr",))
    if cfg.sam is not None:
        optim += f" + {with_params(cfg.sam, ('rho',))}"
    loss = with_params(cfg.loss, ("label_smoothing", "gamma", "keep_ratio"))
    augment = ", ".join(a.name for a in cfg.augment) or "none"
    if cfg.mix is not None:
        augment += f" + {cfg.mix.name}"
    if cfg.eval.tta:
        augment += f" (TTA {len(cfg.eval.tta)})"
    return {
        "model": cfg.model.name,
        "optimizer": optim,
        "loss": loss.replace("label_smoothing", "ls"),
        "augmentation": augment,
        "epochs": str(cfg.train.epochs),
    }


def preset_description(path: Path) -> str:
    raw = read_yaml(path)
    if isinstance(raw, dict) and isinstance(raw.get("description"), str):
        return raw["description"].strip().splitlines()[0]
    return ""
