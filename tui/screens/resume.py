"""Resume an interrupted or crashed run from the dashboard (Results `R`, Runs `R`): the checks of
`cifar-tui --resume RUN` (`prepare_resume`: nothing written until the engine accepts), the engine
started on the run folder as the Monitor starts one, and once it has accepted the resume (its
`resumed` event), the Monitor following it. A refusal is one notification; nothing is lost."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from engine.checkpoint_files import CheckpointError
from engine.errors import BadInputError
from engine.events import EVENTS_FILE
from engine.run_lock import is_running

if TYPE_CHECKING:
    from tui.app import CifarApp


def resume_run(app: CifarApp, run_dir: Path) -> None:
    """Check and start the resume in a thread worker; the Monitor shows it once it runs."""
    app.notify(f"resuming {Path(run_dir).name} ...", timeout=4)
    app.run_worker(
        lambda: _resume(app, Path(run_dir)),
        thread=True,
        exit_on_error=False,
        group="resume",
        name=f"resuming {Path(run_dir).name}",
    )


def _resume(app: CifarApp, run_dir: Path) -> None:
    from tui.orchestration.launcher import prepare_resume, start_engine
    from tui.orchestration.supervisor import ENGINE_LOG

    try:
        plan = prepare_resume(run_dir.name, app.checkpoints, None, [])
    except (BadInputError, CheckpointError) as exc:  # one line each
        app.call_from_thread(app.notify, str(exc), title="cannot resume", severity="error")
        return
    log = run_dir / EVENTS_FILE
    size = log.stat().st_size if log.exists() else 0
    process = start_engine(
        run_dir, plan.engine_args(), log_file=ENGINE_LOG, extra_env=plan.engine_env()
    )
    # follow it once it has accepted the resume (its `resumed` event) or has exited: a refused
    # resume writes no event
    while process.poll() is None and (log.stat().st_size if log.exists() else 0) == size:
        threading.Event().wait(0.05)
    threading.Thread(target=process.wait, daemon=True).start()  # reap it when it ends
    if process.returncode not in (None, 0) and not is_running(run_dir):
        output = run_dir / ENGINE_LOG
        text = output.read_text(errors="replace") if output.is_file() else ""
        lines = text.strip().splitlines()
        why = lines[-1] if lines else f"exit code {process.returncode}"
        app.call_from_thread(app.notify, why, title="the resume failed", severity="error")
        return
    app.call_from_thread(lambda: app.call_later(app.attach, run_dir))
