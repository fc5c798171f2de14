"""The first run's preparation (data found, fetched or synthetic under the banner; sized to the
device), `make run`'s terminal choice, and the header and "what next" lines (headless printer),
all with fakes for the device probe and the download: nothing trains, nothing is fetched."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from engine.config import load_config
from engine.errors import DataError
from engine.sizing import DeviceInfo
from tests.tui.fixtures import make_events, typed
from tui.cli.first_run import first_run_mode
from tui.orchestration.first_run import prepare_first_run
from tui.orchestration.headless import HeadlessPrinter
from tui.orchestration.what_next import header_lines, what_next_lines

CPU = DeviceInfo("cpu", "cpu")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder and cache: no dataset anywhere."""
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CIFAR_TUI_DATA", raising=False)
    return tmp_path


def _put(folder: Path) -> None:
    (folder / "cifar-100-python").mkdir(parents=True)
    for name in ("train", "test", "meta"):
        (folder / "cifar-100-python" / name).write_bytes(b"x")


def _no_fetch(*args: object, **kwargs: object) -> None:
    raise AssertionError("nothing should be downloaded")


def test_data_found_in_dot_data_is_used_and_recorded(home: Path) -> None:
    _put(home / "work" / "data")
    said: list[str] = []
    prepared = prepare_first_run(
        load_config("first_run"), say=said.append, probe=lambda _: CPU, fetch=_no_fetch
    )
    cfg = prepared.config
    assert cfg.data.dataset == "cifar100" and cfg.data.data_dir == str(home / "work" / "data")
    assert cfg.sizing == "cpu: 10,000-image subset, wrn16_2, 3 epochs"
    assert prepared.banner is None and prepared.notes == []
    assert said == [f"CIFAR-100 found in {Path('data')}"]


def test_missing_data_is_downloaded_into_the_cache(home: Path) -> None:
    fetched: list[Path] = []

    def fetch(target: Path, progress: object = None) -> Path:
        fetched.append(target)
        _put(target)
        return target / "cifar-100-python"

    prepared = prepare_first_run(load_config("first_run"), probe=lambda _: CPU, fetch=fetch)
    assert fetched == [home / "cache" / "cifar-tui"]
    assert prepared.config.data.data_dir == str(home / "cache" / "cifar-tui")
    assert prepared.config.data.dataset == "cifar100" and prepared.banner is None


def test_offline_it_trains_on_synthetic_under_the_banner(home: Path) -> None:
    def offline(target: Path, progress: object = None) -> None:
        raise DataError("could not download CIFAR-100 (Name or service not known)")

    devices: list[str] = []

    def probe(requested: str) -> DeviceInfo:
        devices.append(requested)
        return DeviceInfo("cuda", "cuda")

    prepared = prepare_first_run(load_config("first_run"), probe=probe, fetch=offline)
    assert devices == ["auto"]
    assert prepared.config.data.dataset == "synthetic"
    assert prepared.config.sizing.startswith("cuda: full 9,000-image synthetic training set")
    assert prepared.notes == ["could not download CIFAR-100 (Name or service not known)"]
    assert prepared.banner == (
        f"SYNTHETIC: put cifar-100-python in ./data or {home / 'cache' / 'cifar-tui'} "
        "for the real thing"
    )


def test_with_downloads_off_it_is_synthetic_too(home: Path) -> None:
    cfg = load_config("first_run", ["data.download=false"])
    prepared = prepare_first_run(cfg, probe=lambda _: CPU, fetch=_no_fetch)
    assert prepared.config.data.dataset == "synthetic" and prepared.banner is not None
    assert "data.download is off" in prepared.notes[0]


@pytest.mark.parametrize(
    ("stdin", "stdout", "mode"),
    [(True, True, "dashboard"), (False, True, "headless"), (True, False, "headless")],
)
def test_make_run_opens_the_dashboard_only_with_a_terminal(stdin, stdout, mode) -> None:
    assert first_run_mode(stdin, stdout) == mode


def _first_run_events(run_id: str, sizing: str, synthetic: bool) -> list[dict]:
    events = make_events(run_id, 2)
    events[0]["config"] = {**events[0]["config"], "sizing": sizing}
    events[0]["synthetic"] = synthetic
    return events


def test_the_printer_shows_the_size_the_banner_and_what_next(home: Path) -> None:
    run_dir = home / "ck" / "r1"
    out = io.StringIO()
    printer = HeadlessPrinter(Console(file=out, width=200), run_dir=run_dir)
    for event in _first_run_events("r1", "cpu: 4,000-image subset", synthetic=True):
        printer.handle(typed(event))
    summary = {"run_id": "r1", "status": "done", "synthetic": True, "run_dir": str(run_dir)}
    printer.handle(typed({"type": "finished", "t": 1.0, "status": "done", "summary": summary}))
    text = out.getvalue()
    assert "\ncpu: 4,000-image subset\nSYNTHETIC: put cifar-100-python in ./data or " in text
    tail = text[text.index("what next:") :].splitlines()
    assert tail == what_next_lines("r1", run_dir, dashboard=False)
    assert tail[1].split() == ["cifar-tui", "--run", "resnet18", *tail[1].split()[3:]]
    assert "cifar-tui runs compare r1 OTHER" in tail[2] and "most-confused" in tail[3]
    assert tail[4].startswith(f"the run's files: {run_dir} ")


def test_a_run_not_sized_has_no_header_and_no_what_next(home: Path) -> None:
    out = io.StringIO()
    printer = HeadlessPrinter(Console(file=out, width=200), run_dir=home / "r2")
    events = make_events("r2", 1)
    for event in events:
        printer.handle(typed(event))
    assert header_lines(printer.started) == []
    printer.handle(
        typed({"type": "finished", "t": 1.0, "status": "done", "summary": {"run_id": "r2"}})
    )
    assert "what next" not in out.getvalue()
