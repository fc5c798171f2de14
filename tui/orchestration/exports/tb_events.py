"""TensorBoard event files written without TensorFlow, TensorBoard or torch (scalars only).

An event file is a sequence of TFRecords: uint64 length (little-endian), uint32 masked CRC-32C of
those 8 bytes, the payload, uint32 masked CRC-32C of the payload. Each payload is an `Event`
protobuf, encoded here by hand:

    Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
    Summary { repeated Value value = 1; }
    Value   { string tag = 1; float simple_value = 2; }

The first record carries `file_version = "brain.Event:2"`, as TensorBoard's own writers do.
`read_scalars` parses the same format back (tests; no TensorBoard needed).
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

FILE_VERSION = "brain.Event:2"
_MASK_DELTA = 0xA282EAD8


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # Castagnoli, reflected
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def record(payload: bytes) -> bytes:
    """One TFRecord around `payload`."""
    header = struct.pack("<Q", len(payload))
    return (
        header
        + struct.pack("<I", masked_crc(header))
        + payload
        + struct.pack("<I", masked_crc(payload))
    )


# --------------------------------------------------------------------------- protobuf


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64: negatives as two's complement, ten bytes
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _bytes_field(number: int, data: bytes) -> bytes:
    return _field(number, 2) + _varint(len(data)) + data


def scalar_value(tag: str, value: float) -> bytes:
    return _bytes_field(1, tag.encode()) + _field(2, 5) + struct.pack("<f", value)


def event(
    wall_time: float,
    step: int = 0,
    *,
    scalars: Iterable[tuple[str, float]] = (),
    file_version: str | None = None,
) -> bytes:
    """An encoded Event: a file-version header, or scalar summaries at `step`."""
    out = _field(1, 1) + struct.pack("<d", wall_time) + _field(2, 0) + _varint(step)
    if file_version is not None:
        out += _bytes_field(3, file_version.encode())
    summary = b"".join(_bytes_field(1, scalar_value(t, v)) for t, v in scalars)
    if summary:
        out += _bytes_field(5, summary)
    return out


class EventFileWriter:
    """Writes one `events.out.tfevents.<time>.<host>` file in `logdir` (created if needed)."""

    def __init__(self, logdir: Path, suffix: str = ".cifar-tui") -> None:
        logdir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        name = f"events.out.tfevents.{int(now):010d}.{socket.gethostname()}{suffix}"
        self.path = logdir / name
        self._file = self.path.open("wb")
        self._file.write(record(event(now, file_version=FILE_VERSION)))

    def add_scalars(self, step: int, scalars: dict[str, float | None], wall_time: float) -> None:
        """Scalars at `step`; None values are left out."""
        finite = [(t, float(v)) for t, v in scalars.items() if v is not None]
        if finite:
            self._file.write(record(event(wall_time, step, scalars=finite)))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EventFileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- reading back


def iter_records(path: Path) -> Iterator[bytes]:
    """The payloads of a TFRecord file; ValueError on a bad checksum or a truncated record."""
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError(f"{path}: truncated record header at byte {pos}")
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        if crc != masked_crc(header):
            raise ValueError(f"{path}: bad length checksum at byte {pos}")
        payload = data[pos + 12 : pos + 12 + length]
        end = pos + 12 + length + 4
        if end > len(data):
            raise ValueError(f"{path}: truncated record at byte {pos}")
        (crc,) = struct.unpack("<I", data[end - 4 : end])
        if crc != masked_crc(payload):
            raise ValueError(f"{path}: bad payload checksum at byte {pos}")
        yield payload
        pos = end


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _fields(data: bytes) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of a protobuf message (varint, 64/32-bit, bytes)."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        value: object
        if wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def read_scalars(path: Path) -> tuple[str | None, list[tuple[int, str, float, float]]]:
    """(file_version, [(step, tag, value, wall_time)]) from an event file."""
    version = None
    scalars = []
    for payload in iter_records(path):
        wall, step, summary = 0.0, 0, b""
        for number, _, value in _fields(payload):
            if number == 1:
                (wall,) = struct.unpack("<d", value)  # type: ignore[arg-type]
            elif number == 2:
                step = int(value)  # type: ignore[call-overload]
            elif number == 3:
                version = bytes(value).decode()  # type: ignore[call-overload]
            elif number == 5:
                summary = bytes(value)  # type: ignore[call-overload]
        for _, _, raw_value in _fields(summary):
            tag, number_value = "", float("nan")
            for number, _, v in _fields(bytes(raw_value)):  # type: ignore[call-overload]
                if number == 1:
                    tag = bytes(v).decode()  # type: ignore[call-overload]
                elif number == 2:
                    (number_value,) = struct.unpack("<f", v)  # type: ignore[arg-type]
            scalars.append((step, tag, number_value, wall))
    return version, scalars
