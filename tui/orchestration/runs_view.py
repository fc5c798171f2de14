"""The Runs table's columns: what each shows, how it sorts, which fit the terminal's width, and
the filter. No widget here: the Runs screen (tui.screens.runs) puts the result in a DataTable,
`cifar-tui runs` in a rich table.

A column is one of the registry's fields or a config key (`cfg:optim.lr`). At any width the run
id, its status and its test top-1 stay; the sort column, data (SYN in short), the chosen config
columns come next, then best val, time, preset and sweep, as far as they fit; the run id is
shortened in the middle before a kept column is dropped.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text

from engine.runs import RunRow
from tui.fmt import duration, pct

CONFIG = "cfg:"  # a column key naming a config key: `cfg:optim.lr`
SETTINGS_FILE = ".runs-view.json"  # in the checkpoints folder: the chosen columns and sort
PAD = 2  # DataTable's cell padding, both sides together
SCROLLBAR = 2  # kept free for the vertical scrollbar
CONFIG_WIDTH = 16  # a config value longer than this is cut with an ellipsis
MIN_WIDTH = 6
RUN_MIN = len("✓20260101-120000…a1b2")  # the selection mark, date, time and random tail

# the plotted metrics: registry epoch column (also RunState's series), title, whether values are
# fractions shown as %
METRICS = (
    ("val_top1", "val top-1 %", True),
    ("val_loss", "val loss", False),
    ("train_loss", "train loss", False),
    ("train_top1", "train top-1 %", True),
    ("lr", "learning rate", False),
)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    keep: bool = False  # shown at every width
    rank: int = 50  # which go first when the width runs out (higher: dropped first)
    numeric: bool = False  # sorted largest first the first time


BASE_COLUMNS = (
    Column("run", "run", keep=True),
    Column("preset", "preset", rank=80),
    Column("status", "status", keep=True),
    Column("data", "data", rank=20),  # SYNTHETIC is said where numbers are
    Column("best", "best val", rank=40, numeric=True),
    Column("test", "test top-1", keep=True, numeric=True),
    Column("time", "time", rank=60, numeric=True),
)
SWEEP_COLUMN = Column("sweep", "sweep", rank=90)


def config_column(key: str) -> Column:
    """A config key's column, headed by the key (a long one keeps its end: `…crop.padding`)."""
    label = key if len(key) <= CONFIG_WIDTH else "…" + key[1 - CONFIG_WIDTH :]
    return Column(CONFIG + key, label, rank=30)


# ------------------------------------------------------------------------------ config values


