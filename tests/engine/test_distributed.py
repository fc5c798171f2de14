"""Data-parallel training on the CPU: gloo, loopback only, hard timeouts.

Most checks run in one helper process (this file run as a script, `_driver`): it imports the
engine once, then forks groups of 1, 2 and 3 ranks that join a gloo process group on 127.0.0.1
(forking saves each rank the ~10 s import on a busy 2-core machine). The restart check goes
through the real CLI and torchrun.

Tolerances: 2 ranks and 1 process compute the same sums in different orders (per-rank batch
means, all-reduced gradients, BatchNorm statistics in two passes). In float32 that is not small:
the single process's own BatchNorm backward is ~1e-3 (relative) off the float64 gradient in the
first layers of a freshly initialised WRN (cancellation), and SAM amplifies it over 6 steps. So
the trajectory is compared twice: in float32 (the real thing, loose) and in float64 (the same
code with float64 as the default dtype), where 2 ranks and 1 process agree to 1e-14: the split
itself is exact. The ranks themselves end bit-identical either way.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e  # starts engine processes or trains: see pyproject's markers

pytestmark = pytest.mark.timeout(280)  # each test; the subprocesses have their own timeouts

ROOT = Path(__file__).resolve().parents[2]
# 2 ranks vs 1 process, float32 (measured: 3.7e-5, 2.1e-3 on a BatchNorm running variance ~1.3)
LOSS_RTOL, STATE_ATOL = 1e-4, 5e-3
# the same runs in float64 (measured: 5e-8, the loss is float32 at the end; 1e-14)
LOSS_RTOL_64, STATE_ATOL_64 = 1e-6, 1e-10

# 4 steps of 32 per epoch (3 with the cap), 2 epochs; SAM and synchronised BatchNorm on, so the
# trajectory match also covers SAM's perturbation from all-reduced gradients
TINY = [
    "model.name=wrn",
    "model.depth=10",
    "model.width=1",
    "data.subset=128",
    "data.val_size=100",
    "data.batch_size=32",
    "train.epochs=2",
    "train.max_steps_per_epoch=3",
    "train.device=cpu",
    "train.sync_bn=true",
    "train.log_interval_s=0.05",
    "eval.test=false",
    "sam.name=sam",
    "sam.rho=0.05",
]
# the CLI restart test: 4 steps per epoch, no SAM or SyncBatchNorm, the test set evaluated
_NOT_IN_CLI = {"sam.name", "sam.rho", "train.sync_bn", "train.max_steps_per_epoch", "eval.test"}


# --------------------------------------------------------------------------- the helper process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _state_hash(state: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for key, value in state.items():
        h.update(key.encode())
        h.update(value.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def _trainer_class():
    from engine.trainer import Trainer

    class Recording(Trainer):
        """Records each step's (this rank's) loss; makes it NaN at steps `poison` on the last
        rank (rank 1 of 2, the only rank of 1)."""

        poison: set[int] = set()
        losses: list[float]  # set by _train

        def _finite(self, loss):
            last = self.world.rank == self.world.size - 1
            if last and self.state.step + 1 in self.poison:
                loss = loss * float("nan")
            self.losses.append(float(loss.detach()))
            return super()._finite(loss)

    return Recording


def _train(run_dir: Path, overrides: list[str], poison: set[int] | None = None) -> dict[str, Any]:
    from engine import distributed
    from engine.config import load_config
    from engine.events import BadStep, EventWriter, read_events

    run_dir.mkdir(parents=True, exist_ok=True)
    from engine import world as torchrun

    world = torchrun.world()
    events = EventWriter(run_dir / "events.jsonl") if world.is_main else None
    cfg = load_config("quickstart", [*TINY, *overrides])
    trainer = _trainer_class()(
        cfg, run_dir, run_dir.name, "quickstart", events or distributed.NullEventWriter()
    )
    trainer.losses = []
    trainer.poison = poison or set()
    summary = trainer.run()
    state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    log = read_events(run_dir / "events.jsonl") if world.is_main else []
    return {
        "losses": trainer.losses,
        "hash": _state_hash(state),
        "state": state,
        "summary": summary,
        "history": trainer.history,
        "bad_steps": [e.step for e in log if isinstance(e, BadStep)],
    }


def _evaluate(run_dir: Path) -> dict[str, Any]:
    from engine import distributed
    from engine.config import load_config

    cfg = load_config("quickstart", [*TINY, "data.batch_size=30"])  # divisible by 3 ranks
    trainer = _trainer_class()(cfg, run_dir, "eval", "quickstart", distributed.NullEventWriter())
    trainer._setup()
    result = trainer.evaluate(trainer.data.val, keep_logits=True)
    return {
        "count": result.count,
        "top1": result.top1,
        "top5": result.top5,
        "loss": result.loss,
        "logits": result.logits,
        "labels": trainer.data.val.labels.clone(),
        "stopped_by": _stop_in_a_stoppable_evaluation(trainer),
    }


def _stop_in_a_stoppable_evaluation(trainer: Any) -> int | None:
    """A signal that only rank 1 has, at the second batch round, where its shorter shard has no
    batch left (34/33/33 rows in batches of 33: two on rank 0, one elsewhere): the signal
    `Stopped` each rank raised, or None (one process: no signal)."""
    from engine import world as torchrun
    from engine.evaluation import Stopped

    evaluator = trainer.evaluator
    asked = iter(range(1_000))
    rank = torchrun.world().rank
    evaluator.batch_size = 33
    evaluator.stop_signal = lambda: 15 if rank == 1 and next(asked) == 1 else None
    try:
        evaluator.evaluate(trainer.model, trainer.data.val, trainer.model, stoppable=True)
    except Stopped as stopped:
        return stopped.signum
    return None


def _sync_bn_check() -> dict[str, Any]:
    """This rank's half of a batch through CPUSyncBatchNorm: output, input gradient, stats."""
    import torch

    from engine import distributed
    from engine import world as torchrun

    w = torchrun.world()
    g = torch.Generator().manual_seed(7)
    full = torch.randn(8, 3, 4, 4, generator=g) * 2 + 1
    weights = torch.randn(8, 3, 4, 4, generator=g)  # the loss is sum(out * weights) over ranks
    rows = slice(4 * w.rank, 4 * w.rank + 4)
    bn = distributed.sync_batchnorm(torch.nn.BatchNorm2d(3, momentum=0.3), torch.device("cpu"))
    assert isinstance(bn, distributed.CPUSyncBatchNorm)
    assert bn.running_mean is not None and bn.running_var is not None
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
    x = full[rows].clone().requires_grad_(True)
    out = bn(x)
    (out * weights[rows]).sum().backward()
    return {
        "out": out.detach(),
        "grad_x": x.grad,
        "grad_w": bn.weight.grad,
        "mean": bn.running_mean.clone(),
        "var": bn.running_var.clone(),
        "full": full,
        "weights": weights,
    }


