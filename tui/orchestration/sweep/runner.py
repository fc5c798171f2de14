"""Running a sweep's plan: its unfinished runs, one or several at a time (torch-free).

Started again, a sweep skips finished runs (`done` or `diverged`; records their engine was
killed before writing are completed from their event log), resumes an unfinished one from
its last checkpoint (the same path as `--resume`), follows one whose engine still runs, and
starts again a run that stopped before its first checkpoint (its folder is removed; a folder
with a finished result or a valid checkpoint is never removed). Ctrl-C
stops the current runs (the engines save last.pt) and the sweep exits 130.

With several GPUs (CUDA_VISIBLE_DEVICES, else `nvidia-smi -L`), that many runs go at once, each
on its own `cuda:i`; `--jobs N` sets the number (several CPU runs at once share the cores through
OMP_NUM_THREADS). Runs are engine processes started by tui.orchestration.launcher.

With `stop_losers`, a look after each closed round of seeds may stop a recipe (the rule:
tui.orchestration.sweep.stop_losers); its runs not started yet are skipped, now and in every
later run of the sweep.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from engine import exit_codes
from engine.checkpoint_files import CheckpointError, read_verified
from engine.completion import complete_records
from engine.config import dump_config
from engine.errors import BadInputError
from engine.events import EVENTS_FILE, EventTail
from engine.outcome import RunStatus, SummaryError, read_summary
from engine.runs import RegistryError, RunRegistry, create_run_dir
from tui.orchestration.launcher import completion, prepare_resume, resolve_config, start_engine
from tui.orchestration.procs import EngineProcess, ForwardSignals, Process, exit_code, live_engine
from tui.orchestration.supervisor import read_new
from tui.orchestration.sweep.plan import Plan, PlannedRun
from tui.orchestration.sweep.printer import SweepPrinter
from tui.orchestration.sweep.state import FINISHED, SweepState, run_status, sweep_results
from tui.orchestration.sweep.stop_losers import find_losers, look_confidence

POLL_S = 0.2


def gpu_count() -> int:
    """GPUs this process may use, found without torch: CUDA_VISIBLE_DEVICES, else nvidia-smi."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip()]
        return 0 if not ids or ids[0].strip() == "-1" else len(ids)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


@dataclass
class Job:
    run: PlannedRun
    run_dir: Path
    process: Process
    tail: EventTail
    printer: SweepPrinter
    slot: int


def worth_keeping(run_dir: Path) -> str | None:
    """What in `run_dir` must never be deleted: a finished result or a valid checkpoint."""
    try:
        if read_summary(run_dir) is not None:
            return "a finished result"
    except SummaryError:
        return "a finished result (its summary is damaged)"
    for name in ("last.pt", "last.prev.pt", "best.pt"):
        with contextlib.suppress(CheckpointError):
            read_verified(run_dir / name)
            return f"a valid checkpoint ({name})"
    return None


