"""Tests for engine.data and engine.cifar100.

Real-data tests read ../shared/data/cifar-100-python beside the checkout; they skip where it is
absent, and fail instead when CI == "true". Downloads go through a local HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine import cifar100 as C
from engine import cifar_download
from engine import data as D
from engine.cifar100 import CIFAR100_MD5, CIFAR100_URL, read_cifar100
from engine.data import (
    ImageSet,
    channel_stats,
    load_data,
    make_synthetic,
    split_train_val,
    stratified_indices,
)
from engine.datafiles import cache_folder, find_cifar100, resolve_data_dir
from engine.errors import DataError

REAL = Path(__file__).resolve().parents[3] / "shared/data/cifar-100-python"
ARCHIVE = "cifar-100-python.tar.gz"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CIFAR_TUI_DATA", raising=False)
    monkeypatch.delenv("CIFAR_TUI_CIFAR100_URL", raising=False)


# --------------------------------------------------------------------------- helpers


def _need_real() -> None:
    if all((REAL / f).is_file() for f in ("train", "test", "meta")):
        return
    message = f"real CIFAR-100 not found at {REAL}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: the real-data tests must run)")
    pytest.skip(message)


def _class_counts(labels: torch.Tensor, classes: int = 100) -> torch.Tensor:
    return torch.bincount(labels, minlength=classes)


def _write_pickle(path: Path, obj: Any) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar_folder(folder: Path, n_train: int = 200, n_test: int = 100, seed: int = 0) -> dict:
    """A small folder in the official format (protocol 2, byte keys); returns what it holds."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = [int(x) for x in rng.permutation(np.arange(n) % 100)]
        coarse = [f // 5 for f in fine]
        _write_pickle(
            folder / split,
            {
                b"filenames": [f"img_{i:05d}.png".encode() for i in range(n)],
                b"batch_label": f"{split} batch 1 of 1".encode(),
                b"fine_labels": fine,
                b"coarse_labels": coarse,
                b"data": data,
            },
        )
        out[split] = (data, fine)
    _write_pickle(
        folder / "meta",
        {
            b"fine_label_names": [f"fine_{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse_{i}".encode() for i in range(20)],
        },
    )
    return out


def make_archive(path: Path, source: Path, extra: dict[str, bytes] | None = None) -> Path:
    """A tar.gz of `source` as cifar-100-python/, plus raw `extra` members (name -> content)."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source, arcname="cifar-100-python")
        for name, content in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # e.g. a client that closes early (torchvision's redirect probe): not our concern


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(folder served, base URL) of an HTTP server on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = _QuietServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, dict]:
    """data_dir holding a small official-format cifar-100-python/ folder."""
    data_dir = tmp_path / "tiny"
    return data_dir, write_cifar_folder(data_dir / "cifar-100-python")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- real CIFAR-100


@pytest.fixture(scope="module")
def real() -> D.Loaded:
    _need_real()
    return read_cifar100(REAL)


def test_real_counts_and_names(real: D.Loaded) -> None:
    train, test, fine, coarse, mapping = real
    assert train.images.shape == (50_000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (10_000, 3, 32, 32) and test.labels.dtype == torch.int64
    assert (_class_counts(train.labels) == 500).all()
    assert (_class_counts(test.labels) == 100).all()
    assert len(fine) == 100 and len(coarse) == 20
    assert fine[:3] == ["apple", "aquarium_fish", "baby"] and coarse[0] == "aquatic_mammals"
    assert (torch.bincount(torch.tensor(mapping), minlength=20) == 5).all()
    assert (_class_counts(torch.tensor(mapping)[train.labels], 20) == 2500).all()


def test_real_canonical_order(real: D.Loaded) -> None:
    train, test = real[0], real[1]
    assert train.labels[:10].tolist() == [19, 29, 0, 11, 1, 86, 90, 28, 23, 31]
    assert test.labels[:10].tolist() == [49, 33, 72, 51, 71, 92, 15, 14, 23, 0]


def test_real_channel_stats(real: D.Loaded) -> None:
    mean, std = channel_stats(real[0].images)
    assert mean == pytest.approx((0.5071, 0.4865, 0.4409), abs=1e-3)
    assert std == pytest.approx((0.2673, 0.2564, 0.2762), abs=1e-3)
    mean, std = channel_stats(real[1].images)
    assert mean == pytest.approx((0.5088, 0.4874, 0.4419), abs=1e-3)
    assert std == pytest.approx((0.2683, 0.2574, 0.2771), abs=1e-3)


def test_real_decoding_matches_a_per_pixel_reference(real: D.Loaded) -> None:
    with open(REAL / "train", "rb") as f:
        row = pickle.load(f, encoding="bytes")[b"data"][0]
    reference = [[[0] * 32 for _ in range(32)] for _ in range(3)]
    for c in range(3):  # R plane, then G, then B; each row-major
        for y in range(32):
            for x in range(32):
                reference[c][y][x] = int(row[c * 1024 + y * 32 + x])
    assert torch.equal(real[0].images[0], torch.tensor(reference, dtype=torch.uint8))


def test_real_find_accepts_both_folders() -> None:
    _need_real()
    assert find_cifar100(REAL.parent) == REAL
    assert find_cifar100(REAL) == REAL


def test_real_split_is_stratified_disjoint_and_seeded(real: D.Loaded) -> None:
    labels = real[0].labels
    train_idx, val_idx = split_train_val(labels, 5000, seed=0)
    assert len(train_idx) == 45_000 and len(val_idx) == 5000
    assert (_class_counts(labels[val_idx]) == 50).all()
    assert (_class_counts(labels[train_idx]) == 450).all()
    assert torch.equal(torch.sort(torch.cat([train_idx, val_idx])).values, torch.arange(50_000))
    again = split_train_val(labels, 5000, seed=0)[1]
    other = split_train_val(labels, 5000, seed=1)[1]
    assert torch.equal(val_idx, again)
    assert not torch.equal(val_idx, other)


def test_real_load_data(real: D.Loaded) -> None:
    bundle = load_data("cifar100", REAL.parent, val_size=5000, seed=0, download=False)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (45_000, 5000, 10_000)
    assert (_class_counts(bundle.val.labels) == 50).all()
    assert not bundle.synthetic and bundle.class_names[0] == "apple"
    train_idx, val_idx = split_train_val(real[0].labels, 5000, seed=0)
    assert torch.equal(bundle.val.images, real[0].images[val_idx])
    assert torch.equal(bundle.train.labels, real[0].labels[train_idx])
    assert bundle.mean == pytest.approx((0.5071, 0.4865, 0.4409), abs=2e-3)

    small = load_data("cifar100", REAL, val_size=5000, subset=2000, seed=0, download=False)
    assert (len(small.train), len(small.val)) == (2000, 5000)
    assert (_class_counts(small.train.labels) == 20).all()
    assert torch.equal(small.val.images, bundle.val.images)  # subset never touches val
    assert small.mean == channel_stats(small.train.images)[0]


# --------------------------------------------------------------------------- official format


def test_tiny_folder_reads_correctly(tiny: tuple[Path, dict]) -> None:
    data_dir, written = tiny
    train, test, fine, coarse, mapping = read_cifar100(data_dir / "cifar-100-python")
    for split, got in (("train", train), ("test", test)):
        raw, labels = written[split]
        assert torch.equal(got.images, torch.from_numpy(raw).reshape(-1, 3, 32, 32))
        assert got.labels.tolist() == labels
    assert fine[7] == "fine_7" and coarse[19] == "coarse_19"
    assert mapping == [i // 5 for i in range(100)]


def test_find_accepts_data_dir_or_folder(tiny: tuple[Path, dict], tmp_path: Path) -> None:
    data_dir, _ = tiny
    folder = data_dir / "cifar-100-python"
    assert find_cifar100(data_dir) == folder
    assert find_cifar100(folder) == folder
    assert find_cifar100(tmp_path / "nowhere") is None
    (folder / "meta").unlink()
    assert find_cifar100(data_dir) is None


@pytest.mark.parametrize("where", ["data_dir", "folder"])
def test_load_data_from_tiny_folder(tiny: tuple[Path, dict], where: str) -> None:
    data_dir, _ = tiny
    path = data_dir if where == "data_dir" else data_dir / "cifar-100-python"
    bundle = load_data("cifar100", str(path), val_size=100, seed=3, download=False)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (100, 100, 100)
    assert (_class_counts(bundle.val.labels) == 1).all()
    assert bundle.mean == pytest.approx((0.5, 0.5, 0.5), abs=0.03)  # uniform random pixels


def test_data_dir_from_env(tiny: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir, _ = tiny
    assert resolve_data_dir(None) == cache_folder()  # found nowhere: where it is downloaded
    assert resolve_data_dir("x/y") == Path("x/y")
    monkeypatch.setenv("CIFAR_TUI_DATA", str(data_dir))
    assert resolve_data_dir(None) == data_dir
    assert resolve_data_dir("elsewhere") == data_dir  # not there: the next folder searched
    assert len(load_data("cifar100", val_size=0, download=False).train) == 200


@pytest.mark.parametrize(
    ("value", "valid"),
    [({"val_size": -1}, "0..199"), ({"val_size": 200}, "0..199"), ({"val_size": 1.5}, "integer")],
)
def test_bad_val_size(tiny: tuple[Path, dict], value: dict, valid: str) -> None:
    with pytest.raises(DataError, match=valid) as err:
        load_data("cifar100", tiny[0], download=False, **value)
    assert "val_size" in str(err.value)


@pytest.mark.parametrize("subset", [0, -5, 101])
def test_bad_subset(tiny: tuple[Path, dict], subset: int) -> None:
    with pytest.raises(DataError, match=rf"subset={subset}.*1\.\.100"):
        load_data("cifar100", tiny[0], val_size=100, subset=subset, download=False)


def test_unknown_dataset() -> None:
    with pytest.raises(DataError, match="cifar100, synthetic"):
        load_data("cifar10")


def _corrupt(folder: Path, how: str) -> str:
    if how == "truncated":
        blob = (folder / "train").read_bytes()
        (folder / "train").write_bytes(blob[: len(blob) // 2])
        return "train"
    if how == "garbage":
        (folder / "test").write_bytes(b"this is not a pickle")
        return "test"
    if how == "wrong-shape":
        _write_pickle(
            folder / "train",
            {
                b"data": np.zeros((10, 1024), np.uint8),
                b"fine_labels": [0] * 10,
                b"coarse_labels": [0] * 10,
            },
        )
        return "train"
    if how == "bad-labels":
        _write_pickle(
            folder / "test",
            {
                b"data": np.zeros((2, 3072), np.uint8),
                b"fine_labels": [0, 100],
                b"coarse_labels": [0, 0],
            },
        )
        return "test"
    if how == "few-names":
        _write_pickle(folder / "meta", {b"fine_label_names": [b"a"], b"coarse_label_names": []})
        return "meta"
    # a pickle that would run code when loaded
    _write_pickle(folder / "meta", {b"fine_label_names": os.system})
    return "meta"


@pytest.mark.parametrize(
    "how", ["truncated", "garbage", "wrong-shape", "bad-labels", "few-names", "code"]
)
def test_bad_files_give_data_error_naming_the_file(tiny: tuple[Path, dict], how: str) -> None:
    folder = tiny[0] / "cifar-100-python"
    name = _corrupt(folder, how)
    with pytest.raises(DataError) as err:
        read_cifar100(folder)
    assert str(folder / name) in str(err.value)


def test_missing_without_download_says_where(tmp_path: Path) -> None:
    data_dir = tmp_path / "empty"
    with pytest.raises(DataError) as err:
        load_data("cifar100", data_dir, download=False)
    message = str(err.value)
    assert str(data_dir / "cifar-100-python") in message
    assert "train, test, meta" in message and "CIFAR_TUI_DATA" in message


# --------------------------------------------------------------------------- downloading


@pytest.mark.parametrize("progress", [False, True])
def test_download_unpacks_and_loads(
    server: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    progress: bool,
) -> None:
    root, base = server
    written = write_cifar_folder(tmp_path / "src")
    make_archive(root / ARCHIVE, tmp_path / "src", {"cifar-100-python/file.txt~": b"x"})
    monkeypatch.setenv("CIFAR_TUI_CIFAR100_URL", f"{base}/{ARCHIVE}")
    data_dir = tmp_path / "data"
    bundle = load_data("cifar100", data_dir, val_size=100, download=True, progress=progress)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (100, 100, 100)
    assert find_cifar100(data_dir) == data_dir / "cifar-100-python"
    images = torch.from_numpy(written["test"][0]).reshape(-1, 3, 32, 32)
    assert torch.equal(bundle.test.images, images)
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-100-python"]  # nothing left over


def test_download_uses_archive_already_in_data_dir(tmp_path: Path) -> None:
    write_cifar_folder(tmp_path / "src")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    make_archive(data_dir / ARCHIVE, tmp_path / "src")
    url = f"http://127.0.0.1:{_closed_port()}/{ARCHIVE}"  # never contacted
    assert C.download_cifar100(data_dir, url, progress=False) == data_dir / "cifar-100-python"
    assert (data_dir / ARCHIVE).is_file()  # the user's file is kept


def _truncated(path: Path, tmp_path: Path) -> None:
    write_cifar_folder(tmp_path / "src")
    make_archive(path, tmp_path / "src")
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])


@pytest.mark.parametrize("kind", ["truncated", "random-bytes", "empty", "no-meta", "bad-pickle"])
def test_download_of_a_bad_archive_fails_naming_it(
    server: tuple[Path, str], tmp_path: Path, kind: str
) -> None:
    root, base = server
    served = root / ARCHIVE
    src = tmp_path / "src"
    if kind == "truncated":
        _truncated(served, tmp_path)
    elif kind == "random-bytes":
        served.write_bytes(np.random.default_rng(0).bytes(50_000))
    elif kind == "empty":
        served.write_bytes(b"")
    else:
        write_cifar_folder(src)
        if kind == "no-meta":
            (src / "meta").unlink()
        else:
            (src / "train").write_bytes(b"\x80\x02garbage")
        make_archive(served, src)
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as err:
        C.download_cifar100(data_dir, f"{base}/{ARCHIVE}", progress=False)
    assert str(data_dir / ARCHIVE) in str(err.value)
    if kind == "no-meta":
        assert "cifar-100-python/meta" in str(err.value)
    if kind == "bad-pickle":
        assert f"{ARCHIVE}:cifar-100-python/train" in str(err.value)
    assert not data_dir.exists()  # bad file removed, nothing unpacked, the folder it made gone


@pytest.mark.parametrize("member", ["../evil", "cifar-100-python/../../evil", "/tmp/evil-abs"])
def test_archive_with_escaping_member_is_refused(
    server: tuple[Path, str], tmp_path: Path, member: str
) -> None:
    root, base = server
    write_cifar_folder(tmp_path / "src")
    make_archive(root / ARCHIVE, tmp_path / "src", {member: b"pwned"})
    data_dir = tmp_path / "a" / "data"
    with pytest.raises(DataError, match="refusing") as err:
        C.download_cifar100(data_dir, f"{base}/{ARCHIVE}", progress=False)
    assert member in str(err.value)
    assert not (tmp_path / "a" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not Path("/tmp/evil-abs").exists()
    assert find_cifar100(data_dir) is None


def test_archive_with_symlink_is_refused(server: tuple[Path, str], tmp_path: Path) -> None:
    root, base = server
    write_cifar_folder(tmp_path / "src")
    with tarfile.open(root / ARCHIVE, "w:gz") as tar:
        tar.add(tmp_path / "src", arcname="cifar-100-python")
        link = tarfile.TarInfo("cifar-100-python/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(DataError, match="not a plain file"):
        C.download_cifar100(tmp_path / "data", f"{base}/{ARCHIVE}", progress=False)


@pytest.mark.parametrize("progress", [False, True])
def test_unreachable_url_gives_offline_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, progress: bool
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/x.tar.gz"
    monkeypatch.setenv("CIFAR_TUI_CIFAR100_URL", url)
    data_dir = tmp_path / "data"
    start = time.perf_counter()
    with pytest.raises(DataError) as err:
        load_data("cifar100", data_dir, progress=progress)
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert message.startswith(f"could not download CIFAR-100 from {url} (")
    assert "offline" in message and "refused" in message.lower()
    assert (
        f"put the dataset at {data_dir / 'cifar-100-python'} (files train, test, meta)" in message
    )
    assert "--data-dir" in message and "CIFAR_TUI_DATA" in message
    assert not data_dir.exists()  # the folder it made is gone, no partial file left behind


def test_a_failed_download_into_a_mistyped_folder_leaves_no_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--data-dir` mistyped into folders that do not exist: the failed download removes every
    folder it made, and only those (a folder that existed stays, with what it held)."""
    monkeypatch.setenv("CIFAR_TUI_CIFAR100_URL", f"http://127.0.0.1:{_closed_port()}/x.tar.gz")
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "note").write_text("mine")
    with pytest.raises(DataError, match="offline"):
        load_data("cifar100", tmp_path / "kept" / "typo" / "deeper" / "data", progress=False)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "kept",
        "kept/note",
    ]


