"""Typed run configuration: YAML presets, `--set key=value` overrides, validation, resolution.

A config has fixed sections (`data`, `train`, `eval`: dataclasses) and component sections
(`model`, `optim`, `schedule`, `loss`, `sam`, `mix`, and the ordered list `augment`): a catalog
`name` plus that spec's parameters (`engine.catalog`). Everything is checked before a run
starts: unknown keys (with the nearest valid key), wrong types and out-of-range values raise
`ConfigError`.

This module and the catalogs it reads are torch-free, so the dashboard can use them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine import strict_yaml
from engine.catalog import (
    AUGMENTATIONS,
    COMPONENTS,
    DATASETS,
    LOADERS,
    MIXES,
    SAM_VARIANTS,
    Catalog,
    UnknownNameError,
)
from engine.config_values import check_choice, check_range, coerce, unknown_key
from engine.errors import ConfigError
from engine.presets import preset_path, read_yaml
from engine.tta_views import unique_views

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")
MAX_EPOCHS = 100_000  # beyond any real run; a bigger number overflowed the registry's INTEGER
MAX_SEED = 2**32 - 1  # numpy's seeding takes 32 bits


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
        default="cifar100",
        metadata=_meta("cifar100 | synthetic", choices=tuple(DATASETS.names())),
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
            choices=tuple(LOADERS.names()),
        ),
    )


@dataclass
class TrainConfig:
    epochs: int = field(default=200, metadata=_meta("training epochs", lo=1, hi=MAX_EPOCHS))
    seed: int = field(
        default=0,
        metadata=_meta("seed for data split, init and augmentation", lo=0, hi=MAX_SEED),
    )
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
    """A catalog entry chosen by `name`, with every one of its parameters resolved."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


SIZING_AUTO = "auto"


@dataclass
class RunConfig:
    description: str = ""
    # "auto": the launcher sizes the recipe to the device before the run (engine.sizing);
    # afterwards what it chose, as the run's header shows it ("cpu: 10,000-image subset, ...")
    sizing: str = ""
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
TOP_LEVEL = ["description", "sizing", *COMPONENTS, *SECTION_CLASSES]


# --------------------------------------------------------------------------- helpers


def fast_options(train: TrainConfig, device_type: str) -> tuple[bool, bool]:
    """(bf16 autocast, channels_last) for a run on `device_type`: as set, else on for CUDA only
    (on the CPU both are honoured when asked for, but slower for most models)."""
    auto = device_type == "cuda"
    bf16 = auto if train.bf16 is None else train.bf16
    channels_last = auto if train.channels_last is None else train.channels_last
    return bf16, channels_last


def check_device(name: str) -> str:
    """The forms `train.device` accepts (auto | cpu | cuda | cuda:N | mps); ConfigError else."""
    if not _DEVICE_RE.match(name):
        raise ConfigError(f"--device {name!r} is not valid (auto | cpu | cuda | cuda:N)")
    return name


# --------------------------------------------------------------------------- components


def _parse_component(raw: Any, path: str, catalog: Catalog) -> Component:
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping with a 'name' key, got {raw!r}")
    if "name" not in raw:
        raise ConfigError(f"{path}.name is missing (valid: {', '.join(catalog.names())})")
    name = raw["name"]
    try:
        spec = catalog.get(str(name))
    except UnknownNameError as exc:  # names the nearest valid one
        raise ConfigError(f"{path}.name: {exc}") from None
    params = spec.resolve({})
    for key, value in raw.items():
        if key == "name":
            continue
        param = spec.param(key)
        if param is None:
            raise unknown_key(path, key, ["name", *params])
        params[key] = coerce(value, param.type, f"{path}.{key}")
    for param in spec.params:
        if param.limit is not None:
            lo, hi, open_lo = param.limit
            check_range(params[param.name], f"{path}.{param.name}", lo, hi, open_lo=open_lo)
        if param.choices is not None:
            check_choice(params[param.name], f"{path}.{param.name}", param.choices)
    fault = spec.check(params) if spec.check is not None else None
    if fault is not None:
        raise ConfigError(f"{path}.{fault}")
    return Component(str(name), params)


