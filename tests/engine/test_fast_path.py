"""The fast path: device-resident loader, batched augmentation without host synchronisation, AugMix
JSD views and loss, the step's input-wait and memory readouts.

No GPU in CI: "no host-device synchronisation" is checked on the `meta` device, where every read
of tensor data on the host (`.item()`, `.tolist()`, `nonzero`, boolean indexing, `unique`) raises.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.augment_batch import build_batch_pipeline
from engine.catalog import AUGMENTATIONS, LOADERS
from engine.config import load_config, parse_config
from engine.data import ImageSet
from engine.dispatch_count import DispatchCounter
from engine.errors import ConfigError
from engine.events import EventWriter, Step, read_events
from engine.loader import (
    AugmentedImages,
    DeviceLoader,
    TorchvisionLoader,
    batch_generator,
    jsd_split,
)
from engine.loss_functions import jensen_shannon
from engine.trainer import Trainer
from tests.conftest import ROOT

WRITEUP = [
    ("random_crop", {"padding": 4}),
    ("hflip", {}),
    ("rotation", {"degrees": 15}),
    ("autoaugment", {}),
    ("random_erasing", {}),
]
CPU = torch.device("cpu")


def images_set(n: int = 96, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return ImageSet(images, torch.arange(n) % 10)


# --------------------------------------------------------------------------- no host syncs


def _counted(fn, *args):
    """Run `fn` once to warm up (device constants are copied on first use), then count."""
    fn(*args)
    with DispatchCounter() as counter:
        out = fn(*args)
    return out, counter


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_every_batched_op_runs_without_reading_or_copying_synchronously(name):
    images = torch.zeros(64, 3, 32, 32, dtype=torch.uint8, device="meta")
    pipeline = build_batch_pipeline([(name, {})])
    out, counter = _counted(pipeline, images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8 and out.is_meta
    assert counter.transfers == 0, counter.where
    assert counter.async_uploads <= 1  # the op's draws, in one non-blocking copy


def test_writeup_pipeline_and_jsd_views_run_without_reading_device_data():
    images = torch.zeros(128, 3, 32, 32, dtype=torch.uint8, device="meta")
    out, counter = _counted(build_batch_pipeline(WRITEUP), images, torch.Generator().manual_seed(1))
    assert out.is_meta and out.shape == images.shape
    assert counter.transfers == 0, counter.where
    views = DeviceLoader._build([("hflip", {}), ("augmix", {"jsd": True}), ("cutout", {})])
    out, counter = _counted(views, images, torch.Generator().manual_seed(2))
    assert out.is_meta and out.shape == (3 * 128, 3, 32, 32)
    assert counter.transfers == 0, counter.where


def test_the_transfer_counter_sees_what_a_gpu_would_wait_for():
    meta = torch.device("meta")
    host = torch.zeros(4)
    with DispatchCounter() as counter:
        torch.tensor([1.0, 2.0], device=meta)  # host data copied, blocking
        host.to(meta)  # blocking copy
        host.to(meta, non_blocking=True)  # asynchronous upload
        torch.arange(4, device=meta).mul(2)  # device work only
    assert (counter.transfers, counter.async_uploads) == (2, 1)
    assert counter.ops == 4  # the two copies, arange, mul


def test_mix_copies_its_draws_in_one_asynchronous_upload():
    from engine.catalog import MIXES

    images = torch.zeros(32, 3, 32, 32, dtype=torch.uint8, device="meta")
    labels = torch.zeros(32, dtype=torch.long, device="meta")
    mixer = MIXES.build("mixup_cutmix")
    (_, targets), counter = _counted(mixer, images, labels, 100, torch.Generator().manual_seed(0))
    assert targets.shape == (32, 100)
    assert (counter.transfers, counter.async_uploads) == (0, 1), counter.where


# --------------------------------------------------------------------------- loaders


def test_every_catalogued_loader_is_a_config_choice():
    assert load_config("quickstart").data.loader == "device"
    for name in LOADERS.names():
        assert load_config("quickstart", [f"data.loader={name}"]).data.loader == name


def test_both_loaders_draw_the_same_batches_of_images():
    data = images_set()
    device = DeviceLoader(data, [("hflip", {})], 16, 6, seed=3, device=CPU)
    reference = TorchvisionLoader(data, [("hflip", {})], 16, 6, seed=3, device=CPU, num_workers=0)
    for epoch in (1, 2):
        device.start(epoch)
        reference.start(epoch)
        got = [labels for _, labels in device]
        want = [labels for _, labels in reference]
        assert len(got) == 6
        for a, b in zip(got, want, strict=True):
            assert torch.equal(a, b)
    device.start(1)
    first = [labels for _, labels in device]
    assert not all(torch.equal(a, b) for a, b in zip(first, got, strict=True))  # reshuffled


def test_device_batches_are_the_batched_pipeline_under_the_batch_generator():
    data = images_set()
    components = [("random_crop", {"padding": 4}), ("hflip", {}), ("cutout", {})]
    loader = DeviceLoader(data, components, 32, 3, seed=5, device=CPU)
    loader.start(2)
    batches = list(loader)
    order = torch.randperm(96, generator=torch.Generator().manual_seed(5 * 1_000_003 + 2))
    pipeline = build_batch_pipeline(components)
    for step, (images, labels) in enumerate(batches):
        index = order[step * 32 : (step + 1) * 32]
        expect = pipeline(data.images[index], batch_generator(5, 2, step))
        assert torch.equal(images, expect) and torch.equal(labels, data.labels[index])
    loader.start(2, step=1)  # resuming mid-epoch continues with the same batches
    resumed = list(loader)
    assert len(resumed) == 2
    for (a, la), (b, lb) in zip(resumed, batches[1:], strict=True):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_the_largest_seed_draws_device_batches():
    """train.seed allows 32 bits; the mixed (seed, epoch, step) seeds wrap into torch's 64."""
    from engine.config import MAX_SEED

    data = images_set()
    device = DeviceLoader(data, [("random_crop", {"padding": 4})], 32, 3, seed=MAX_SEED, device=CPU)
    device.start(100_000)
    assert len(list(device)) == 3


