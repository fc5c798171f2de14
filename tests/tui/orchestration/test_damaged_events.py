"""The headless printer on a log with a bad line: that line is skipped with one warning naming the
file and the line, and every other event is printed."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from engine.events import Finished
from tests.tui.fixtures import make_run
from tui.orchestration.headless import HeadlessPrinter, follow


def test_follow_prints_every_event_but_the_bad_line(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)
    log = run_dir / "events.jsonl"
    lines = log.read_text().splitlines()
    lines.insert(3, json.dumps({"type": "epoch_end", "epoch": 3}))
    step = json.loads(lines[2]) | {"loss": "high"}
    lines.insert(8, json.dumps(step))
    log.write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    printer = HeadlessPrinter(Console(file=out, width=200), run_dir=run_dir)
    final = follow(run_dir, None, printer)
    assert isinstance(final, Finished) and final.status == "done"
    text = out.getvalue()
    assert sum(f"{e}/12" in text for e in range(1, 13)) == 12  # every epoch line
    assert f"warning: skipped 2 bad lines of {log}, the first line 4: epoch_end event" in text
