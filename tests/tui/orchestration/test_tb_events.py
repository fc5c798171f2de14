"""TensorBoard event files written by hand: CRC-32C, protobuf bytes and TFRecord framing."""

from __future__ import annotations

import struct

import pytest

from tui.orchestration.exports import tb_events as tb


def test_crc32c_known_answers():
    # RFC 3720 (iSCSI) B.4 and the usual check value of CRC-32C
    assert tb.crc32c(b"123456789") == 0xE3069283
    assert tb.crc32c(bytes(32)) == 0x8A9136AA
    assert tb.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert tb.crc32c(bytes(range(32))) == 0x46DD794E


def test_masked_crc_is_rotated_right_by_15_plus_the_delta():
    crc = tb.crc32c(b"abc")
    rotated = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
    assert tb.masked_crc(b"abc") == (rotated + 0xA282EAD8) % 2**32


def test_protobuf_bytes_match_the_wire_format_by_hand():
    assert tb._varint(1) == b"\x01" and tb._varint(300) == b"\xac\x02"
    # Value{tag: "a", simple_value: 1.0}: field 1 (len 1) "a", field 2 fixed32 0x3f800000
    assert tb.scalar_value("a", 1.0) == b"\x0a\x01a\x15\x00\x00\x80\x3f"
    # Event{wall_time: 2.0, step: 5, summary: {value: [that]}}
    value = b"\x0a\x01a\x15\x00\x00\x80\x3f"
    expected = b"\x09" + struct.pack("<d", 2.0) + b"\x10\x05" + b"\x2a\x0a\x0a\x08" + value
    assert tb.event(2.0, 5, scalars=[("a", 1.0)]) == expected


def test_a_record_is_length_crc_payload_crc():
    rec = tb.record(b"hello")
    assert rec[:8] == struct.pack("<Q", 5) and rec[12:17] == b"hello"
    assert struct.unpack("<I", rec[8:12])[0] == tb.masked_crc(rec[:8])
    assert struct.unpack("<I", rec[17:])[0] == tb.masked_crc(b"hello")


def test_written_file_reads_back_and_damage_is_detected(tmp_path):
    with tb.EventFileWriter(tmp_path / "run") as writer:
        writer.add_scalars(1, {"val/top1": 0.25, "lr": None}, 100.0)
        writer.add_scalars(2, {"val/top1": 0.5}, 101.0)
    version, scalars = tb.read_scalars(writer.path)
    assert version == "brain.Event:2"
    assert scalars == [(1, "val/top1", 0.25, 100.0), (2, "val/top1", 0.5, 101.0)]
    data = bytearray(writer.path.read_bytes())
    data[-6] ^= 0xFF
    writer.path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        tb.read_scalars(writer.path)


def test_tensorboard_itself_reads_the_file_when_installed(tmp_path):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    with tb.EventFileWriter(tmp_path) as writer:
        for step in (1, 2, 3):
            writer.add_scalars(step, {"val/top1": step / 10}, 100.0 + step)
    acc = accumulator.EventAccumulator(str(tmp_path))
    acc.Reload()
    points = [(s.step, s.value) for s in acc.Scalars("val/top1")]
    assert points == [(1, pytest.approx(0.1)), (2, pytest.approx(0.2)), (3, pytest.approx(0.3))]