CHUNKED: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "writeup": WRITEUP,
    "colour+policies": [
        ("color_jitter", {}),
        ("randaugment", {}),
        ("trivialaugment", {}),
        ("gridmask", {"rotate": 30}),
    ],
    "augmix": [("augmix", {}), ("random_erasing", {"value": "random"})],
    "jsd": [("hflip", {}), ("augmix", {"jsd": True}), ("cutout", {})],
}


@pytest.mark.parametrize("name", sorted(CHUNKED))
@pytest.mark.parametrize("chunk", [16, 48])  # one batch a chunk; three, the last one short
def test_chunks_of_batches_give_every_image_what_its_own_batch_gives_it(name, chunk):
    """Augmenting several batches at once is the per-batch pipeline under each batch's own
    generator, bit for bit, also for a chunk that starts mid-epoch (resume) or ends early."""
    components = CHUNKED[name]
    data = images_set(n=96)
    loader = DeviceLoader(data, components, 16, 5, seed=4, device=CPU, chunk=chunk)
    assert loader.chunk_steps == max(1, chunk // 16)
    pipeline = DeviceLoader._build(components)
    order = torch.randperm(96, generator=torch.Generator().manual_seed(4 * 1_000_003 + 3))
    for first in (0, 2):
        loader.start(3, step=first)
        batches = list(loader)
        assert len(batches) == 5 - first
        for step, (images, labels) in enumerate(batches, start=first):
            index = order[step * 16 : (step + 1) * 16]
            expect = pipeline(data.images[index], batch_generator(4, 3, step))
            assert torch.equal(images, expect), (name, chunk, step)
            assert torch.equal(labels, data.labels[index])


def test_a_chunk_is_augmented_with_one_upload_and_no_blocking_transfer():
    data = images_set(n=128)
    meta = torch.device("meta")
    loader = DeviceLoader(data, WRITEUP, 16, 8, seed=0, device=meta, chunk=64)
    list(loader)  # warm-up: constants are copied to the device once
    with DispatchCounter() as counter:
        batches = list(loader)
    assert len(batches) == 8 and all(x.is_meta and x.shape[0] == 16 for x, _ in batches)
    assert counter.transfers == 0, counter.where
    assert counter.async_uploads == 1 + 2  # the epoch's order, then one per chunk of 4 batches


def test_device_and_torchvision_paths_agree_statistically():
    """Crop + flip over one image repeated: the mean image and the share of flipped copies."""
    image = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    image[..., :16] = 200  # left half bright: a flip moves the brightness to the right
    data = ImageSet(image.expand(2048, -1, -1, -1).clone(), torch.zeros(2048, dtype=torch.long))
    components = [("random_crop", {"padding": 4}), ("hflip", {})]
    means = {}
    for name in LOADERS.names():
        loader = LOADERS.get(name).load()(data, components, 256, 8, 0, CPU, num_workers=0)
        loader.start(1)
        batch = torch.cat([x for x, _ in loader]).float()
        means[name] = batch.mean(0)
        right = batch[..., 20:].mean(dim=(1, 2, 3)) > 100
        assert abs(right.float().mean().item() - 0.5) < 0.05  # ~half flipped, sd ~0.011
    # each pixel's mean brightness agrees between the paths (sd of a pixel mean ~ 2.2)
    assert (means["device"] - means["torchvision"]).abs().max() < 15


# --------------------------------------------------------------------------- AugMix JSD


def test_jensen_shannon_equals_entropy_of_mixture_minus_mean_entropy():
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(5, 7, generator=g, dtype=torch.float64) for _ in range(3)]
    p = [F.softmax(v, dim=1).numpy() for v in views]
    m = np.sum(p, axis=0) / 3

    def entropy(q: np.ndarray) -> np.ndarray:
        return -(q * np.log(q)).sum(1)

    expect = (entropy(m) - sum(entropy(q) for q in p) / 3).mean()
    assert math.isclose(float(jensen_shannon(views)), expect, rel_tol=1e-9)
    same = [views[0]] * 3
    assert abs(float(jensen_shannon(same))) < 1e-12


