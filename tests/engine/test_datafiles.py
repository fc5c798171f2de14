"""engine.datafiles: the one search order for CIFAR-100 (--data-dir, $CIFAR_TUI_DATA, ./data,
the user's cache folder) and where a download goes, on folders made here."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.datafiles import (
    cache_folder,
    download_folder,
    resolve_data_dir,
    search_folders,
    synthetic_banner,
)


def _put(folder: Path) -> Path:
    (folder / "cifar-100-python").mkdir(parents=True)
    for name in ("train", "test", "meta"):
        (folder / "cifar-100-python" / name).write_bytes(b"x")
    return folder


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CIFAR_TUI_DATA", raising=False)
    return {
        "flag": tmp_path / "flag",
        "env": tmp_path / "env",
        "cwd": tmp_path / "work" / "data",
        "cache": tmp_path / "xdg" / "cifar-tui",
    }


def test_the_order_is_flag_env_dot_data_cache(places, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIFAR_TUI_DATA", str(places["env"]))
    assert search_folders(str(places["flag"])) == [
        places["flag"],
        places["env"],
        Path("data"),
        places["cache"],
    ]
    assert cache_folder() == places["cache"]
    for name in ("cache", "cwd", "env", "flag"):  # each found folder wins over those after it
        _put(places[name])
        found = resolve_data_dir(str(places["flag"]))
        assert found == (Path("data") if name == "cwd" else places[name])


def test_found_nowhere_it_is_downloaded_to_the_folder_given_else_the_cache(places) -> None:
    assert resolve_data_dir(None) == download_folder(None) == places["cache"]
    assert resolve_data_dir(str(places["flag"])) == places["flag"]


def test_the_cache_defaults_to_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_folder() == tmp_path / ".cache" / "cifar-tui"
    assert synthetic_banner() == (
        "SYNTHETIC: put cifar-100-python in ./data or ~/.cache/cifar-tui for the real thing"
    )
