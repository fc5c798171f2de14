"""`cifar-tui runs compare` on hand-built runs (in-process: no engine): the tables as plain text,
the arms and their test, the metric by epoch, and the refusals (one line, exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.tui.compare_runs import Made, two_arms
from tui.cli import app


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Made], list[Made]]:
    root = tmp_path_factory.mktemp("compare-cli") / "checkpoints"
    a, b = two_arms(root)
    return root, a, b


def compare(root: Path, *args: str):
    return CliRunner().invoke(
        app, ["runs", "compare", "--checkpoints", str(root), *args], env={"COLUMNS": "160"}
    )


def lines_starting(text: str, word: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.split()[:1] == [word]]


def test_two_runs_print_the_config_diff_and_the_recall_change_without_a_test(built) -> None:
    root, a, b = built
    result = compare(root, a[0].run_id, b[0].run_id)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert lines_starting(out, "optim.name") == [["optim.name", "sgd", "adamw"]]
    assert lines_starting(out, "preset") == [["preset", "quickstart", "adamw"]]
    assert "model.name" not in out  # the same in both: not in the diff
    assert "A (quickstart) vs B (adamw)" in out and "no significance test" in out
    apple = lines_starting(out, "apple")[0]
    assert apple[-1].startswith("+") and len(apple) == 4  # class, A %, B %, Δ pp: no p


def test_seeds_are_paired_marked_and_a_metric_is_tabled_by_epoch(built) -> None:
    root, a, b = built
    ids = [m.run_id for m in a + b]
    result = compare(root, *ids, "--metric", "val_top1", "--top", "0")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "A (quickstart, 3 seeds) vs B (adamw, 3 seeds)" in out
    assert "paired t test per class across 3 seeds" in out and "Benjamini-Hochberg" in out
    assert lines_starting(out, "apple")[0][-1] == "*"
    assert lines_starting(out, "maple")[0][-1] == "*"
    assert lines_starting(out, "train.seed")[0] == ["train.seed", "0", "1", "2", "0", "1", "2"]
    header = next(line for line in lines_starting(out, "epoch"))
    assert header == ["epoch", "A1", "A2", "A3", "B1", "B2", "B3"]
    assert len(lines_starting(out, "3")) == 1  # epoch 3 of 3
    assert "\x1b[" not in out  # no terminal: plain text


@pytest.mark.parametrize(
    "args, words",
    [
        (["20260101-120000"], "compare needs two runs or more"),
        (["20260101-120000", "20260101-12000x"], "unknown run '20260101-12000x'"),
        (["20260101-120000", "20260102-120000", "--metric", "val_tpo1"], "did you mean val_top1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(built, args: list[str], words: str) -> None:
    result = compare(built[0], *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert words in result.stderr and result.stderr.count("\n") == 1


def test_the_group_option_gives_the_runs_folder(built) -> None:
    root, a, b = built
    result = CliRunner().invoke(
        app, ["runs", "--checkpoints", str(root), "compare", a[0].run_id, b[0].run_id]
    )
    assert result.exit_code == 0 and "optim.name" in result.stdout


def test_a_damaged_registry_is_named_in_one_line(built, tmp_path: Path) -> None:
    import shutil

    root, a, b = built
    shutil.copytree(root, tmp_path / "c")
    (tmp_path / "c" / "runs.sqlite").write_bytes(b"not a database" * 100)
    result = compare(tmp_path / "c", a[0].run_id, b[0].run_id)
    assert result.exit_code == 2
    assert f"{tmp_path / 'c' / 'runs.sqlite'}" in result.stderr
    assert result.stderr.count("\n") == 1


def test_every_arm_is_compared_with_the_first(built) -> None:
    root, a, b = built
    result = compare(root, a[0].run_id, "vs", b[0].run_id, "vs", a[1].run_id)
    assert result.exit_code == 0, result.output
    assert "A (quickstart) vs B (adamw)" in result.stdout
    assert "A (quickstart) vs C (quickstart)" in result.stdout
