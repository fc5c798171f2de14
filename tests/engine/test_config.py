"""Config: loading, overrides, every refusal with its message, resolution round-trip."""

from __future__ import annotations

import pytest
import yaml

from engine.config import (
    RunConfig,
    apply_override,
    config_hash,
    config_to_dict,
    dump_config,
    load_config,
    parse_config,
)
from engine.errors import ConfigError
from engine.presets import preset_names


def test_every_bundled_preset_loads_and_validates():
    names = preset_names()
    assert {"quickstart", "resnet18", "resnet50", "resnet101"} <= set(names)
    for name in names:
        cfg = load_config(name)
        assert cfg.description, f"preset {name} has no description"


def test_baseline_presets_follow_the_writeup():
    cfg = load_config("resnet50")
    assert cfg.model.name == "resnet50"
    assert cfg.optim.name == "sgd" and cfg.optim.params["lr"] == 0.1
    assert cfg.optim.params["weight_decay"] == 5e-4
    assert cfg.schedule.name == "cosine" and cfg.schedule.params["warmup_epochs"] == 5
    assert cfg.train.epochs == 200 and cfg.data.batch_size == 128
    assert [a.name for a in cfg.augment] == ["random_crop", "hflip", "rotation"]
    assert cfg.augment[2].params["degrees"] == 15


def test_defaults_are_resolved_into_component_params():
    cfg = parse_config({"model": {"name": "wrn"}, "optim": {"name": "sgd"}})
    assert cfg.model.params == {"depth": 28, "width": 10, "dropout": 0.0}
    assert cfg.optim.params["momentum"] == 0.9
    assert cfg.data.val_size == 5000


def test_set_overrides_convert_types():
    cfg = load_config(
        "resnet18",
        [
            "optim.lr=0.05",
            "train.epochs=3",
            "optim.nesterov=true",
            "data.subset=2000",
            "optim.weight_decay=1e-4",
        ],
    )
    assert cfg.optim.params["lr"] == 0.05
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.optim.params["nesterov"] is True
    assert cfg.data.subset == 2000
    assert cfg.optim.params["weight_decay"] == pytest.approx(1e-4)  # "1e-4" is a string in YAML


def test_set_can_index_the_augment_list():
    cfg = load_config("resnet18", ["augment.2.degrees=10"])
    assert cfg.augment[2].params["degrees"] == 10.0


def test_set_on_a_component_name_starts_from_its_defaults():
    cfg = load_config("quickstart", ["model.name=wrn16_4"])
    assert cfg.model.name == "wrn16_4" and cfg.model.params == {"dropout": 0.0}


def test_misspelt_key_names_the_nearest_valid_key():
    with pytest.raises(ConfigError, match=r"unknown key optim\.lrr; did you mean optim\.lr\?"):
        load_config("quickstart", ["optim.lrr=0.1"])


def test_misspelt_section_key_and_top_level():
    with pytest.raises(ConfigError, match=r"did you mean data\.batch_size"):
        parse_config({"data": {"batchsize": 64}})
    with pytest.raises(ConfigError, match=r"unknown key optimizer; did you mean optim"):
        parse_config({"optimizer": {"name": "sgd"}})


