"""The component catalogs: one description per component, honoured by its implementations."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from engine.catalog import COMPONENTS, DATASETS, LOADERS, Catalog, Spec, UnknownNameError
from engine.catalog.spec import param
from engine.config_values import check_choice, check_range, coerce

ROOT = Path(__file__).resolve().parents[2]
ALL: dict[str, Catalog] = {**COMPONENTS, "loader": LOADERS, "dataset": DATASETS}
SPECS = [(kind, spec) for kind, catalog in ALL.items() for spec in catalog.entries()]
IDS = [f"{kind}:{spec.name}" for kind, spec in SPECS]
# what the engine passes each kind's implementation positionally, before the spec's parameters
ENGINE_ARGS = {
    "model": ["num_classes"],
    "optim": ["model"],
    "sam": ["optimizer"],
    "schedule": ["total_steps", "steps_per_epoch"],
    "loss": ["num_classes", "class_counts"],
    "augment": [],
    "mix": [],
}


def _keyword_names(fn: object, skip: int) -> tuple[list[str], dict[str, inspect.Parameter]]:
    params = list(inspect.signature(fn).parameters.values())  # type: ignore[arg-type]
    positional = [p.name for p in params[:skip]]
    return positional, {p.name: p for p in params[skip:]}


@pytest.mark.parametrize(
    ("kind", "spec"),
    [s for s in SPECS if s[0] in ENGINE_ARGS],
    ids=[i for i, s in zip(IDS, SPECS, strict=True) if s[0] in ENGINE_ARGS],
)
def test_implementations_take_exactly_the_spec_parameters_and_hold_no_defaults(kind, spec):
    """The spec is the one description: its implementation (and its per-image reference) takes
    the engine's arguments, then exactly the spec's parameters and fixed arguments by keyword,
    with no default of its own to drift from the spec's."""
    expected = {p.name for p in spec.params} | set(spec.fixed)
    for impl in [spec.load(), *([spec.load_reference()] if spec.reference else [])]:
        engine_args = ENGINE_ARGS[kind]
        positional, rest = _keyword_names(impl, len(engine_args))
        assert positional == engine_args, (spec.impl, positional)
        taken = {n for n, p in rest.items() if p.default is inspect.Parameter.empty}
        assert taken == expected, (spec.name, impl)
        for name in expected:
            assert rest[name].kind in (
                inspect.Parameter.KEYWORD_ONLY,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
            ), (spec.name, name)


def test_every_augmentation_names_its_batched_and_its_reference_implementation():
    for spec in COMPONENTS["augment"].entries():
        assert spec.impl.split(":")[0] in ("engine.augment_batch", "engine.augment_policies")
        assert spec.reference is not None and spec.reference.startswith("engine.augment:")


@pytest.mark.parametrize(("kind", "spec"), SPECS, ids=IDS)
def test_defaults_have_their_type_and_satisfy_their_limits_and_choices(kind, spec):
    assert spec.description.strip() and "\n" not in spec.description
    assert spec.load() is not None  # the dotted path resolves
    for p in spec.params:
        assert coerce(p.default, p.type, p.name) == p.default, (spec.name, p.name)
        if p.limit is not None:
            lo, hi, open_lo = p.limit
            check_range(p.default, p.name, lo, hi, open_lo=open_lo)
        if p.choices is not None:
            check_choice(p.default, p.name, p.choices)


def test_build_fills_defaults_and_refuses_an_unknown_parameter():
    catalog = Catalog(
        "thing",
        [Spec("a", "an a", "builtins:dict", params=(param("x", "int", 3),), fixed={"y": 1})],
    )
    assert catalog.build("a") == {"x": 3, "y": 1}
    assert catalog.build("a", x=5) == {"x": 5, "y": 1}
    with pytest.raises(TypeError, match="takes no parameter 'y'"):
        catalog.build("a", y=1)
    with pytest.raises(UnknownNameError, match="did you mean 'a'"):
        catalog.get("aa")
    with pytest.raises(ValueError, match="described twice"):
        Catalog("thing", [Spec("a", "", "m:f"), Spec("a", "", "m:g")])


def test_list_defaults_are_not_shared_between_resolutions():
    spec = COMPONENTS["schedule"].get("multistep")
    first = spec.resolve({})
    first["milestones"].append(999.0)
    assert 999.0 not in spec.resolve({})["milestones"]


def test_catalogs_and_the_config_layer_import_without_torch():
    code = (
        "import engine.catalog, engine.config, engine.presets, engine.tta_views, sys; "
        "print(sorted(m for m in ('torch', 'torchvision', 'sklearn', 'numpy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_datasets_train_images_is_the_size_its_implementation_gives():
    """The catalog's size (checked before a run folder exists) is the dataset's real one: the
    synthetic set generated here, CIFAR-100's published 50,000."""
    from engine.catalog import DATASETS
    from engine.data import make_synthetic

    assert DATASETS.get("synthetic").train_images == len(make_synthetic(0)[0])
    assert DATASETS.get("cifar100").train_images == 50_000
