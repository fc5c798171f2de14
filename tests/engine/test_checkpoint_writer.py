"""Checkpoints written off the training thread: what training waits for, what a kill leaves."""

from __future__ import annotations

import threading

import pytest
import torch

from engine import checkpoint, checkpoint_files


def test_submit_returns_while_the_write_runs_and_the_copy_shares_no_memory(tmp_path, monkeypatch):
    release, started = threading.Event(), threading.Event()
    real_save = checkpoint.save_atomic

    def slow_save(state, path, keep_previous=False):
        started.set()
        assert release.wait(30)
        real_save(state, path, keep_previous)

    monkeypatch.setattr(checkpoint, "save_atomic", slow_save)
    weights = torch.zeros(1000)
    writer = checkpoint.BackgroundWriter()
    writer.submit({"model": {"w": weights}}, [(tmp_path / "last.pt", True)], tag=(1, 10))
    assert started.wait(30) and writer.busy()  # the training thread is free while it writes
    weights.add_(1.0)  # training goes on changing the live tensors
    assert writer.done() == []  # nothing is reported before it is on disk
    release.set()
    writer.wait()
    assert writer.done() == [(tmp_path / "last.pt", (1, 10))]
    saved = checkpoint.load(tmp_path / "last.pt")["model"]["w"]
    assert torch.equal(saved, torch.zeros(1000))  # the state as it was when submitted


def test_one_write_in_flight_and_targets_in_order(tmp_path, monkeypatch):
    order = []
    real_save = checkpoint.save_atomic

    def save(state, path, keep_previous=False):
        order.append((path.name, state["model"]["step"].item()))
        real_save(state, path, keep_previous)

    monkeypatch.setattr(checkpoint, "save_atomic", save)
    writer = checkpoint.BackgroundWriter()
    for step in range(3):
        state = {"model": {"step": torch.tensor(step)}}
        writer.submit(state, [(tmp_path / "last.pt", True), (tmp_path / "best.pt", False)], step)
    writer.wait()
    assert order == [(name, s) for s in range(3) for name in ("last.pt", "best.pt")]
    assert checkpoint.load(tmp_path / "last.prev.pt")["model"]["step"] == 1


def test_a_failed_write_is_raised_on_the_training_thread_naming_the_file(tmp_path, monkeypatch):
    def full(state, path, keep_previous=False):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_atomic", full)
    writer = checkpoint.BackgroundWriter()
    writer.submit({"model": {}}, [(tmp_path / "last.pt", True)], tag=None)
    with pytest.raises(OSError, match="last.pt .No space left on device.; the previous checkpoint"):
        writer.wait()
    writer.wait()  # raised once


def test_a_write_cut_short_leaves_the_previous_checkpoint_and_its_temp_file_is_removed(tmp_path):
    checkpoint.save_atomic({"model": {"w": torch.ones(3)}}, tmp_path / "last.pt")
    stale = tmp_path / ".last.pt.tmp-12345"  # what a SIGKILL during a write leaves
    stale.write_bytes(b"cifar-tui-checkpoint v1 sha256=")
    others = [tmp_path / n for n in (".summary.json.tmp-7", ".card.md.tmp-7", ".config.yaml.tmp-7")]
    for path in others:  # engine.sinks.write_atomic's, cut short the same way
        path.write_text("part")
    (tmp_path / "summary.json").write_text("{}")
    assert checkpoint.load(tmp_path / "last.pt")["model"]["w"].sum() == 3
    assert checkpoint_files.remove_stale_temp_files(tmp_path) == sorted([stale, *others])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "summary.json"]


def test_host_copy_clones_every_tensor_and_rebuilds_containers():
    live, other = torch.arange(4.0), torch.ones(2, 2)
    state = {"a": [live, (other, 3)], "b": "text"}
    copy = checkpoint.host_copy(state)
    assert copy["a"][0].data_ptr() != live.data_ptr() and torch.equal(copy["a"][0], live)
    assert copy["a"][1][0].data_ptr() != other.data_ptr()
    assert isinstance(copy["a"][1], tuple) and copy["a"][1][1] == 3 and copy["b"] == "text"
    assert copy["a"] is not state["a"]
