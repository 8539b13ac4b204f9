"""RFC 7983 / RFC 9443 first-byte demultiplexing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwire.wire.demux import PacketKind, classify


def _expected(first: int, second: int) -> PacketKind:
    # Written out from the RFC 7983 §7 / RFC 9443 §3 figure, independently of the module's table.
    if first in range(0, 4):
        return PacketKind.STUN
    if first in range(16, 20):
        return PacketKind.ZRTP
    if first in range(20, 64):
        return PacketKind.DTLS
    if first in range(64, 80):
        return PacketKind.TURN_CHANNEL
    if first in range(128, 192):
        return PacketKind.RTCP if second in range(192, 224) else PacketKind.RTP
    if first in range(80, 128) or first in range(192, 256):
        return PacketKind.QUIC
    return PacketKind.UNKNOWN


def test_every_first_byte() -> None:
    for first in range(256):
        for second in (0x00, 0x60, 0xBF, 0xC0, 0xC8, 0xDF, 0xE0, 0xFF):
            assert classify(bytes([first, second, 0, 0])) is _expected(first, second), (first, second)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", PacketKind.UNKNOWN),
        (b"\x00\x01\x00\x00\x21\x12\xa4\x42", PacketKind.STUN),  # Binding request header
        (b"\x16\xfe\xfd\x00", PacketKind.DTLS),  # handshake record, DTLS 1.2
        (b"\x17\xfe\xfd\x00", PacketKind.DTLS),  # application data
        (b"\x80\x6f\x00\x01", PacketKind.RTP),  # Opus PT 111
        (b"\x80\xef\x00\x01", PacketKind.RTP),  # PT 111 with the marker bit: 239, not RTCP
        (b"\x80\xc8\x00\x06", PacketKind.RTCP),  # SR (200)
        (b"\x81\xc9\x00\x07", PacketKind.RTCP),  # RR (201)
        (b"\x81\xcd\x00\x03", PacketKind.RTCP),  # RTPFB (205), generic NACK
        (b"\x90\x60\x00\x01", PacketKind.RTP),  # with header extension
        (b"\x80", PacketKind.UNKNOWN),  # RTP/RTCP range, but no second byte to tell which
        (b"\x40\x00\x00\x04", PacketKind.TURN_CHANNEL),
        (b"\x08", PacketKind.UNKNOWN),  # 4..15 unassigned
        (b"\xc3\x00\x00\x00\x01", PacketKind.QUIC),  # long header, version 1
    ],
)
def test_known_packets(data: bytes, kind: PacketKind) -> None:
    assert classify(data) is kind


def test_single_byte_inputs() -> None:
    for first in range(256):
        kind = classify(bytes([first]))
        assert kind is (PacketKind.UNKNOWN if 128 <= first <= 191 else _expected(first, 0))


@given(st.binary(max_size=64))
@settings(max_examples=500, deadline=None)
def test_never_raises(data: bytes) -> None:
    kind = classify(data)
    assert isinstance(kind, PacketKind)
    if len(data) >= 2:
        assert kind is _expected(data[0], data[1])


def test_accepts_memoryview_and_bytearray() -> None:
    assert classify(bytearray(b"\x80\xc8")) is PacketKind.RTCP
    assert classify(memoryview(b"\x16\xfe")) is PacketKind.DTLS