def _rank_main(rank: int, size: int, port: int, job: str, out: str) -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    if size == 1:
        for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            os.environ.pop(key)
    from engine import distributed

    if size > 1:
        distributed.init(torch.device("cpu"))
    base = Path(out)
    results: dict[str, Any] = {}
    if job == "train":
        if size > 1:
            results["sync_bn"] = _sync_bn_check()
        results["train"] = _train(base / f"run{size}", [])
        torch.set_default_dtype(torch.float64)  # the same run in float64: see the tolerances
        results["train64"] = _train(base / f"run64-{size}", [])
        torch.set_default_dtype(torch.float32)
        results["nan"] = _train(base / f"nan{size}", ["train.epochs=1"], poison={2})
    if job == "eval" or size == 1:
        results["eval"] = _evaluate(base / f"eval{size}")
    torch.save(results, base / f"{job}{size}-rank{rank}.pt")
    distributed.shutdown()


def _driver(out: str) -> int:
    import multiprocessing

    import torch

    torch.set_num_threads(1)
    import engine.trainer  # noqa: F401  (imported once, before forking)

    fork = multiprocessing.get_context("fork")
    for job, size in (("train", 1), ("train", 2), ("eval", 3)):
        port = _free_port()
        procs = [
            fork.Process(target=_rank_main, args=(r, size, port, job, out)) for r in range(size)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=150)
        codes = [p.exitcode for p in procs]
        for p in procs:
            if p.is_alive():
                p.kill()
        if codes != [0] * size:
            print(f"{job} x{size}: exit codes {codes}", file=sys.stderr)
            return 1
    return 0


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, Any]:
    import torch

    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, __file__, str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {f.stem: torch.load(f, weights_only=False) for f in sorted(out.glob("*-rank*.pt"))}


@pytest.mark.parametrize(
    ("key", "loss_rtol", "state_atol"),
    [("train", LOSS_RTOL, STATE_ATOL), ("train64", LOSS_RTOL_64, STATE_ATOL_64)],
    ids=["float32", "float64"],
)
def test_two_processes_follow_the_one_process_trajectory(results, key, loss_rtol, state_atol):
    import torch

    one = results["train1-rank0"][key]
    r0, r1 = results["train2-rank0"][key], results["train2-rank1"][key]
    assert len(one["losses"]) == len(r0["losses"]) == 6
    two = [(a + b) / 2 for a, b in zip(r0["losses"], r1["losses"], strict=True)]  # equal halves
    for step, (a, b) in enumerate(zip(one["losses"], two, strict=True), 1):
        assert abs(a - b) <= loss_rtol * abs(a), (step, a, b)
    assert r0["hash"] == r1["hash"]  # bit-identical weights and BN statistics on both ranks
    for name, value in one["state"].items():
        if value.is_floating_point():
            assert torch.allclose(value, r0["state"][name], atol=state_atol, rtol=0), name
        else:
            assert torch.equal(value, r0["state"][name]), name
    for a, b in zip(one["history"], r0["history"], strict=True):  # epoch sums over ranks
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=loss_rtol)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=max(loss_rtol, 1e-6))
        if key == "train64":
            assert a["train_top1"] == b["train_top1"] and a["val_top1"] == b["val_top1"]
    assert r0["summary"]["device"] == "cpu x2" and one["summary"]["device"] == "cpu"


