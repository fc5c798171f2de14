"""Exact resume: stopping after any step and continuing gives the uninterrupted result."""

from __future__ import annotations

import warnings

import pytest
import torch

from engine import checkpoint, checkpoint_files
from engine import device as device_module
from engine.config import load_config
from engine.events import EpochEnd, EventWriter, Resumed, read_events
from engine.trainer import Trainer

# 10 steps per epoch, dropout on (so the torch RNG matters), crop + flip (augmentation seeds)
TINY = [
    "model.name=wrn",
    "model.depth=10",
    "model.width=1",
    "model.dropout=0.2",
    "data.subset=320",
    "data.val_size=100",
    "train.epochs=2",
    "eval.test=false",
]


def _trainer(run_dir, overrides, resume=False) -> Trainer:
    cfg = load_config("quickstart", [*TINY, *overrides])
    events = EventWriter(run_dir / "events.jsonl")
    return Trainer(cfg, run_dir, "resume-test", "quickstart", events, resume=resume)


def _stop_after(trainer: Trainer, steps: int) -> None:
    """Make `trainer` behave as if SIGINT arrived during step `steps`."""
    original = trainer._step

    def step(*args):
        original(*args)
        if trainer.state.step == steps:
            trainer.stop_signal = 2

    trainer._step = step  # type: ignore[method-assign]


def _final_weights(run_dir) -> dict[str, torch.Tensor]:
    return checkpoint.load(run_dir / "last.pt")["model"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, per optimizer."""
    cache = {}

    def get(optim: list[str]):
        key = tuple(optim)
        if key not in cache:
            run_dir = tmp_path_factory.mktemp("reference")
            summary = _trainer(run_dir, optim).run()
            assert summary["status"] == "done"
            cache[key] = (_final_weights(run_dir), read_events(run_dir / "events.jsonl"))
        return cache[key]

    return get


OPTIMIZERS = {
    "sgd": [],
    "asam": ["sam.name=asam"],
    "ranger": ["optim.name=ranger", "optim.lr=0.003"],
    "adam+onecycle": ["optim.name=adam", "schedule.name=onecycle"],  # beta1 cycled
    "sgd+ema+mix": ["train.ema_decay=0.9", "mix.name=mixup_cutmix"],
}


@pytest.mark.parametrize("optim", sorted(OPTIMIZERS))
@pytest.mark.parametrize("stop_at", [7, 10], ids=["mid-epoch", "epoch-boundary"])
def test_resume_is_bit_exact(tmp_path, reference, optim, stop_at):
    overrides = OPTIMIZERS[optim]
    expected, ref_events = reference(overrides)
    first = _trainer(tmp_path, overrides)
    _stop_after(first, stop_at)
    assert first.run()["status"] == "interrupted"
    assert checkpoint.load(tmp_path / "last.pt")["loop"]["step"] == stop_at
    summary = _trainer(tmp_path, overrides, resume=True).run()
    assert summary["status"] == "done" and summary["step"] == 20
    got = _final_weights(tmp_path)
    assert got.keys() == expected.keys()
    for name in expected:
        assert torch.equal(got[name], expected[name]), name
    # one continuous log: every epoch once, a resumed event marking the point
    events = read_events(tmp_path / "events.jsonl")
    assert [e.epoch for e in events if isinstance(e, EpochEnd)] == [1, 2]
    (resumed,) = [e for e in events if isinstance(e, Resumed)]
    assert resumed.step == stop_at
    ref_val = [e.val_top1 for e in ref_events if isinstance(e, EpochEnd)]
    assert [e.val_top1 for e in events if isinstance(e, EpochEnd)] == ref_val


def test_damaged_last_checkpoint_falls_back_to_the_previous_one(tmp_path, reference):
    expected, _ = reference([])
    first = _trainer(tmp_path, [])
    _stop_after(first, 13)  # epoch 1 ends (last.pt), then the stop writes a newer last.pt
    first.run()
    last = tmp_path / "last.pt"
    data = bytearray(last.read_bytes())
    data[-100] ^= 0xFF  # one flipped bit pattern in the payload
    last.write_bytes(bytes(data))
    with pytest.raises(checkpoint_files.CheckpointError, match="fails its checksum"):
        checkpoint.load(last)
    _trainer(tmp_path, [], resume=True).run()
    (resumed,) = [e for e in read_events(tmp_path / "events.jsonl") if isinstance(e, Resumed)]
    assert resumed.checkpoint.endswith("last.prev.pt") and "checksum" in (resumed.warning or "")
    assert resumed.step == 10
    got = _final_weights(tmp_path)
    assert all(torch.equal(got[k], expected[k]) for k in expected)


@pytest.mark.parametrize("optim", ["sgd", "sgd+ema+mix"])
def test_restore_onto_another_device_keeps_rng_states_on_the_cpu(tmp_path, monkeypatch, optim):
    """A GPU box resumes onto CUDA: weights and optimizer state move to the device, the RNG
    states stay CPU ByteTensors. `meta` stands in for the device (a checkpoint mapped onto it
    fails exactly as one mapped onto CUDA: RNG states that are no CPU tensors)."""
    overrides = OPTIMIZERS[optim]
    first = _trainer(tmp_path, overrides)
    _stop_after(first, 7)
    assert first.run()["status"] == "interrupted"
    saved = checkpoint.load(tmp_path / "last.pt")
    meta = torch.device("meta")
    monkeypatch.setattr(device_module, "resolve_device", lambda name: meta)
    resumed = _trainer(tmp_path, overrides, resume=True)
    resumed._setup()
    with warnings.catch_warnings():  # "copying into a meta parameter is a no-op"
        warnings.simplefilter("ignore")
        resumed._restore()
    assert resumed.state.step == 7
    assert all(p.is_meta for p in resumed.model.parameters())
    for group_state in resumed.optimizer.state.values():
        assert all(v.is_meta for v in group_state.values() if torch.is_tensor(v) and v.ndim)
    assert torch.equal(torch.get_rng_state(), saved["rng"]["torch"])


def test_bf16_channels_last_fused_and_compiled_on_the_cpu_trains_and_resumes_exactly(tmp_path):
    """The CUDA options on the CPU, for real: bf16 autocast, channels_last, fused SGD with the
    device-side skip and torch.compile (inductor); stopped mid-epoch and resumed, it ends with
    the uninterrupted run's weights bit for bit."""
    fast = ["train.bf16=true", "train.channels_last=true", "train.compile=true"]
    fast += ["model.dropout=0.0", "train.epochs=1", "data.subset=200"]
    reference_dir, resumed_dir = tmp_path / "reference", tmp_path / "resumed"
    for folder in (reference_dir, resumed_dir):
        folder.mkdir()
    uninterrupted = _trainer(reference_dir, fast)
    assert uninterrupted.run()["status"] == "done"
    assert uninterrupted.amp and uninterrupted.channels_last and uninterrupted.found_inf is not None
    assert uninterrupted.net is not uninterrupted.model  # the step ran the compiled network
    assert uninterrupted.optimizer.defaults["fused"]
    first = _trainer(resumed_dir, fast)
    _stop_after(first, 2)
    assert first.run()["status"] == "interrupted"
    assert _trainer(resumed_dir, fast, resume=True).run()["status"] == "done"
    expected, got = _final_weights(reference_dir), _final_weights(resumed_dir)
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert any(v.dtype == torch.float32 for v in got.values())  # weights stay fp32 under autocast