def test_http_error_is_reported(server: tuple[Path, str], tmp_path: Path) -> None:
    _, base = server
    with pytest.raises(DataError, match="HTTP 404") as err:
        C.download_cifar100(tmp_path / "data", f"{base}/missing.tar.gz", progress=False)
    assert str(tmp_path / "data" / "cifar-100-python") in str(err.value)


def test_md5_is_checked_only_for_the_official_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.download import DownloadError

    seen: list[str | None] = []

    def fake_fetch(url: str, dest: Path, md5: str | None, progress: object) -> None:
        seen.append(md5)
        raise DownloadError("no network in tests", offline=True)

    monkeypatch.setattr(cifar_download, "_fetch", fake_fetch)
    for url in (CIFAR100_URL, "http://127.0.0.1:1/mirror.tar.gz"):
        with pytest.raises(DataError, match="offline"):
            C.download_cifar100(tmp_path, url, progress=False)
    assert seen == [CIFAR100_MD5, None]


# --------------------------------------------------------------------------- synthetic


@pytest.fixture(scope="module")
def synthetic() -> D.Loaded:
    return make_synthetic(0)


def test_synthetic_shapes_and_balance(synthetic: D.Loaded) -> None:
    train, test, fine, coarse, mapping = synthetic
    assert train.images.shape == (10_000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (2_000, 3, 32, 32) and test.labels.dtype == torch.int64
    assert (_class_counts(train.labels) == 100).all() and (_class_counts(test.labels) == 20).all()
    assert len(set(fine)) == 100 and fine[0] == "synthetic-000" and len(set(coarse)) == 20
    assert (torch.bincount(torch.tensor(mapping)) == 5).all()
    mean, std = channel_stats(train.images)
    assert all(0.3 < m < 0.7 for m in mean) and all(0.1 < s < 0.35 for s in std)


def test_synthetic_is_deterministic_per_seed(synthetic: D.Loaded) -> None:
    again = make_synthetic(0)
    assert torch.equal(again[0].images, synthetic[0].images)
    assert torch.equal(again[1].labels, synthetic[1].labels)
    other = make_synthetic(1)
    assert not torch.equal(other[0].images, synthetic[0].images)
    small = make_synthetic(5, n_train=300, n_test=100)
    assert (len(small[0]), len(small[1])) == (300, 100)


def test_synthetic_is_fast(synthetic: D.Loaded) -> None:
    times = []
    for seed in (2, 3):  # best of two: a busy machine only ever makes it slower
        start = time.perf_counter()
        make_synthetic(seed)
        times.append(time.perf_counter() - start)
    print(f"synthetic generation: {min(times):.3f} s (best of {len(times)})")
    assert min(times) < 2.0  # typically 0.3-0.5 s on 2 cores


def _ridge_accuracy(train: ImageSet, tests: list[ImageSet]) -> list[torch.Tensor]:
    """Least-squares linear classifier on 8x8 average-pooled pixels: predictions per test set."""

    def features(images: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(images.float() / 255, 4).flatten(1)

    x = features(train.images)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    x = torch.cat([(x - mu) / sd, torch.ones(len(x), 1)], 1)
    y = F.one_hot(train.labels, 100).float()
    w = torch.linalg.solve(x.T @ x + 10 * torch.eye(x.shape[1]), x.T @ y)
    out = []
    for t in tests:
        xt = torch.cat([(features(t.images) - mu) / sd, torch.ones(len(t), 1)], 1)
        out.append((xt @ w).argmax(1))
    return out


def test_synthetic_is_learnable_and_flip_invariant(synthetic: D.Loaded) -> None:
    train, test, _, _, mapping = synthetic
    flipped = ImageSet(test.images.flip(-1), test.labels)
    pred, pred_flipped = _ridge_accuracy(train, [test, flipped])
    fine = (pred == test.labels).float().mean().item()
    fine_flipped = (pred_flipped == test.labels).float().mean().item()
    groups = torch.tensor(mapping)
    coarse = (groups[pred] == groups[test.labels]).float().mean().item()
    print(f"linear probe: fine {fine:.3f}, flipped {fine_flipped:.3f}, coarse {coarse:.3f}")
    assert fine > 0.15  # chance is 0.01
    assert fine_flipped > 0.15
    assert coarse > fine  # the classes of a group share parts


def test_load_synthetic(synthetic: D.Loaded) -> None:
    bundle = load_data("synthetic", val_size=1000, subset=500, seed=0)
    assert bundle.synthetic and bundle.name == "synthetic"
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (500, 1000, 2000)
    assert (_class_counts(bundle.train.labels) == 5).all()
    assert (_class_counts(bundle.val.labels) == 10).all()
    assert torch.equal(bundle.test.images, synthetic[1].images)  # same data for every seed
    assert bundle.coarse_names[0] == "synthetic-group-00" and len(bundle.fine_to_coarse) == 100
    assert (bundle.mean, bundle.std) == channel_stats(bundle.train.images)
    other = load_data("synthetic", val_size=1000, subset=500, seed=1)
    assert torch.equal(other.test.images, bundle.test.images)
    assert not torch.equal(other.val.images, bundle.val.images)


# --------------------------------------------------------------------------- splitting


def test_stratified_hand_checked_case() -> None:
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    for seed in range(5):
        pick = stratified_indices(labels, 4, seed)
        assert pick.tolist() == sorted(set(pick.tolist()))  # sorted, no repeats
        assert _class_counts(labels[pick], 2).tolist() == [2, 2]
    assert torch.equal(stratified_indices(labels, 4, 7), stratified_indices(labels, 4, 7))
    assert len({tuple(stratified_indices(labels, 4, s).tolist()) for s in range(10)}) > 1
    assert stratified_indices(labels, 0, 0).tolist() == []
    assert stratified_indices(labels, 8, 0).tolist() == list(range(8))
    with pytest.raises(ValueError):
        stratified_indices(labels, 9, 0)


def test_stratified_with_a_small_class() -> None:
    labels = torch.tensor([0] + [1] * 5 + [2] * 5)
    assert _class_counts(labels[stratified_indices(labels, 7, 0)], 3).tolist() == [1, 3, 3]
    counts = _class_counts(labels[stratified_indices(labels, 8, 0)], 3).tolist()
    assert counts[0] == 1 and sorted(counts[1:]) == [3, 4]
    odd = _class_counts(labels[stratified_indices(labels, 2, 0)], 3)
    assert odd.max() == 1 and odd.sum() == 2


def test_stratified_balance_property() -> None:
    gen = torch.Generator().manual_seed(0)
    for trial in range(30):
        sizes = torch.randint(0, 12, (7,), generator=gen)
        labels = torch.repeat_interleave(torch.arange(7), sizes)
        labels = labels[torch.randperm(len(labels), generator=gen)]
        n = int(torch.randint(0, len(labels) + 1, (1,), generator=gen))
        pick = stratified_indices(labels, n, seed=trial)
        counts = _class_counts(labels[pick], 7)
        assert counts.sum() == n and len(set(pick.tolist())) == n
        assert (counts <= sizes).all()
        short = counts < sizes  # classes that could have given more
        if short.any():
            assert counts.max() <= counts[short].min() + 1


def test_split_train_val_hand_checked_case() -> None:
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    train, val = split_train_val(labels, 2, seed=0)
    assert _class_counts(labels[val], 2).tolist() == [1, 1]
    assert _class_counts(labels[train], 2).tolist() == [3, 3]
    assert sorted(train.tolist() + val.tolist()) == list(range(8))
    train0, val0 = split_train_val(labels, 0, seed=0)
    assert train0.tolist() == list(range(8)) and val0.tolist() == []


def test_channel_stats_and_imageset() -> None:
    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    images[2:] = 255
    mean, std = channel_stats(images, chunk=3)
    assert mean == pytest.approx((0.5, 0.5, 0.5)) and std == pytest.approx((0.5, 0.5, 0.5))
    s = ImageSet(images, torch.arange(4))
    part = s.subset(torch.tensor([3, 0]))
    assert len(part) == 2 and part.labels.tolist() == [3, 0]
    with pytest.raises(ValueError):
        ImageSet(images.float(), torch.arange(4))
    with pytest.raises(ValueError):
        ImageSet(images, torch.arange(3))