def test_jsd_views_on_both_loaders():
    data = images_set(n=32)
    components = [("hflip", {}), ("augmix", {"jsd": True, "jsd_weight": 6.0})]
    split = jsd_split(components)
    assert split is not None and split.weight == 6.0 and split.after == []
    for cls in (DeviceLoader, TorchvisionLoader):
        loader = cls(data, components, 8, 2, 0, CPU, num_workers=0)
        loader.start(1)
        images, labels = next(iter(loader))
        assert images.shape == (24, 3, 32, 32) and labels.shape == (8,)
        clean, first, second = images.chunk(3)
        assert not torch.equal(first, second)  # two independent AugMix draws
    # the first view is what the augmentations before AugMix make of the image
    ref = AugmentedImages(data, components)
    torch.manual_seed(0)
    stacked = ref.image_views(data.images[0])
    assert stacked.shape == (3, 3, 32, 32)
    flipped = data.images[0].flip(-1)
    assert torch.equal(stacked[0], data.images[0]) or torch.equal(stacked[0], flipped)


def test_jsd_training_step_adds_the_consistency_term(tmp_path):
    cfg = load_config(
        "quickstart",
        [
            "data.subset=16",
            "data.batch_size=8",
            "data.val_size=100",
            "augment.1.name=augmix",
            "augment.1.jsd=true",
        ],
    )
    trainer = Trainer(cfg, tmp_path, "j", "quickstart", EventWriter(tmp_path / "events.jsonl"))
    trainer._setup()
    assert trainer.jsd_weight == 12.0
    images, labels = next(iter(trainer.loader))
    assert images.shape[0] == 24
    inputs = trainer.normalize(images)
    loss, logits = trainer._loss(inputs, labels)
    views = trainer.model(inputs).chunk(3)
    expect = F.cross_entropy(views[0], labels) + 12.0 * jensen_shannon(views)
    assert logits.shape == (8, 100) and torch.allclose(loss, expect, atol=1e-5)
    loss_sum, correct = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.long)
    trainer._step(images, labels, loss_sum, correct)
    assert trainer.state.epoch_seen == 8 and trainer.state.bad_steps == 0


def test_impossible_combinations_are_refused_with_the_reason():
    with pytest.raises(ConfigError, match="Jensen-Shannon.*mixup"):
        load_config("quickstart", ["augment.1.name=augmix", "augment.1.jsd=true", "mix.name=mixup"])
    twice = {"augment": [{"name": "augmix", "jsd": True}, {"name": "augmix", "jsd": True}]}
    with pytest.raises(ConfigError, match="both ask for AugMix's JSD"):
        parse_config(twice)


# --------------------------------------------------------------------------- readouts


