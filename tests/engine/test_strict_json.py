"""Strict JSON: no file the project writes holds NaN or Infinity (RFC 8259), and Python readers
still get the non-finite floats back."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any

import pytest

from engine import strict_json
from engine.events import EVENT_TYPES, Event, parse_event


def strict_loads(text: str) -> Any:
    """A strict parser: Python's json with NaN / Infinity / -Infinity refused."""

    def refuse(name: str) -> None:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_a_hand_case_writes_null_with_pointers_and_reads_back() -> None:
    value = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d/e~": math.nan, "ok": 2}
    text = strict_json.dumps(value)
    assert strict_loads(text) == {
        "a": None,
        "b": [1.0, None, {"c": None}],
        "d/e~": None,
        "ok": 2,
        "nonfinite": {"/a": "nan", "/b/1": "inf", "/b/2/c": "-inf", "/d~1e~0": "nan"},
    }
    back = strict_json.loads(text)
    assert math.isnan(back["a"]) and back["b"][1] == math.inf and back["b"][2]["c"] == -math.inf
    assert math.isnan(back["d/e~"]) and back["ok"] == 2 and "nonfinite" not in back
    assert strict_json.dumps({"x": 1.5}) == '{"x": 1.5}'  # finite: no flag at all


def test_a_top_level_list_flags_each_object() -> None:
    text = strict_json.dumps([{"x": math.nan}, {"y": 1}])
    assert strict_loads(text) == [{"x": None, "nonfinite": {"/x": "nan"}}, {"y": 1}]
    back = strict_json.loads(text)
    assert math.isnan(back[0]["x"]) and back[1] == {"y": 1}


@pytest.mark.parametrize(
    "flags",
    [
        {"/a": "nan"},
        {"/missing": "inf"},
        {"/l/7": "nan"},
        {"": "nan"},
        {"x": "nan"},
        {"/n": "huge"},
    ],
)
def test_a_wrong_flag_changes_nothing(flags: dict[str, str]) -> None:
    text = json.dumps({"a": 1, "l": [None], "n": None, "nonfinite": flags})
    assert strict_json.loads(text) == {"a": 1, "l": [None], "n": None}


def test_old_logs_with_bare_nan_still_read() -> None:
    event = parse_event(
        '{"type": "bad_step", "epoch": 1, "step": 3, "loss": NaN, "consecutive": 1}'
    )
    assert event is not None and math.isnan(event.loss)  # type: ignore[attr-defined]


def _sample(hint: Any) -> Any:
    """A value of a field's type, NaN wherever a float may go."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _sample(args[0])
    origin = typing.get_origin(hint) or hint
    if origin is list:
        return [_sample(typing.get_args(hint)[0])]
    if origin is dict:
        return {"best_val_top1": -math.inf, "nested": {"loss": math.nan}, "views": [math.inf]}
    return {float: math.nan, int: 3, str: "x", bool: True}.get(origin)


EVENT_CLASSES = {cls.type: cls for cls in EVENT_TYPES.values()}


@pytest.mark.parametrize("cls", list(EVENT_CLASSES.values()), ids=list(EVENT_CLASSES))
def test_every_event_type_with_non_finite_numbers_is_strict_json(cls: type[Event]) -> None:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _sample(hints[f.name]) for f in dataclasses.fields(cls) if f.name != "t"}
    if "status" in fields:
        fields["status"] = cls.statuses[0]
    event = cls(**fields)
    line = event.to_json()
    data = strict_loads(line)  # raises on NaN / Infinity
    assert data["type"] == cls.type
    back = parse_event(line)
    assert back is not None and type(back) is cls
    for name, value in fields.items():
        got = getattr(back, name)
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(got), name
        else:
            assert json.dumps(got) == json.dumps(value), name  # NaN spelled alike on both sides


def assert_strict_json_files(folder: Path) -> int:
    """Every .json and .jsonl file under `folder` parses strictly; returns how many objects
    carry a `nonfinite` flag. (Used by the diverged-run test, whose losses go NaN.)"""
    written = sorted(p for p in folder.rglob("*") if p.suffix in (".json", ".jsonl"))
    assert folder / "events.jsonl" in written
    flagged = 0
    for path in written:
        lines = path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]
        for line in lines:
            data = strict_loads(line)
            flagged += isinstance(data, dict) and "nonfinite" in data
    return flagged