def test_sync_batchnorm_matches_batchnorm_over_the_global_batch(results):
    import torch

    ranks = [results[f"train2-rank{r}"]["sync_bn"] for r in (0, 1)]
    full, weights = ranks[0]["full"], ranks[0]["weights"]
    bn = torch.nn.BatchNorm2d(3, momentum=0.3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
    x = full.clone().requires_grad_(True)
    out = bn(x)
    (out * weights).sum().backward()
    assert x.grad is not None and bn.weight.grad is not None
    assert bn.running_mean is not None and bn.running_var is not None
    assert torch.allclose(torch.cat([r["out"] for r in ranks]), out.detach(), atol=1e-5)
    assert torch.allclose(torch.cat([r["grad_x"] for r in ranks]), x.grad, atol=1e-5)
    # each rank's parameter gradient is its part; DDP would average: their sum is the whole
    assert torch.allclose(ranks[0]["grad_w"] + ranks[1]["grad_w"], bn.weight.grad, atol=1e-5)
    for r in ranks:
        assert torch.allclose(r["mean"], bn.running_mean, atol=1e-6)
        assert torch.allclose(r["var"], bn.running_var, atol=1e-6)


def test_a_non_finite_loss_on_one_rank_skips_the_step_on_every_rank(results):
    import torch

    one = results["train1-rank0"]["nan"]
    r0, r1 = results["train2-rank0"]["nan"], results["train2-rank1"]["nan"]
    assert r0["summary"]["status"] == r1["summary"]["status"] == one["summary"]["status"] == "done"
    assert r0["bad_steps"] == one["bad_steps"] == [2]  # rank 1's NaN, recorded by rank 0
    assert r0["hash"] == r1["hash"]  # both skipped the same update: no rank applied it alone
    for key, value in one["state"].items():
        if value.is_floating_point():
            assert torch.allclose(value, r0["state"][key], atol=STATE_ATOL, rtol=0), key


def test_evaluation_is_exact_on_three_processes(results):
    import torch

    one = results["train1-rank0"]["eval"]
    three = [results[f"eval3-rank{r}"]["eval"] for r in range(3)]
    assert one["count"] == 100
    for r in three:  # every rank gets the whole result; 100 = 34 + 33 + 33, nothing padded
        assert r["count"] == 100
        assert r["top1"] == one["top1"] and r["top5"] == one["top5"]
        assert r["loss"] == pytest.approx(one["loss"], rel=1e-6)
        assert r["logits"].shape == one["logits"].shape == (100, 100)
        assert torch.allclose(r["logits"], one["logits"], atol=1e-5)  # row by row, in order
    assert one["top1"] * 100 == pytest.approx((one["logits"].argmax(1) == one["labels"]).sum())


def test_a_stop_signal_in_the_test_pass_is_agreed_by_every_rank(results):
    """One rank's signal stops every rank at the same batch round, also where a rank's shorter
    shard has no batch left: none is left waiting at a collective the others skipped."""
    assert results["train1-rank0"]["eval"]["stopped_by"] is None
    assert [results[f"eval3-rank{r}"]["eval"]["stopped_by"] for r in range(3)] == [15] * 3


def test_shards_partition_the_set_like_tensor_split():
    import torch

    from engine.distributed import shard
    from engine.world import World

    for n in range(0, 23):
        for size in range(1, 6):
            expect = [
                (int(p[0]), int(p[-1]) + 1) if len(p) else None
                for p in torch.tensor_split(torch.arange(n), size)
            ]
            got = [shard(n, World(rank=r, size=size)) for r in range(size)]
            assert [g if g[1] > g[0] else None for g in got] == expect
            assert sum(b - a for a, b in got) == n


def test_a_crashed_rank_restarts_the_job_from_its_last_checkpoint(tmp_path, monkeypatch):
    """The real path: cifar-tui --gpus 2 --max-restarts 1 -> torchrun -> 2 engine processes.

    Rank 1 kills itself (SIGKILL) after step 6 of 8 (epoch 2); torchrun restarts both, and they
    resume from the end of epoch 1 (the last checkpoint). No SyncBatchNorm here: DDP's buffer
    broadcast path."""
    from engine.events import Evaluated, Finished, Resumed, RunStarted, Step, read_events
    from engine.runs import RunRegistry
    from tests.conftest import cli

    monkeypatch.setenv("CIFAR_TUI_TEST_CRASH_AT_STEP", "6")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    sets = [o for o in TINY if o.split("=")[0] not in _NOT_IN_CLI]
    done = cli(
        "--run",
        "quickstart",
        "--gpus",
        "2",
        "--max-restarts",
        "1",
        "--json",
        *(arg for o in [*sets, "eval.test=true"] for arg in ("--set", o)),
        checkpoints=tmp_path,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["status"] == "done" and summary["epochs_done"] == 2 and summary["step"] == 8
    run_dir = Path(summary["run_dir"])
    events = read_events(run_dir / "events.jsonl")
    types = [e.type for e in events]
    assert types.count("run_started") == 1 and "failed" not in types
    (resumed,) = [e for e in events if isinstance(e, Resumed)]
    assert (resumed.epoch, resumed.step, resumed.epoch_step) == (1, 4, 0)
    assert resumed.device == "cpu x2" and resumed.batch_size == 32
    (started,) = [e for e in events if isinstance(e, RunStarted) and e.type == "run_started"]
    assert started.pid == resumed.pid  # torchrun's pid (what a UI signals), not a worker's
    steps = [e.step for e in events if isinstance(e, Step)]
    assert max(steps[: types.index("resumed")]) >= 6  # rank 0 got past the crash step first
    tests = [e.count for e in events if isinstance(e, Evaluated)]
    assert tests and all(n == 2000 for n in tests)  # the whole test set, each image once
    last = events[-1]
    assert isinstance(last, Finished) and last.status == "done"
    (row,) = RunRegistry(tmp_path).runs()
    assert row.status == "done"


def test_torchrun_command_and_exit_codes():
    """torchrun exits 1 when signalled or when a rank failed; the CLI gives the engine's code."""
    import signal

    from engine.events import Failed, Finished
    from tui.orchestration.launcher import engine_command, torchrun_exit_code

    plain = engine_command(Path("runs/x"), ["--resume"])
    assert plain == [sys.executable, "-m", "engine", "run", "runs/x", "--resume"]
    assert engine_command(Path("runs/x"), [], gpus=4, max_restarts=2) == [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=4",
        "--max-restarts=2",
        "-m",
        "engine",
        "run",
        "runs/x",
    ]
    done = Finished(status="done", summary={})
    stopped = Finished(status="interrupted", summary={})
    assert torchrun_exit_code(0, done, None) == 0
    assert torchrun_exit_code(1, stopped, signal.SIGINT) == 130
    assert torchrun_exit_code(1, stopped, signal.SIGTERM) == 143
    assert torchrun_exit_code(0, stopped, None) == 0  # stop_after_epoch
    assert torchrun_exit_code(1, stopped, None) == 143  # a UI sent torchrun SIGTERM
    assert torchrun_exit_code(1, Finished(status="diverged", summary={}), None) == 3
    assert torchrun_exit_code(1, Failed(status="bad_input", message="m"), None) == 2
    assert torchrun_exit_code(1, Failed(status="error", message="m"), None) == 1
    assert torchrun_exit_code(1, None, None) == 1  # died without a word
    assert torchrun_exit_code(1, None, signal.SIGTERM) == 143


def test_gpus_options_are_checked_before_anything_starts(tmp_path):
    from tests.conftest import cli

    done = cli("--run", "quickstart", "--max-restarts", "1", checkpoints=tmp_path, timeout=60)
    assert done.returncode == 2 and "--max-restarts needs --gpus" in done.stderr
    done = cli("--run", "quickstart", "--gpus", "0", checkpoints=tmp_path, timeout=60)
    assert done.returncode == 2 and "--gpus" in done.stderr
    done = cli("--run", "quickstart", "--gpus", "3", checkpoints=tmp_path, timeout=60)
    assert done.returncode == 2 and "data.batch_size = 32 (the global batch)" in done.stderr
    assert not list(tmp_path.glob("*/config.yaml"))


def test_a_global_batch_that_does_not_divide_by_the_processes_is_refused(tmp_path, monkeypatch):
    from engine.config import load_config
    from engine.errors import ConfigError
    from engine.trainer import Trainer

    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    cfg = load_config("quickstart", [*TINY, "data.batch_size=32"])
    from engine import distributed

    trainer = Trainer(cfg, tmp_path, "x", "quickstart", distributed.NullEventWriter())
    with pytest.raises(ConfigError, match="data.batch_size = 32 .*3 processes"):
        trainer._setup()


if __name__ == "__main__":
    sys.exit(_driver(sys.argv[1]))
