"""engine.download and engine.cifar_download against a local HTTP server (127.0.0.1, a thread):
a small archive in the cifar-100-python layout, its MD5 passed in. A transfer cut after K bytes,
then resumed with a Range request; a corrupt archive; a 404. No sleeps: the server answers
each request as it comes, and the client's reads end when the server closes."""

from __future__ import annotations

import hashlib
import io
import random
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine import download
from engine.cifar_download import fetch_cifar100
from engine.datafiles import ARCHIVE_NAME, find_cifar100
from engine.errors import DataError

PATH = "/" + ARCHIVE_NAME


def small_archive() -> bytes:
    """A gzip'd tar with cifar-100-python/{train,test,meta} (random bytes: not unpickled here)."""
    buf = io.BytesIO()
    rng = random.Random(0)
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, size in (("train", 40_000), ("test", 9_000), ("meta", 500)):
            blob = rng.randbytes(size)  # incompressible: the archive is ~50 kB
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


@dataclass
class Served:
    """What the server sends, and what it was asked."""

    body: bytes
    drop_after: int | None = None  # the first request's connection closes after this many bytes
    ranges: list[str | None] = field(default_factory=list)  # each request's Range header
    base: str = ""


@pytest.fixture
def served() -> Iterator[Served]:
    state = Served(small_archive())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            state.ranges.append(self.headers.get("Range"))
            if self.path != PATH:
                self.send_error(404, "Not Found")
                return
            body, start = state.body, 0
            if self.headers.get("Range"):
                start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            rest = body[start:]
            if state.drop_after is not None:  # cut this transfer short, once
                rest, state.drop_after = rest[: state.drop_after], None
                self.close_connection = True
            self.wfile.write(rest)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def md5_of(blob: bytes) -> str:
    return hashlib.md5(blob, usedforsecurity=False).hexdigest()


def test_a_cut_transfer_resumes_with_a_range_request(served: Served, tmp_path: Path) -> None:
    k = 12_345
    served.drop_after = k
    seen: list[tuple[int, int | None]] = []
    dest = tmp_path / ARCHIVE_NAME
    download.fetch(
        served.base + PATH,
        dest,
        md5=md5_of(served.body),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert dest.read_bytes() == served.body
    assert served.ranges == [None, f"bytes={k}-"]
    assert not download.part_path(dest).exists()
    assert seen[-1] == (len(served.body), len(served.body))


def test_a_cut_download_is_kept_and_the_next_call_continues_it(
    served: Served, tmp_path: Path
) -> None:
    k = 20_000
    served.drop_after = k
    dest = tmp_path / ARCHIVE_NAME
    with pytest.raises(download.DownloadError, match="run again to continue") as err:
        download.fetch(served.base + PATH, dest, md5=md5_of(served.body), attempts=1)
    assert "\n" not in str(err.value)
    assert download.part_path(dest).read_bytes() == served.body[:k]
    download.fetch(served.base + PATH, dest, md5=md5_of(served.body))
    assert dest.read_bytes() == served.body
    assert served.ranges == [None, f"bytes={k}-"]


def test_a_corrupt_partial_file_is_removed_and_fetched_again(
    served: Served, tmp_path: Path
) -> None:
    dest = tmp_path / ARCHIVE_NAME
    download.part_path(dest).write_bytes(b"not the start of this archive" * 100)
    download.fetch(served.base + PATH, dest, md5=md5_of(served.body))
    assert dest.read_bytes() == served.body
    assert served.ranges == ["bytes=2900-", None]  # resumed, failed its MD5, then from the start


def test_an_archive_that_never_matches_its_md5_is_a_clear_error(
    served: Served, tmp_path: Path
) -> None:
    dest = tmp_path / "data"
    with pytest.raises(DataError) as err:
        fetch_cifar100(dest, served.base + PATH, md5="0" * 32)
    message = str(err.value)
    assert "failed its MD5 check twice" in message and "0" * 32 in message
    assert "\n" not in message
    assert served.ranges == [None, None]
    assert not dest.exists()  # nothing kept: the folder it made is gone too


def test_a_404_is_one_line_and_leaves_nothing(served: Served, tmp_path: Path) -> None:
    with pytest.raises(download.HTTPStatusError) as http:
        download.fetch(served.base + "/missing.tar.gz", tmp_path / "x")
    assert http.value.code == 404
    with pytest.raises(DataError) as err:
        fetch_cifar100(tmp_path / "data", served.base + "/missing.tar.gz")
    message = str(err.value)
    assert "HTTP 404" in message and "\n" not in message
    assert str(tmp_path / "data" / "cifar-100-python") in message  # where to put it instead
    assert sorted(tmp_path.iterdir()) == []


def test_the_archive_is_fetched_unpacked_and_removed(served: Served, tmp_path: Path) -> None:
    served.drop_after = 5_000
    data_dir = tmp_path / "cache" / "cifar-tui"
    folder = fetch_cifar100(data_dir, served.base + PATH, md5=md5_of(served.body))
    assert folder == data_dir / "cifar-100-python" == find_cifar100(data_dir)
    with tarfile.open(fileobj=io.BytesIO(served.body)) as tar:
        member = tar.extractfile("cifar-100-python/test")
        assert member is not None and (folder / "test").read_bytes() == member.read()
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-100-python"]


def test_no_network_is_offline(tmp_path: Path) -> None:
    with socket_closed() as port, pytest.raises(download.DownloadError) as err:
        download.fetch(f"http://127.0.0.1:{port}/x", tmp_path / "x")
    assert err.value.offline
    assert list(tmp_path.iterdir()) == []


class socket_closed:  # noqa: N801 - a context manager read as a phrase
    """A local port nothing listens on."""

    def __enter__(self) -> int:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        return self.port

    def __exit__(self, *args: object) -> None:
        pass