def test_unknown_component_name_suggests_nearest():
    with pytest.raises(ConfigError, match=r"unknown model 'resnet19'; did you mean 'resnet18'"):
        parse_config({"model": {"name": "resnet19"}})
    with pytest.raises(
        ConfigError, match=r"augment\.0\.name: unknown augmentation 'hlfip'; did you mean 'hflip'"
    ):
        parse_config({"augment": [{"name": "hlfip"}]})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=ten", r"train\.epochs must be an integer, got 'ten'"),
        ("train.epochs=2.5", r"train\.epochs must be an integer"),
        ("optim.nesterov=3", r"optim\.nesterov must be true or false"),
        ("train.bf16=maybe", r"train\.bf16 must be true, false or auto \(null\), got 'maybe'"),
        ("optim.lr=fast", r"optim\.lr must be a number"),
        ("data.dataset=cifar10", r"data\.dataset = 'cifar10' is not one of cifar100, synthetic"),
        ("train.device=tpu", r"train\.device = 'tpu' is not valid"),
    ],
)
def test_wrong_types_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("quickstart", [override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=0", r"optim\.lr = 0\.0 is out of range \(0, inf\]"),
        ("optim.lr=-0.1", r"optim\.lr = -0\.1 is out of range"),
        ("optim.momentum=1.5", r"optim\.momentum = 1\.5 is out of range \[0, 1\]"),
        ("train.epochs=0", r"train\.epochs = 0 is out of range \[1, 100000\]"),
        ("data.batch_size=0", r"data\.batch_size = 0 is out of range"),
        ("loss.label_smoothing=2", r"loss\.label_smoothing = 2\.0 is out of range \[0, 1\]"),
        ("data.subset=10", r"data\.batch_size = \d+ is larger than the training set \(10 "),
    ],
)
def test_out_of_range_values_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("quickstart", [override])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.val_size=50000"], r"data\.val_size = 50000 is out of range: cifar100 has 50000"),
        (
            ["data.val_size=49000", "data.subset=1001"],
            r"data\.subset = 1001 is larger than the 1000",
        ),
        (
            ["data.subset=null", "data.batch_size=60000"],
            r"data\.batch_size = 60000 is larger than the training set \(45000",
        ),
        (["data.dataset=synthetic", "data.val_size=10000"], r"synthetic has 10000 training"),
    ],
)
def test_a_split_or_batch_larger_than_the_dataset_is_refused_before_the_run(overrides, message):
    """Checked with the config (before a run folder exists), from the dataset's catalog entry;
    the engine checks the files it reads again."""
    with pytest.raises(ConfigError, match=message):
        load_config("quickstart", ["data.dataset=cifar100", "data.val_size=5000", *overrides])


def test_unknown_preset_suggests_nearest():
    with pytest.raises(ConfigError, match=r"unknown preset 'resnet5'; did you mean 'resnet50'"):
        load_config("resnet5")


def test_preset_can_be_a_yaml_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model: {name: wrn16_4}\ndata: {dataset: synthetic}\n")
    cfg = load_config(str(path))
    assert cfg.model.name == "wrn16_4" and cfg.data.dataset == "synthetic"


def test_invalid_yaml_is_refused_with_its_path(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model: {name: [\n")
    with pytest.raises(ConfigError, match="broken.yaml is not valid YAML"):
        load_config(str(path))


def test_bad_set_syntax():
    with pytest.raises(ConfigError, match="expects key=value"):
        apply_override({}, "optim.lr")
    with pytest.raises(ConfigError, match=r"unknown key traim; did you mean train"):
        apply_override({}, "traim.epochs=3")


def test_resolved_config_round_trips_through_yaml():
    cfg = load_config("resnet50", ["optim.lr=0.05", "augment.0.padding=2"])
    again = parse_config(yaml.safe_load(dump_config(cfg)))
    assert again == cfg
    assert config_to_dict(again) == config_to_dict(cfg)
    assert config_hash(again) == config_hash(cfg)
    assert config_hash(load_config("resnet50")) != config_hash(cfg)


def test_empty_config_is_the_documented_default():
    assert parse_config({}) == parse_config(yaml.safe_load(dump_config(RunConfig())))


def test_string_choices_of_a_component_are_checked():
    with pytest.raises(
        ConfigError,
        match=r"augment\.0\.padding_mode = 'reflct' is not one of .*did you mean 'reflect'",
    ):
        load_config("quickstart", ["augment.0.padding_mode=reflct"])


def test_yaml_1_1_exponent_without_a_dot_is_read_as_the_number(tmp_path):
    """YAML 1.1 reads `1e-3` as a string; a float field converts it instead of failing later."""
    path = tmp_path / "adam.yaml"
    path.write_text("optim: {name: adam, lr: 1e-3, weight_decay: 5e-4}\n")
    cfg = load_config(str(path))
    assert cfg.optim.params["lr"] == 0.001 and cfg.optim.params["weight_decay"] == 0.0005


@pytest.mark.parametrize(("value", "expected"), [("auto", None), ("null", None), ("true", True)])
def test_auto_true_false_options_and_where_they_apply(value, expected):
    from engine.config import fast_options

    train = load_config("quickstart", [f"train.bf16={value}"]).train
    assert train.bf16 is expected
    on_cpu, on_cuda = fast_options(train, "cpu"), fast_options(train, "cuda")
    assert on_cpu == (expected is True, False) and on_cuda == (expected is not False, True)