def flatten_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"optim": {"lr": 0.1}}` -> `{"optim.lr": 0.1}`. A list of components (augment) is one
    key holding their names (`random_crop, hflip`) plus `augment.<name>.<param>` keys."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{name}."))
        elif isinstance(value, list) and all(
            isinstance(v, dict) and isinstance(v.get("name"), str) for v in value
        ):
            flat[name] = ", ".join(v["name"] for v in value) or "none"
            for v in value:
                params = {k: p for k, p in v.items() if k != "name"}
                flat.update(flatten_config(params, f"{name}.{v['name']}."))
        else:
            flat[name] = value
    return flat


def value_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _text_order(text: str) -> tuple[int, float, str]:
    """Numbers by value, before words in alphabetical order."""
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def key_summaries(configs: Iterable[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """Every flattened key of `configs` with its distinct values (as text), the keys whose value
    differs between runs first (what a comparison is about), each group sorted by key."""
    values: dict[str, list[str]] = {}
    present: dict[str, int] = {}
    count = 0
    for flat in configs:
        count += 1
        for key, value in flat.items():
            present[key] = present.get(key, 0) + 1
            seen = values.setdefault(key, [])
            if (text := value_text(value)) not in seen:
                seen.append(text)
    for seen in values.values():
        seen.sort(key=_text_order)
    varies = {k for k, v in values.items() if len(v) > 1 or present[k] < count}
    return sorted(values.items(), key=lambda kv: (kv[0] not in varies, kv[0]))


# ------------------------------------------------------------------------------ cells


@dataclass
class Cell:
    text: str | Text
    order: tuple[int, Any]  # (0, value) sorts; (1, ...) is missing and always sorts last


def _number(x: float | None) -> tuple[int, Any]:
    return (1, 0) if x is None or (isinstance(x, float) and math.isnan(x)) else (0, x)


def _config_order(value: Any) -> tuple[int, Any]:
    if value is None:
        return (1, 0)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, (0, float(value), ""))
    return (0, (1, 0.0, value_text(value)))


def elapsed(row: RunRow, now: float) -> float | None:
    """Seconds the run took, or has been running (a live run has no wall_s yet)."""
    if row.status == "running":
        return max(now - row.started, 0.0)
    return row.wall_s


def make_cell(row: RunRow, key: str, flat: dict[str, Any], now: float, narrow: bool) -> Cell:
    """One cell; `narrow` writes the short forms (no best epoch, `SYN` for SYNTHETIC)."""
    if key == "run":
        return Cell(row.run_id, (0, (row.started, row.run_id)))
    if key == "preset":
        return Cell(row.preset, (0, row.preset))
    if key == "status":
        text = row.status
        if row.status == "running" and row.epochs:
            text = f"running {row.epochs_done}/{row.epochs}"
        style = "bold red" if row.status in ("bad_input", "error", "diverged") else ""
        return Cell(Text(text, style) if style else text, (0, row.status))
    if key == "data":
        if row.dataset == "synthetic":
            return Cell(Text("SYN" if narrow else "SYNTHETIC", "bold"), (0, row.dataset))
        short = {"cifar100": "c100"}.get(row.dataset, row.dataset) if narrow else row.dataset
        return Cell(short, (0, row.dataset))
    if key == "best":
        if row.best_val_top1 is None:
            return Cell("-", (1, 0))
        text = pct(row.best_val_top1) + ("" if narrow else f" e{row.best_epoch}")
        return Cell(text, (0, row.best_val_top1))
    if key == "test":
        return Cell(pct(row.test_top1), _number(row.test_top1))
    if key == "time":
        seconds = elapsed(row, now)
        return Cell(duration(seconds), _number(seconds))
    if key == "sweep":
        return Cell(row.sweep_id or "", (0, row.sweep_id) if row.sweep_id else (1, 0))
    if key.startswith(CONFIG):
        value = flat.get(key[len(CONFIG) :])
        return Cell(value_text(value), _config_order(value))
    raise KeyError(key)


def plain(cell: Cell) -> str:
    return cell.text.plain if isinstance(cell.text, Text) else cell.text


# ------------------------------------------------------------------------------ the view


@dataclass
class View:
    """What the table shows: the config columns chosen, the sort, the filter."""

    config_keys: list[str] = field(default_factory=list)
    sort: str = "run"
    descending: bool = True  # newest first
    filter: str = ""

    def columns(self, sweeps: bool) -> list[Column]:
        """Every column in display order: registry fields, the config keys before the scores."""
        out = list(BASE_COLUMNS[:4])
        out += [config_column(k) for k in self.config_keys]
        out += BASE_COLUMNS[4:]
        if sweeps:
            out.append(SWEEP_COLUMN)
        return out

    def sort_by(self, key: str, columns: list[Column]) -> None:
        """Sort by `key`; the same key again reverses the order."""
        if key == self.sort:
            self.descending = not self.descending
            return
        column = next((c for c in columns if c.key == key), None)
        self.sort = key
        self.descending = column is not None and (column.numeric or key == "run")

    def next_sort(self, columns: list[Column]) -> None:
        """The sort moves to the next shown column (left to right, round), in its natural order."""
        keys = [c.key for c in columns]
        at = keys.index(self.sort) if self.sort in keys else -1
        key = keys[(at + 1) % len(keys)]
        self.sort = ""  # a new column: its natural direction
        self.sort_by(key, columns)

    def header(self, column: Column) -> str:
        if column.key != self.sort:
            return column.label
        return f"{column.label} {'▼' if self.descending else '▲'}"

    # -------------------------------------------------------------- persistence

    def save(self, root: Path) -> None:
        """The columns and sort, for the next session (a read-only folder: this session only)."""
        data = {"config_keys": self.config_keys, "sort": self.sort, "descending": self.descending}
        path = root / SETTINGS_FILE
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(data) + "\n")
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, root: Path) -> View:
        """The saved view, or the default (no file, or a damaged one)."""
        try:
            data = json.loads((root / SETTINGS_FILE).read_text())
        except (OSError, ValueError, RecursionError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        keys = data.get("config_keys")
        view = cls()
        if isinstance(keys, list) and all(isinstance(k, str) for k in keys):
            view.config_keys = keys
        if isinstance(data.get("sort"), str):
            view.sort = data["sort"]
        if isinstance(data.get("descending"), bool):
            view.descending = data["descending"]
        return view


def matches(terms: list[str], row: RunRow, cells: list[Cell], flat: dict[str, Any]) -> bool:
    """Every term is in the row's text (run id, preset, status, data, model, device, every
    column), case-insensitively; `key=value` compares one config key (`optim.name=sgd`)."""
    hay = " ".join(
        [row.run_id, row.preset, row.status, row.dataset, row.model, row.device or ""]
        + [plain(c) for c in cells]
    ).lower()
    for term in terms:
        key, eq, want = term.partition("=")
        if eq and key in flat:
            if value_text(flat[key]).lower() != want:
                return False
        elif term not in hay:
            return False
    return True


def sorted_rows(
    rows: list[RunRow], cells: dict[str, dict[str, Cell]], key: str, descending: bool
) -> list[RunRow]:
    """`rows` by column `key`; missing values last in either direction; ties newest first."""
    present = [r for r in rows if cells[r.run_id][key].order[0] == 0]
    missing = [r for r in rows if cells[r.run_id][key].order[0] != 0]
    present.sort(key=lambda r: (cells[r.run_id][key].order[1], r.started), reverse=descending)
    missing.sort(key=lambda r: r.started, reverse=True)
    return present + missing


def arrange(
    rows: list[RunRow],
    flat: dict[str, dict[str, Any]],
    view: View,
    sweeps: bool,
    now: float,
    narrow: bool = False,
) -> tuple[list[Column], list[RunRow], dict[str, dict[str, Cell]]]:
    """(every column, the rows `view` shows in its order, each run's cells by column key).
    `flat` holds each run's flattened config (`flatten_config`); `now` times live runs."""
    columns = view.columns(sweeps)
    cells = {
        r.run_id: {c.key: make_cell(r, c.key, flat.get(r.run_id, {}), now, narrow) for c in columns}
        for r in rows
    }
    terms = view.filter.lower().split()
    shown = [
        r for r in rows if matches(terms, r, list(cells[r.run_id].values()), flat.get(r.run_id, {}))
    ]
    return columns, sorted_rows(shown, cells, view.sort, view.descending), cells


def sort_key(name: str, config_keys: set[str]) -> str:
    """A column key for a name a user typed (`test`, `optim.lr`); BadInputError naming the
    nearest when it is neither a column nor a config key of the runs."""
    import difflib

    from engine.errors import BadInputError

    base = {c.key for c in (*BASE_COLUMNS, SWEEP_COLUMN)}
    if name in base:
        return name
    if name in config_keys:
        return CONFIG + name
    near = difflib.get_close_matches(name, sorted(base | config_keys), n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]}?" if near else ""
    raise BadInputError(
        f"{name!r} is neither a column ({', '.join(sorted(base))}) nor a config key of these "
        f"runs{hint}"
    )


def shorten_run_id(run_id: str, width: int) -> str:
    """`20260101-120000-quickstart-a1b2` in `width` characters: the middle (the preset, which
    its column shows) goes first, the date, time and the random tail stay."""
    if len(run_id) <= width:
        return run_id
    head = max(width - 5, 1)  # "…a1b2"
    return f"{run_id[:head].rstrip('-')}…{run_id[-4:]}"


@dataclass
class Layout:
    columns: list[Column]
    widths: dict[str, int]  # content width of each shown column
    narrow: bool


def fit(
    columns: list[Column],
    texts: dict[str, list[str]],
    headers: dict[str, str],
    width: int,
    sort: str,
) -> Layout:
    """The columns that fit `width` terminal cells, in display order. `texts[key]` holds each
    column's cell texts (in their full form) and `headers[key]` its header."""

    def natural(key: str) -> int:
        longest = max((len(t) for t in texts[key]), default=0)
        if key.startswith(CONFIG):
            longest = min(longest, CONFIG_WIDTH)
        return max(len(headers[key]), longest, 1)

    budget = width - SCROLLBAR
    need = {c.key: natural(c.key) for c in columns}
    full = sum(w + PAD for w in need.values())
    narrow = full > budget
    if narrow:  # the short forms first: best val without its epoch, SYN, c100
        for key, short in (("best", 7), ("data", 4)):
            if key in need:
                need[key] = max(len(headers[key]), min(need[key], short))
    kept = [c for c in columns if c.keep]
    used = sum(need[c.key] + PAD for c in kept)
    rest = sorted(
        (c for c in columns if not c.keep), key=lambda c: (c.key != sort, c.rank, columns.index(c))
    )
    chosen = {c.key for c in kept}
    give = max(need["run"] - RUN_MIN, 0)  # what the run id's middle can give up
    for column in rest:  # in priority order: the sort column, data, config keys, the others
        cost = need[column.key] + PAD
        mine = column.key.startswith(CONFIG) or column.key == sort  # the run id gives way
        if used + cost <= budget + (give if mine else 0):
            chosen.add(column.key)
            used += cost
        elif mine:  # squeezed into what is left (an ellipsis cuts its values)
            room = budget + give - used - PAD
            if room >= max(MIN_WIDTH, len(headers[column.key])):
                need[column.key] = room
                chosen.add(column.key)
                used += room + PAD
    if used > budget:  # the run id's middle goes (RUN_MIN at least)
        need["run"] = max(need["run"] - (used - budget), RUN_MIN)
    shown = [c for c in columns if c.key in chosen]
    return Layout(shown, {c.key: need[c.key] for c in shown}, narrow)


def cut(text: str | Text, width: int) -> str | Text:
    """A cell's text in `width` characters (an ellipsis marks a cut)."""
    if len(text) <= width:
        return text
    if isinstance(text, Text):
        out = text.copy()
        out.truncate(width, overflow="ellipsis")
        return out
    return text[: max(width - 1, 0)] + "…"
