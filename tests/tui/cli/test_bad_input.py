"""Bad input, table-driven: a one-line error naming the problem, exit code 2, no traceback,
nothing written, and no payload ever executed."""

from __future__ import annotations

import hashlib
import pickle
import sqlite3
from pathlib import Path

import pytest

from engine.config import dump_config, load_config
from engine.runs import DB_FILE, RunRegistry, create_run_dir
from tests.conftest import cli
from tests.engine.test_registry_damage import DAMAGE, record_run

MARKER = "PWNED"  # a payload that ran would create this file


class _Payload:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _preset(tmp: Path, text: str) -> str:
    path = tmp / "bad.yaml"
    path.write_text(text)
    return str(path)


def _run_with_checkpoint(tmp: Path, ck: Path, payload: bytes | None, *, raw: bytes | None = None):
    """A run folder whose last.pt holds `payload` behind a valid header, or `raw` bytes."""
    cfg = load_config("quickstart")
    _, run_dir = create_run_dir(ck, "quickstart", dump_config(cfg))
    if raw is None:
        assert payload is not None
        digest = hashlib.sha256(payload).hexdigest()
        raw = f"cifar-tui-checkpoint v1 sha256={digest} size={len(payload)}\n".encode() + payload
    (run_dir / "last.pt").write_bytes(raw)
    return run_dir.name


def _with_registry(*args: str):
    """A case's builder: a registry holding one finished run, then `args` ({tmp}, {ck} filled in).
    The registry is left in rollback-journal mode, so that a reader leaves no WAL files behind:
    what the test sees written is what the command wrote."""

    def build(tmp: Path, ck: Path) -> list[str]:
        record_run(ck, RunRegistry(ck))
        db = sqlite3.connect(ck / DB_FILE)
        db.execute("PRAGMA journal_mode=DELETE")
        db.close()
        return [a.format(tmp=tmp, ck=ck) for a in args]

    return build


def _with_damage(damage: str, *args: str):
    """A case's builder: a run folder and a registry damaged as `DAMAGE[damage]`, then `args`
    ({ck} filled in)."""

    def build(tmp: Path, ck: Path) -> list[str]:
        record_run(ck)  # events only: no registry followed them
        DAMAGE[damage](tmp, ck / DB_FILE)
        return [a.format(ck=ck) for a in args]

    return build


def _readers(damage: str, expected: str) -> list:
    """A damaged registry, for each command that reads it."""
    commands = [
        ("runs",),
        ("runs", "--export", "csv"),
        ("runs", "--export", "json", "--out", "{ck}/runs.json"),  # ck: checked to stay as it is
        ("runs", "--tensorboard", "{ck}/tb"),
    ]
    return [
        (f"{damage} registry: {' '.join(c[:2])}", _with_damage(damage, *c), expected)
        for c in commands
    ]


def _binary_preset(tmp: Path) -> str:
    path = tmp / "binary.yaml"
    path.write_bytes(bytes(range(128, 256)) * 8)
    return str(path)


def _valid_header(payload: bytes) -> bytes:
    digest = hashlib.sha256(payload).hexdigest()
    return f"cifar-tui-checkpoint v1 sha256={digest} size={len(payload)}\n".encode()