def _optional_component(raw: Any, path: str, catalog: Catalog) -> Component | None:
    return None if raw in (None, "none") else _parse_component(raw, path, catalog)


def _parse_section(raw: Any, path: str, cls: type) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            raise unknown_key(path, str(key), list(fields))
        f = fields[key]
        key_path = f"{path}.{key}"
        v = coerce(value, str(f.type), key_path)
        meta = f.metadata
        check_range(v, key_path, meta.get("lo"), meta.get("hi"))
        if meta.get("choices"):
            check_choice(v, key_path, meta["choices"])
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
            raise unknown_key("", str(key), TOP_LEVEL)
    cfg = RunConfig()
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError("description must be a string")
    cfg.description = description
    sizing = raw.get("sizing") or ""
    if not isinstance(sizing, str):
        raise ConfigError(f"sizing must be a string ({SIZING_AUTO!r}: sized to the device)")
    cfg.sizing = sizing
    for section in ("model", "optim", "schedule", "loss"):
        default = getattr(cfg, section)
        cfg_raw = raw.get(section, {"name": default.name})
        setattr(cfg, section, _parse_component(cfg_raw, section, COMPONENTS[section]))
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


def _check_split(cfg: RunConfig) -> None:
    """The validation split, the subset and the batch must fit the dataset's training set (the
    engine checks the files it reads again)."""
    d = cfg.data
    n = DATASETS.get(d.dataset).train_images
    train = d.subset
    if n is not None:
        if d.val_size >= n:
            raise ConfigError(
                f"data.val_size = {d.val_size} is out of range: {d.dataset} has {n} training "
                f"images; use 0..{n - 1}"
            )
        left = n - d.val_size
        if d.subset is not None and d.subset > left:
            raise ConfigError(
                f"data.subset = {d.subset} is larger than the {left} training images left "
                f"after holding out data.val_size = {d.val_size}"
            )
        train = d.subset or left
    if train is not None and d.batch_size > train:
        raise ConfigError(
            f"data.batch_size = {d.batch_size} is larger than the training set ({train} "
            f"images): not one full batch; use at most {train}"
        )


def _check_combination(cfg: RunConfig) -> None:
    """Refuse combinations that cannot work, with the reason."""
    _check_split(cfg)
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
    try:
        value = strict_yaml.load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"--set {path}: not a valid YAML value: {strict_yaml.one_line(exc)}"
        ) from None
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
            raise unknown_key("", key, TOP_LEVEL)
        child = node.get(key)
        if child is None:
            child = [] if key == "augment" else {}
            node[key] = child
        elif isinstance(child, str) and key in COMPONENTS:
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
            raise unknown_key("", last, TOP_LEVEL)
        if last == "name" and len(keys) == 2 and keys[0] in COMPONENTS:
            node.clear()  # a new component starts from its own defaults
        node[last] = value


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

    sizing = {"sizing": cfg.sizing} if cfg.sizing else {}  # absent: old configs hash the same
    return {
        "description": cfg.description,
        **sizing,
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


# a resume's new config (YAML), from the launcher to the engine, which adopts it as config.yaml
# only once it has accepted the resume (tui.orchestration.launcher.ResumePlan)
RESUME_CONFIG_ENV = "CIFAR_TUI_RESUME_CONFIG"

# keys that say where a run executes, not what it computes: they may differ on resume
WHERE_KEYS = frozenset(
    {
        "description",
        "data.data_dir",
        "data.download",
        "data.num_workers",
        "train.device",
        "train.log_interval_s",
        "train.checkpoint_every_s",
    }
)


def flatten_config(value: Any, prefix: str = "") -> dict[str, Any]:
    """A resolved config (`config_to_dict`) as dotted keys: {"optim.lr": 0.1,
    "augment.0.name": "random_crop", ...}."""
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, child in items:
        flat.update(flatten_config(child, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two resolved configs (`config_to_dict`), the
    where-keys excluded: what a resume would change in the recipe."""
    a, b = flatten_config(old), flatten_config(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and k not in WHERE_KEYS)


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