def test_step_events_report_input_wait_and_memory(tmp_path):
    cfg = load_config(
        "quickstart",
        [
            "data.subset=64",
            "data.batch_size=16",
            "data.val_size=100",
            "model.name=wrn",
            "model.depth=10",
            "model.width=1",
            "train.epochs=1",
            "train.log_interval_s=0.05",
            "eval.test=false",
        ],
    )
    Trainer(cfg, tmp_path, "w", "quickstart", EventWriter(tmp_path / "events.jsonl")).run()
    steps = [e for e in read_events(tmp_path / "events.jsonl") if isinstance(e, Step)]
    assert steps
    for event in steps:
        assert event.data_wait is not None and 0.0 <= event.data_wait <= 1.0
        assert event.memory_mb is None  # CPU: no device memory to report


def test_gpu_check_runs_its_cpu_mode_end_to_end(tmp_path):
    """bench/gpu_check.sh needs a GPU for its numbers; its CPU mode runs the same code, tiny:
    every measurement, the preset run and the live resume, one JSON, nothing left behind."""
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "CIFAR_TUI_DATA": ""}
    done = subprocess.run(
        ["bash", "bench/gpu_check.sh", "--cpu-smoke", "--budget-s", "120"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.log"]
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["data"] == "synthetic" and result["device"] == "cpu"
    assert all(row["img_per_s"] > 0 for row in result["plain"].values())
    assert set(result["engine"]) == {"preset b32 eager", "full b32 eager"}
    assert all(
        row["img_per_s"] > 0 and "engine_over_plain" in row for row in result["engine"].values()
    ), result["engine"]
    assert result["resnet18_preset"]["epochs"] >= 1
    assert result["resnet18_preset"]["projected_200_epochs_s"] > 0
    resume = result["live_resume"]
    assert resume["ok"] and resume["interrupted_rc"] == 130, resume
    assert "live resume" in (out / "gpu_check.log").read_text()


def test_compile_wraps_the_step_network_and_checkpoints_stay_plain(tmp_path, monkeypatch):
    """torch.compile itself takes minutes on this CPU; here its wiring: the step runs through the
    compiled network, while checkpoints hold the plain module's keys (no `_orig_mod.` prefix), so
    a compiled run resumes uncompiled and back."""
    compiled = []

    def fake_compile(model, mode="default"):
        assert mode == "reduce-overhead"
        wrapper = torch.nn.Sequential(model)  # a different module that runs the same network
        compiled.append(wrapper)
        return wrapper

    monkeypatch.setattr(torch, "compile", fake_compile)
    overrides = ["data.subset=32", "data.batch_size=16", "data.val_size=100", "train.compile=true"]
    overrides.append("train.compile_mode=reduce-overhead")
    cfg = load_config("quickstart", overrides)
    trainer = Trainer(cfg, tmp_path, "c", "quickstart", EventWriter(tmp_path / "events.jsonl"))
    trainer._setup()
    assert compiled and trainer.net is compiled[0] and trainer.net[0] is trainer.model
    calls = []
    trainer.net.register_forward_hook(lambda *_: calls.append(1))
    images, labels = next(iter(trainer.loader))
    loss_sum, correct = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.long)
    trainer._step(images, labels, loss_sum, correct)
    assert calls == [1]
    trainer._session_start, trainer._wall_before = 0.0, 0.0
    state = trainer._checkpoint_state()["model"]
    assert list(state) == list(trainer.model.state_dict())


def test_step_profile_measures_on_a_tiny_model(tmp_path):
    from bench import step_profile

    tiny = ["model.name=wrn", "model.depth=10", "model.width=1"]
    result = step_profile.measure(tiny, [32], chunk=64, workdir=tmp_path)
    assert [(r["augment"], r["batch"]) for r in result["rows"]] == [("preset", 32), ("full", 32)]
    for row in result["rows"]:
        assert row["chunk_steps"] == 2
        assert row["transfers_per_step"] == 0, row["transfers_at"]
        assert 0 < row["async_uploads_per_step"] <= 0.5  # one upload per chunk of two steps
        assert row["plain_ops_per_step"] > 50
        assert 1.0 < row["ops_ratio"] < 3.0  # the engine does more than a plain step, not 3x
    full, preset = result["rows"][1], result["rows"][0]
    assert full["engine_ops_per_step"] > preset["engine_ops_per_step"]
    assert result["checkpoint_sync_ms"] > 0 and result["checkpoint_blocking_ms"] > 0
    checks = step_profile.meets_targets(result, 32)
    assert set(checks) >= {"transfers preset b32", "ops_ratio full b32 <= 1.35"}
