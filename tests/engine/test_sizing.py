"""engine.sizing: the first run's size on a CPU and on a (fake) CUDA device, checked by hand
against the recipe it must give, and recorded as the config's `sizing`."""

from __future__ import annotations

import pytest

from engine.config import config_to_dict, load_config, parse_config
from engine.sizing import DeviceInfo, apply_sizing, first_run_sizing, needs_sizing


@pytest.fixture
def first_run():
    cfg = load_config("first_run")
    assert needs_sizing(cfg) and cfg.data.dataset == "cifar100"
    return cfg


def test_a_cpu_gets_a_subset_and_a_narrow_net(first_run) -> None:
    sized = apply_sizing(first_run, first_run_sizing(DeviceInfo("cpu", "cpu"), "cifar100"))
    assert sized.sizing == "cpu: 10,000-image subset, wrn16_2, 3 epochs"
    assert (sized.model.name, sized.data.subset, sized.data.val_size) == ("wrn16_2", 10_000, 2_000)
    assert (sized.train.epochs, sized.train.device, sized.data.batch_size) == (3, "cpu", 64)
    assert not needs_sizing(sized)


def test_a_gpu_gets_the_whole_training_set_and_a_busy_batch(first_run) -> None:
    sized = apply_sizing(first_run, first_run_sizing(DeviceInfo("cuda", "cuda"), "cifar100"))
    assert sized.sizing == ("cuda: full 45,000-image training set, resnet18, batch 512, 18 epochs")
    assert sized.data.subset is None and 50_000 - sized.data.val_size == 45_000
    assert (sized.model.name, sized.data.batch_size, sized.train.device) == (
        "resnet18",
        512,
        "cuda",
    )
    assert sized.model.params == load_config("resnet18").model.params  # its own defaults
    assert sized.train.epochs == 18 and sized.optim.params["lr"] == pytest.approx(0.4)


def test_offline_the_synthetic_set_is_sized_to_fit(first_run) -> None:
    import dataclasses

    synthetic = dataclasses.replace(
        first_run, data=dataclasses.replace(first_run.data, dataset="synthetic")
    )
    labels = {
        "cpu": "cpu: synthetic 4,000-image subset, wrn16_2, 3 epochs",
        "cuda:1": "cuda:1: full 9,000-image synthetic training set, resnet18, batch 512, 18 epochs",
    }
    for device in (DeviceInfo("cpu", "cpu"), DeviceInfo("cuda", "cuda:1")):
        sized = apply_sizing(synthetic, first_run_sizing(device, "synthetic"))  # parse_config: fits
        assert sized.data.dataset == "synthetic" and sized.train.device == device.name
        assert sized.sizing == labels[device.name]


def test_the_sizing_is_recorded_and_read_back(first_run) -> None:
    sized = apply_sizing(first_run, first_run_sizing(DeviceInfo("cpu", "cpu"), "cifar100"))
    raw = config_to_dict(sized)
    assert raw["sizing"] == sized.sizing
    assert parse_config(raw) == sized  # config.yaml holds it: a resume is not sized again
    plain = config_to_dict(load_config("quickstart"))
    assert "sizing" not in plain  # configs without it hash as before


def test_values_the_user_set_win_over_the_sizing(first_run) -> None:
    mine = load_config("first_run", ["train.epochs=1", "model.name=wrn10_2"])
    sized = apply_sizing(mine, first_run_sizing(DeviceInfo("cuda", "cuda"), "cifar100"), first_run)
    assert (sized.train.epochs, sized.model.name, sized.data.batch_size) == (1, "wrn10_2", 512)
    assert sized.sizing == "cuda: full 45,000-image training set, wrn10_2, batch 512, 1 epoch"
