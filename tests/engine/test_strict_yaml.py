"""Strict safe YAML: duplicate keys, alias bombs, deep nesting and huge documents refused."""

from __future__ import annotations

import pytest
import yaml

from engine import strict_yaml


def test_ordinary_documents_and_modest_aliases_load():
    assert strict_yaml.load("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}
    assert strict_yaml.load("0.1") == 0.1


def test_a_billion_laughs_is_refused_while_composed():
    levels = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 10)]
    with pytest.raises(yaml.YAMLError, match="expands to more than 100,000 values"):
        strict_yaml.load("[" + ", ".join(levels) + "]")


def test_too_many_aliases_deep_nesting_duplicates_and_size_are_refused():
    with pytest.raises(yaml.YAMLError, match="more than 100 aliases"):
        strict_yaml.load("[&a 1, " + ", ".join(["*a"] * 101) + "]")
    with pytest.raises(yaml.YAMLError, match="nested deeper than 64 levels"):
        strict_yaml.load("[" * 600 + "]" * 600)
    with pytest.raises(yaml.YAMLError, match="duplicate key 'a'"):
        strict_yaml.load("a: 1\na: 2\n")
    with pytest.raises(yaml.YAMLError, match="larger than 1024 KiB"):
        strict_yaml.load("x" * (strict_yaml.MAX_BYTES + 1))
    with pytest.raises(yaml.YAMLError, match="could not determine a constructor"):
        strict_yaml.load("!!python/object/apply:os.system ['true']")


def test_short_keeps_messages_short():
    nested = [[list(range(100))] * 100] * 100
    text = strict_yaml.short(nested)
    assert len(text) <= 120 and text.startswith("[[")
    assert strict_yaml.short("abc") == "'abc'"