class SweepRunner:
    """Runs a plan's unfinished runs, `slots` at a time, recording run ids in the state."""

    def __init__(
        self,
        plan: Plan,
        root: Path,
        console: Console,
        *,
        data_dir: str | None = None,
        device: str | None = None,
        slots: int = 1,
        gpus: int = 0,
        stop_losers: bool = False,
    ) -> None:
        """`slots` runs at once; with `gpus` > 1, slot i runs on cuda:(i mod gpus)."""
        self.plan, self.root, self.console = plan, root, console
        self.data_dir, self.device = data_dir, device
        self.slots = max(1, slots)
        self.gpus = gpus
        self.stop_losers = stop_losers
        self.state = SweepState.load(root, plan)
        self.total = len(plan.runs)
        self.codes: dict[str, str] = {}  # key -> outcome of this session's runs

    def _warn(self, text: str) -> None:
        self.console.print(f"warning: {text}", style="yellow", markup=False, soft_wrap=True)

    def _prefix(self, run: PlannedRun) -> str:
        return f"[{run.index}/{self.total}] {run.recipe.label} · seed {run.seed}"

    def _slot_device(self, run: PlannedRun, slot: int) -> str | None:
        if self.gpus > 1 and self.device is None and run.config.train.device in ("auto", "cuda"):
            return f"cuda:{slot % self.gpus}"
        return self.device

    @contextlib.contextmanager
    def _cpu_share(self) -> Iterator[None]:
        """Several runs at once without GPUs: each engine gets its share of the CPU cores
        (OMP_NUM_THREADS, unless set already), instead of every one spinning on all of them."""
        if self.slots == 1 or self.gpus > 0 or "OMP_NUM_THREADS" in os.environ:
            yield
            return
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.slots))
        try:
            yield
        finally:
            del os.environ["OMP_NUM_THREADS"]

    def todo(self) -> list[tuple[PlannedRun, str]]:
        """(run, `follow` | `resume` | `start`) for each planned run not finished yet; `follow`:
        its engine still runs (the sweep that started it was stopped without it)."""
        out = []
        for run in self.plan.runs:
            if self.state.skipped(run.key):
                continue  # left out on purpose by --stop-losers
            run_id = self.state.run_id(run.key)
            if run_id is None:
                out.append((run, "start"))
                continue
            status = run_status(self.root / run_id)  # the lock first, then the events
            if status in FINISHED:
                self._complete(run, self.root / run_id)
                continue
            if status is RunStatus.RUNNING:
                out.append((run, "follow"))
                continue
            has_checkpoint = any(
                (self.root / run_id / name).is_file() for name in ("last.pt", "last.prev.pt")
            )
            out.append((run, "resume" if has_checkpoint else "start"))
        return out

    def _start(self, run: PlannedRun, how: str, slot: int) -> Job:
        device = self._slot_device(run, slot)
        quiet = self.slots > 1
        output: dict[str, Any] = {"log_file": "engine.log"} if quiet else {}
        old_id = self.state.run_id(run.key)
        pid = live_engine(self.root / old_id) if how == "follow" and old_id else None
        if pid is not None and old_id is not None:
            self.console.print(
                f"{self._prefix(run)}: {old_id} is still running (pid {pid}); following it",
                soft_wrap=True,
                highlight=False,
            )
            run_dir = self.root / old_id
            offset = (run_dir / EVENTS_FILE).stat().st_size
            return self._job(run, run_dir, EngineProcess(pid), offset, slot)
        if how == "follow" and old_id is not None and run_status(self.root / old_id) in FINISHED:
            # the engine it was to follow wrote `finished` and exited since the plan was made:
            # a result, taken as it is (resuming it would run its test pass a second time)
            run_dir = self.root / old_id
            offset = (run_dir / EVENTS_FILE).stat().st_size
            return self._job(run, run_dir, EngineProcess.ended(), offset, slot)
        if how in ("resume", "follow") and old_id is not None:
            try:
                plan = prepare_resume(
                    old_id, self.root, None, [], data_dir=self.data_dir, device=device
                )
            except (BadInputError, CheckpointError) as exc:
                self.console.print(
                    f"{self._prefix(run)}: cannot resume {old_id}: {exc}", soft_wrap=True
                )
                how = "start"
            else:
                self.console.print(
                    f"{self._prefix(run)}: resuming {old_id}", soft_wrap=True, highlight=False
                )
                run_dir = plan.run_dir
                offset = (run_dir / EVENTS_FILE).stat().st_size
                process = start_engine(
                    run_dir, plan.engine_args(), extra_env=plan.engine_env(), **output
                )
                return self._job(run, run_dir, process, offset, slot)
        if old_id is not None:
            self._discard(run, old_id)
        cfg = resolve_config(
            run.recipe.preset, run.overrides, data_dir=self.data_dir, device=device
        )
        name = Path(run.recipe.preset).stem
        meta = {"sweep_id": self.plan.sweep_id, "recipe": run.recipe.label, "seed": run.seed}
        run_id, run_dir = create_run_dir(self.root, name, dump_config(cfg), meta)
        self.state.set_run_id(run.key, run_id)  # before the engine starts: never orphaned
        self.console.print(f"{self._prefix(run)}: run {run_id}", soft_wrap=True, highlight=False)
        process = start_engine(run_dir, [], **output)
        return self._job(run, run_dir, process, 0, slot)

    def _complete(self, run: PlannedRun, run_dir: Path) -> None:
        """Complete a finished run's records its engine did not get to write (killed after its
        `finished` event; `engine.completion`)."""
        completed = complete_records(run_dir)
        if completed:
            self.console.print(
                f"{self._prefix(run)}: {run_dir.name} finished; {completion(completed)}",
                soft_wrap=True,
                highlight=False,
            )

    def _discard(self, run: PlannedRun, run_id: str) -> None:
        """Forget a planned run that cannot go on, before starting it again. Its folder is
        removed only when it holds nothing of value: a folder with a finished result or a valid
        checkpoint is kept as it is (the new attempt gets a new run id)."""
        run_dir = self.root / run_id
        gone = not run_dir.is_dir()
        kept = None if gone else worth_keeping(run_dir)
        if kept is None:
            if not gone:
                shutil.rmtree(run_dir)
            with contextlib.suppress(RegistryError):  # derived: `runs --rebuild` drops it too
                RunRegistry(self.root).forget(run_id)
            why = "its folder is gone" if gone else "no usable checkpoint; its folder is removed"
        else:
            why = f"it holds {kept}, so its folder is kept as it is"
        self.console.print(
            f"{self._prefix(run)}: {run_id} cannot continue ({why}); starting it again",
            soft_wrap=True,
            highlight=False,
        )

    def _job(
        self,
        run: PlannedRun,
        run_dir: Path,
        process: Process,
        offset: int,
        slot: int,
    ) -> Job:
        printer = SweepPrinter(self.console, self._prefix(run), self.slots > 1, run_dir)
        return Job(run, run_dir, process, EventTail(run_dir / EVENTS_FILE, offset), printer, slot)

    def _look(self, todo: deque[tuple[PlannedRun, str]], active: dict[int, Job]) -> None:
        """--stop-losers: when a round of seeds has closed since the last look, stop the rows
        found below the best one and take their runs not started yet out of `todo`."""
        seeds = self.plan.spec.seeds
        open_rounds = {run.seed for run, _ in todo} | {job.run.seed for job in active.values()}
        closed = {s for s in seeds if s not in open_rounds} - self.state.looked
        if not closed or not todo:
            return  # nothing new to look at, or nothing left a stop could skip
        look = self.state.looks + 1
        _, results = sweep_results(self.root, self.plan.sweep_id, self._warn)
        confidence = look_confidence(len(seeds), len(self.plan.spec.recipes))
        found = find_losers(results, confidence, set(self.state.stopped), look, len(seeds))
        left_out = {
            s.recipe: [r.key for r, how in todo if r.recipe.label == s.recipe and how != "follow"]
            for s in found
        }
        stops = [s for s in found if left_out[s.recipe]]  # a row with nothing left goes on
        self.state.record_look(closed, {s.recipe: s.reason() for s in stops}, left_out)
        for s in stops:
            skipped = [r.seed for r, _ in todo if r.key in left_out[s.recipe]]
            seeds_text = ", ".join(map(str, skipped))
            self.console.print(
                f"stop-losers: {s.recipe} stops: {s.reason()}; seeds skipped: {seeds_text}",
                soft_wrap=True,
                highlight=False,
            )
        kept = [item for item in todo if not self.state.skipped(item[0].key)]
        todo.clear()
        todo.extend(kept)

    def run(self) -> int:
        """Run what is left. Exit code: 0 all done, 3 some diverged, 1 some failed (others
        still ran), 2 bad input before any run, 128+N when stopped by signal N."""
        self.state.save()
        todo = deque(self.todo())
        skipped = sum(bool(self.state.skipped(r.key)) for r in self.plan.runs)
        finished = self.total - len(todo) - skipped
        resumes = sum(how == "resume" for _, how in todo)
        self.console.print(
            f"sweep {self.plan.sweep_id}: {len(self.plan.spec.recipes)} recipes x "
            f"{len(self.plan.spec.seeds)} seeds = {self.total} runs; {finished} finished, "
            f"{resumes} to resume, {len(todo) - resumes} to start"
            + (f", {skipped} skipped (stopped by --stop-losers)" if skipped else "")
            + (f"; {self.slots} at a time" if self.slots > 1 else ""),
            soft_wrap=True,
            highlight=False,
        )
        for recipe, why in self.state.stopped.items():
            self.console.print(
                f"stop-losers: {recipe} was stopped earlier ({why}); its seeds stay skipped",
                soft_wrap=True,
                highlight=False,
            )
        active: dict[int, Job] = {}
        if self.stop_losers:
            self._look(todo, active)
        stop_code: int | None = None
        with ForwardSignals() as forward, self._cpu_share():
            while todo or active:
                free = [s for s in range(self.slots) if s not in active]
                while todo and free and stop_code is None and forward.received is None:
                    run, how = todo.popleft()
                    slot = free.pop(0)
                    try:
                        job = self._start(run, how, slot)
                    except BadInputError as exc:
                        self.console.print(f"{self._prefix(run)}: {exc}", soft_wrap=True)
                        self.codes[run.key] = RunStatus.BAD_INPUT
                        continue
                    active[slot] = job
                    forward.add(job.process)
                if not active:
                    break
                for slot, job in list(active.items()):
                    alive = job.process.poll() is None
                    for event in read_new(job.tail, self._warn):
                        job.printer.handle(event)
                    if alive:
                        continue
                    job.printer.stop()
                    del active[slot]
                    proc = job.process
                    code = exit_code(proc) if isinstance(proc, subprocess.Popen) else proc.wait()
                    status = run_status(job.run_dir)
                    self._complete(job.run, job.run_dir)
                    self.codes[job.run.key] = status
                    if status is RunStatus.INTERRUPTED or code in (130, 143):
                        stop_code = code or stop_code or 0
                    elif self.stop_losers:
                        self._look(todo, active)
                if active:
                    time.sleep(POLL_S)
        if forward.received is not None:
            stop_code = exit_codes.after_signal(forward.received)
        if stop_code is not None:
            self.console.print(
                f"sweep {self.plan.sweep_id} stopped; run `cifar-tui sweep "
                f"{self.plan.spec.source}` again to continue where it stopped",
                soft_wrap=True,
                highlight=False,
            )
            return stop_code
        outcomes = set(self.codes.values())
        if outcomes - {"done", "diverged"}:
            return exit_codes.ERROR
        return exit_codes.DIVERGED if "diverged" in outcomes else exit_codes.OK
