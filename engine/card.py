"""A run's reproducibility card: `card.json` and `card.md` in its folder (torch-free).

Built from what the run folder already holds (config.yaml, run.json, summary.json, events.jsonl)
plus the code version (`git rev-parse HEAD` of the source tree, when it is a git checkout) and
the installed library versions (importlib.metadata, nothing imported). The engine writes it when
a run ends (done, interrupted or diverged); `write_card_safely` never raises.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from engine import strict_json
from engine.outcome import RunStatus, RunSummary, read_summary
from engine.runs import RUN_META_FILE

CARD_JSON, CARD_MD = "card.json", "card.md"
CARD_VERSION = 1
SOURCE_DIR = Path(__file__).resolve().parents[1]
LIBRARIES = ("torch", "torchvision", "numpy", "scikit-learn", "PyYAML")
PACKAGE = "cifar-tui"
# every key of card.json (a missing value is null, never a missing key)
CARD_FIELDS = (
    "card_version",
    "run_id",
    "preset",
    "status",
    "sweep",
    "seeds",
    "config",
    "dataset",
    "code",
    "libraries",
    "device",
    "platform",
    "timing",
    "validation",
    "test",
    "tta",
    "written",
)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=SOURCE_DIR, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_version() -> dict[str, Any]:
    """Package version, git commit of the source tree (None outside a checkout), dirty flag."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    version = None
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        version = importlib.metadata.version(PACKAGE)
    return {
        "package_version": version,
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
    }


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = strict_json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _raw_events(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line of the log, whatever its type (newer event types included)."""
    out = []
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = strict_json.loads(line)
                if isinstance(event, dict):
                    out.append(event)
    return out


def _tta(summary: RunSummary | None, events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """TTA numbers (views, merged top-1/top-5, cost): the summary's `tta`, else the last
    `tta_evaluated` event; None for a run without TTA."""
    if summary is not None and isinstance(summary.tta, dict):
        return summary.tta
    last = next((e for e in reversed(events) if e.get("type") == "tta_evaluated"), None)
    if last is None:
        return None
    return {k: v for k, v in last.items() if k not in ("type", "t")}


def build_card(run_dir: Path) -> dict[str, Any]:
    """card.json's content for a run folder (what is unknown is null)."""
    meta = _read_json(run_dir / RUN_META_FILE)
    summary = read_summary(run_dir)  # None for a run that never finished

    def pick(field: str, otherwise: Any = None) -> Any:
        """The summary's value, else `otherwise` (what the run's first start event said)."""
        value = getattr(summary, field) if summary is not None else None
        return otherwise if value is None or value == "" else value

    config: dict[str, Any] = {}
    with contextlib.suppress(OSError, yaml.YAMLError):
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    events = _raw_events(run_dir / "events.jsonl")
    starts = [e for e in events if e.get("type") in ("run_started", "resumed")]
    first = starts[0] if starts else {}
    ends = [e for e in events if e.get("type") in ("finished", "failed")]
    end: dict[str, Any] = ends[-1] if ends else {}
    epochs = [e for e in events if e.get("type") == "epoch_end"]
    curve: dict[int, dict[str, Any]] = {}  # a resumed run repeats epochs: the last one counts
    for e in epochs:
        curve[e["epoch"]] = {k: e.get(k) for k in ("epoch", "val_top1", "val_top5", "val_loss")}
    train = config.get("train") or {}
    sweep = None
    if meta.get("sweep_id"):
        sweep = {k: meta.get(k) for k in ("sweep_id", "recipe", "seed")}
    card = {
        "card_version": CARD_VERSION,
        "run_id": meta.get("run_id", run_dir.name),
        "preset": meta.get("preset"),
        "status": pick("status") or end.get("status") or RunStatus.CRASHED.value,
        "sweep": sweep,
        "seeds": {"train.seed": train.get("seed")},  # data split, init, augmentation, dropout
        "config": config,
        "dataset": {
            "name": pick("dataset", first.get("dataset")),
            "synthetic": pick("synthetic", first.get("synthetic")),
            "train_size": pick("train_size", first.get("train_size")),
            "val_size": pick("val_size", first.get("val_size")),
            "test_size": pick("test_size", first.get("test_size")),
        },
        "code": code_version(),
        "libraries": library_versions(),
        "device": pick("device", first.get("device")),
        "platform": {
            "system": platform.platform(),
            "machine": platform.machine(),
            "python": sys.version.split()[0],
        },
        "timing": {
            "started": first.get("t"),
            "finished": end.get("t"),
            "sessions": len(starts),  # 1 + the number of resumes
            "wall_s": pick("wall_s"),
            "train_s": pick("train_s"),
            "img_per_s": pick("img_per_s"),
        },
        "validation": {
            "best_val_top1": pick("best_val_top1"),
            "best_epoch": pick("best_epoch"),
            "epochs": pick("epochs", train.get("epochs")),
            "epochs_done": pick("epochs_done"),
            "curve": [curve[k] for k in sorted(curve)],
        },
        "test": {
            "checkpoint": "best on validation",
            "top1": pick("test_top1"),
            "top5": pick("test_top5"),
            "loss": pick("test_loss"),
            "top1_last": pick("test_top1_last"),
            "top5_last": pick("test_top5_last"),
            "macro_ap": pick("macro_ap"),
            "macro_auc": pick("macro_auc"),
            "ece": pick("ece"),
        },
        "tta": _tta(summary, events),
        "written": time.time(),
    }
    return card


def _pct(x: Any) -> str:
    return "-" if not isinstance(x, int | float) else f"{100 * x:.2f} %"


def card_markdown(card: dict[str, Any]) -> str:
    """card.md: the same facts for a person, with the resolved config at the end."""
    ds, code, libs = card["dataset"], card["code"], card["libraries"]
    val, test, timing = card["validation"], card["test"], card["timing"]
    synthetic = " (SYNTHETIC)" if ds.get("synthetic") else ""
    commit = code.get("git_commit") or "not a git checkout"
    if code.get("git_dirty"):
        commit += " (with uncommitted changes)"
    sweep = card["sweep"]
    lines = [
        f"# Run card: {card['run_id']}",
        "",
        f"- preset: `{card['preset']}`"
        + (
            f" (sweep `{sweep['sweep_id']}`, recipe `{sweep['recipe']}`, seed {sweep['seed']})"
            if sweep
            else ""
        ),
        f"- status: {card['status']}",
        f"- seed: {card['seeds'].get('train.seed')} (data split, initialisation, augmentation)",
        f"- data: {ds.get('name')}{synthetic}, {ds.get('train_size')} train / "
        f"{ds.get('val_size')} validation / {ds.get('test_size')} test images",
        f"- device: {card['device']} on {card['platform']['system']}",
        f"- code: {PACKAGE} {code.get('package_version')}, git {commit}",
        "- libraries: " + ", ".join(f"{k} {v}" for k, v in libs.items()),
        f"- wall time: {timing.get('wall_s') or 0:.1f} s in {timing.get('sessions')} session(s); "
        f"{timing.get('img_per_s') or 0:,.0f} training img/s",
        "",
        "## Results" + synthetic,
        "",
        "| measure | top-1 | top-5 |",
        "| --- | --- | --- |",
        f"| validation, best epoch ({val.get('best_epoch')} of {val.get('epochs_done')}) | "
        f"{_pct(val.get('best_val_top1'))} | - |",
        f"| test, best-on-validation checkpoint | {_pct(test.get('top1'))} | "
        f"{_pct(test.get('top5'))} |",
        f"| test, last epoch | {_pct(test.get('top1_last'))} | {_pct(test.get('top5_last'))} |",
    ]
    tta = card["tta"]
    if tta:
        views = len(tta.get("views") or [])
        lines.append(
            f"| test with TTA ({views} distinct views, best checkpoint) | {_pct(tta.get('top1'))} "
            f"| {_pct(tta.get('top5'))} |"
        )
    if isinstance(test.get("ece"), int | float):
        lines += ["", f"Expected calibration error (15 bins, best checkpoint): {test['ece']:.4f}"]
    lines += [
        "",
        "## Reproduce",
        "",
        "```bash",
        "cifar-tui --run config.yaml   # from this run folder: the resolved config below",
        "```",
        "",
        "```yaml",
        yaml.safe_dump(card["config"], sort_keys=False).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_card(run_dir: Path) -> dict[str, Any]:
    card = build_card(run_dir)
    (run_dir / CARD_JSON).write_text(strict_json.dumps(card, indent=2) + "\n")
    (run_dir / CARD_MD).write_text(card_markdown(card))
    return card


def write_card_safely(run_dir: Path) -> None:
    """write_card, with any failure reduced to a warning line (a run's outcome stands)."""
    try:
        write_card(run_dir)
    except Exception as exc:  # noqa: BLE001 - the card must never change a run's exit code
        print(f"cifar-tui: warning: no run card for {run_dir.name}: {exc}", file=sys.stderr)
