"""The engine's checks of a resume against its checkpoint: the config it was trained with, read
as today's code reads it, and a change a forced resume has accepted already."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import config_to_dict, load_config
from engine.errors import ConfigError
from engine.events import EventWriter
from engine.loop_state import check_config

CKPT = Path("/runs/r/last.pt")


def _state(cfg_dict: dict) -> dict:
    return {"config": cfg_dict}


def test_a_parameter_added_to_a_component_since_is_not_a_change():
    """A checkpoint written before one-cycle gained its momentum parameters resumes as it is."""
    cfg = load_config("quickstart", ["schedule.name=onecycle"])
    old = config_to_dict(cfg)
    for key in ("cycle_momentum", "base_momentum", "max_momentum"):
        old["schedule"].pop(key)
    assert check_config(_state(old), cfg, CKPT, force=False) == []


def test_an_edited_config_is_refused_unless_forced_or_already_accepted():
    trained = config_to_dict(load_config("quickstart"))
    edited = load_config("quickstart", ["optim.lr=0.5"])
    with pytest.raises(ConfigError, match=r"differs from its checkpoint .*\(optim.lr\)"):
        check_config(_state(trained), edited, CKPT, force=False)
    assert check_config(_state(trained), edited, CKPT, force=True) == ["optim.lr"]
    # a forced resume adopted it and died before its first checkpoint: a plain resume goes on
    accepted = config_to_dict(load_config("quickstart", ["optim.lr=0.5", "train.device=cpu"]))
    assert check_config(_state(trained), edited, CKPT, False, accepted) == ["optim.lr"]


def test_an_event_writer_that_emits_nothing_leaves_the_log_as_it_was(tmp_path):
    """A refused resume opens the recorder but emits nothing: a log cut mid-line by a kill
    keeps its bytes (the newline that guards the next event comes with that event)."""
    log = tmp_path / "events.jsonl"
    log.write_bytes(b'{"type": "step"}\n{"type": "ep')
    EventWriter(log).close()
    assert log.read_bytes() == b'{"type": "step"}\n{"type": "ep'
    EventWriter(tmp_path / "none.jsonl").close()
    assert not (tmp_path / "none.jsonl").exists()


def test_an_inherited_resume_config_never_reaches_a_plain_engine(tmp_path, monkeypatch):
    from engine.config import RESUME_CONFIG_ENV
    from tui.orchestration import launcher

    seen: list[dict] = []
    monkeypatch.setenv(RESUME_CONFIG_ENV, "model: {name: resnet18}\n")
    monkeypatch.setattr(launcher.subprocess, "Popen", lambda *a, env, **k: seen.append(env))
    launcher.start_engine(tmp_path, ["--resume"])
    launcher.start_engine(tmp_path, ["--resume"], extra_env={RESUME_CONFIG_ENV: "x: 1\n"})
    assert RESUME_CONFIG_ENV not in seen[0] and seen[1][RESUME_CONFIG_ENV] == "x: 1\n"