def _alias_bomb() -> str:
    """A "billion laughs" YAML value: 10 levels of 10 aliases each, 10^10 leaves when expanded."""
    lines = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        lines.append(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return "[" + ", ".join(lines) + "]"


# each case: (name, builder(tmp, ck) -> cli args, expected fragment of the message)
CASES = [
    *_readers("garbage", "runs.sqlite: file is not a database; rebuild it from the run folders"),
    *_readers("truncated", "runs.sqlite: database disk image is malformed; rebuild it"),
    *_readers("other schema", "runs.sqlite is not a runs registry of this version: its runs"),
    (
        "rebuild of a missing runs folder",
        lambda t, ck: ["runs", "--rebuild", "--checkpoints", str(ck / "missing")],
        "no runs folder",
    ),
    (
        "export into a folder",
        _with_registry("runs", "--export", "csv", "--out", "{tmp}"),
        "is a folder: name the file to write",
    ),
    (
        "export into /proc",
        _with_registry("runs", "--export", "csv", "--out", "/proc/x"),
        "cannot write /proc/x: ",
    ),
    (
        "export into a missing folder",
        _with_registry("runs", "--export", "json", "--out", "{tmp}/no/x.json"),
        "/no/x.json: No such file or directory",
    ),
    (
        "export below a file",
        _with_registry("runs", "--export", "csv", "--out", "{ck}/runs.sqlite/x"),
        "runs.sqlite/x: Not a directory",
    ),
    (
        "tensorboard into a file",
        _with_registry("runs", "--tensorboard", "{ck}/runs.sqlite"),
        "runs.sqlite is a file: name a folder to write into",
    ),
    (
        "alias bomb in --set",
        lambda t, ck: ["--run", "quickstart", "--set", f"optim.lr={_alias_bomb()}"],
        "expands to more than 100,000 values",
    ),
    (
        "alias bomb in a preset",
        lambda t, ck: ["--run", _preset(t, f"optim: {{name: sgd, lr: {_alias_bomb()}}}\n")],
        "expands to more than 100,000 values",
    ),
    (
        "600 levels of nesting",
        lambda t, ck: ["--run", _preset(t, "optim: {lr: " + "[" * 600 + "]" * 600 + "}\n")],
        "nested deeper than 64 levels",
    ),
    (
        "binary preset",
        lambda t, ck: ["--run", _binary_preset(t)],
        "is not a text file",
    ),
    (
        "nan learning rate",
        lambda t, ck: ["--run", "quickstart", "--set", "optim.lr=.nan"],
        "optim.lr must be a finite number",
    ),
    (
        "python tag in --set",
        lambda t, ck: [
            "--run",
            "quickstart",
            "--set",
            f"optim.lr=!!python/object/apply:os.system ['touch {t / MARKER}']",
        ],
        "not a valid YAML value",
    ),
    (
        "unclosed list in --set",
        lambda t, ck: ["--run", "quickstart", "--set", "optim.lr=[unclosed"],
        "not a valid YAML value",
    ),
    (
        "malformed yaml",
        lambda t, ck: ["--run", _preset(t, "model: {name: [\n")],
        "is not valid YAML",
    ),
    (
        "python tag",
        lambda t, ck: [
            "--run",
            _preset(t, f"description: !!python/object/apply:os.system ['touch {t / MARKER}']\n"),
        ],
        "is not valid YAML",
    ),
    (
        "duplicate keys",
        lambda t, ck: ["--run", _preset(t, "train: {epochs: 1}\ntrain: {epochs: 2}\n")],
        "duplicate key 'train'",
    ),
    (
        "unknown key",
        lambda t, ck: ["--run", "quickstart", "--set", "optim.lrr=0.1"],
        "did you mean optim.lr?",
    ),
    (
        "wrong type",
        lambda t, ck: ["--run", "quickstart", "--set", "train.epochs=ten"],
        "train.epochs must be an integer",
    ),
    (
        "string lr",
        lambda t, ck: ["--run", "quickstart", "--set", "optim.lr=fast"],
        "optim.lr must be a number",
    ),
    (
        "zero epochs",
        lambda t, ck: ["--run", "quickstart", "--set", "train.epochs=0"],
        "train.epochs = 0 is out of range",
    ),
    (
        "epochs beyond the limit",
        lambda t, ck: ["--run", "quickstart", "--set", f"train.epochs={10**30}"],
        f"train.epochs = {10**30} is out of range [1, 100000]",
    ),
    (
        "seed beyond 32 bits",
        lambda t, ck: ["--run", "quickstart", "--set", f"train.seed={2**40}"],
        f"train.seed = {2**40} is out of range [0, 4294967295]",
    ),
    (
        "negative batch",
        lambda t, ck: ["--run", "quickstart", "--set", "data.batch_size=-8"],
        "data.batch_size = -8 is out of range",
    ),
    (
        "unknown model",
        lambda t, ck: ["--run", "quickstart", "--set", "model.name=resnet19"],
        "did you mean 'resnet18'",
    ),
    (
        "unknown optimizer",
        lambda t, ck: ["--run", "quickstart", "--set", "optim.name=adamm"],
        "did you mean 'adam'",
    ),
    (
        "unknown loss",
        lambda t, ck: ["--run", "quickstart", "--set", "loss.name=focall"],
        "did you mean 'focal'",
    ),
    (
        "unknown augmentation",
        lambda t, ck: ["--run", "quickstart", "--set", "augment.1.name=hlfip"],
        "did you mean 'hflip'",
    ),
    ("unknown preset", lambda t, ck: ["--run", "resnet5"], "did you mean 'resnet50'"),
    (
        "missing dataset",
        lambda t, ck: [
            "--run",
            "resnet18",
            "--data-dir",
            str(t / "none"),
            "--set",
            "data.download=false",
        ],
        "cifar-100-python (files train, test, meta)",
    ),
    (
        "incomplete dataset",
        lambda t, ck: (
            (t / "d" / "cifar-100-python").mkdir(parents=True),
            (t / "d" / "cifar-100-python" / "train").write_bytes(b"x"),
            ["--run", "resnet18", "--data-dir", str(t / "d")],
        )[-1],
        "is incomplete: missing test, meta",
    ),
    (
        "checkpoints folder not writable",
        lambda t, ck: (
            (t / "file").write_text("x"),
            ["--run", "quickstart", "--checkpoints", str(t / "file" / "runs")],
        )[-1],
        "cannot write to the checkpoints folder",
    ),
    (
        "unknown run id",
        lambda t, ck: ["--resume", "20990101-000000-nope-0000"],
        "not a known run id",
    ),
    ("attach unknown run", lambda t, ck: ["attach", "20990101-000000-nope-0000"], "unknown run"),
    (
        "empty checkpoint",
        lambda t, ck: ["--resume", _run_with_checkpoint(t, ck, None, raw=b"")],
        "is empty",
    ),
    (
        "truncated checkpoint",
        lambda t, ck: [
            "--resume",
            _run_with_checkpoint(t, ck, None, raw=_valid_header(b"x" * 100) + b"x" * 50),
        ],
        "is truncated",
    ),
    (
        "bit-flipped checkpoint",
        lambda t, ck: [
            "--resume",
            _run_with_checkpoint(t, ck, None, raw=_valid_header(b"x" * 100) + b"y" + b"x" * 99),
        ],
        "fails its checksum",
    ),
    (
        "not a checkpoint",
        lambda t, ck: ["--resume", _run_with_checkpoint(t, ck, None, raw=b"PK\x03\x04 some zip\n")],
        "not a cifar-tui checkpoint",
    ),
    (
        "malicious pickle",
        lambda t, ck: [
            "--resume",
            _run_with_checkpoint(t, ck, pickle.dumps({"model": _Payload(t / MARKER)})),
        ],
        "refused: it holds more than tensors and plain values",
    ),
]


@pytest.mark.parametrize(("name", "build", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_cleanly(tmp_path, name, build, expected):
    ck = tmp_path / "ck"
    ck.mkdir()
    args = build(tmp_path, ck)
    before = sorted(p.relative_to(ck) for p in ck.rglob("*"))
    stamps = {p: p.stat().st_mtime_ns for p in ck.rglob("*") if p.is_file()}
    result = cli(*args, checkpoints=ck, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.relative_to(ck) for p in ck.rglob("*")) == before, "something was written"
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items()), "a file was changed"
    assert not (tmp_path / MARKER).exists(), "a payload was executed"
