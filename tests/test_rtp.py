"""RTP codec: RFC 3550 §5.1 / RFC 8285 vectors, round trips, fuzzing, wrap helpers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxwire.wire.errors import ParseError
from voxwire.wire.rtp import (
    ONE_BYTE_PROFILE,
    TWO_BYTE_PROFILE,
    RtpPacket,
    SeqUnwrapper,
    TsUnwrapper,
    build_rtp,
    encode_extensions,
    parse_rtp,
    seq_diff,
    serialize_rtp,
)
from voxwire.wire.types import PayloadType, Ssrc

# A hand-built packet, field by field from the RFC 3550 §5.1 diagram:
#   V=2 P=0 X=0 CC=0 | M=1 PT=111 | seq=0x1234 | ts=0x00000960 | SSRC=0xdeadbeef | payload
BASIC = bytes.fromhex("80ef1234 00000960 deadbeef") + b"opus"

# A Chromium-shaped Opus packet (built by hand with the layout Chromium sends, not a capture):
# X=1, RFC 8285 one-byte extension with ssrc-audio-level (id 1, 1 octet: V=1, level 0x2a),
# abs-send-time (id 2, 3 octets), transport-wide-cc (id 3, 2 octets), then 3 padding octets.
CHROMIUM_OPUS = (
    bytes.fromhex("906f 0001 0000c350 1a2b3c4d")
    + bytes.fromhex("bede0003")
    + bytes.fromhex("10aa 22123456 310007 000000")
    + bytes.fromhex("fc ff fe")
)


def test_basic_vector() -> None:
    p = parse_rtp(BASIC)
    assert p.marker is True
    assert p.payload_type == 111
    assert p.sequence_number == 0x1234
    assert p.timestamp == 2400
    assert p.ssrc == 0xDEADBEEF
    assert p.csrcs == ()
    assert p.extension_profile is None and p.extensions == {}
    assert p.payload == b"opus"
    assert p.padding == 0
    assert serialize_rtp(p) == BASIC


def test_chromium_shaped_one_byte_extensions() -> None:
    p = parse_rtp(CHROMIUM_OPUS)
    assert p.extension_profile == ONE_BYTE_PROFILE
    assert p.extensions == {1: b"\xaa", 2: b"\x12\x34\x56", 3: b"\x00\x07"}
    assert p.payload == b"\xfc\xff\xfe"
    assert serialize_rtp(p) == CHROMIUM_OPUS


def test_csrcs_and_padding() -> None:
    # CC=2, P=1: three octets of padding, the last holding the count 3 (RFC 3550 §5.1).
    data = bytes.fromhex("a2000007 00000001 00000002") + bytes.fromhex("0000000a0000000b") + b"xy\x00\x00\x03"
    p = parse_rtp(data)
    assert p.csrcs == (10, 11)
    assert p.payload == b"xy"
    assert p.padding == 3
    assert serialize_rtp(p) == data


def test_two_byte_extension_with_empty_element() -> None:
    # RFC 8285 §4.3: profile 0x100 + appbits, id 8 with zero octets, id 200 with 3, one padding octet.
    body = bytes.fromhex("0800 c803616263 00")
    data = bytes.fromhex("90000001 00000000 00000001") + bytes.fromhex("10000002") + body + b"P"
    p = parse_rtp(data)
    assert p.extension_profile == TWO_BYTE_PROFILE
    assert p.extensions == {8: b"", 200: b"abc"}
    assert serialize_rtp(p) == data


def test_one_byte_id_15_stops_the_walk() -> None:
    # RFC 8285 §4.2: processing terminates at id 15; elements before it are kept.
    data = bytes.fromhex("90000001 00000000 00000001 bede0001 1001 f0 21")
    assert parse_rtp(data).extensions == {1: b"\x01"}


def test_malformed_element_keeps_earlier_ones() -> None:
    # The id-2 element claims 4 octets but only 1 remains in the extension body.
    data = bytes.fromhex("90000001 00000000 00000001 bede0001 1001 2300")
    p = parse_rtp(data)
    assert p.extensions == {1: b"\x01"}
    assert serialize_rtp(p) == data


def test_other_profile_kept_raw() -> None:
    data = bytes.fromhex("90000001 00000000 00000001 abcd0001 01020304")
    p = parse_rtp(data)
    assert p.extension_profile == 0xABCD
    assert p.extension_data == bytes.fromhex("01020304")
    assert p.extensions == {}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"", "shorter"),
        (BASIC[:11], "shorter"),
        (bytes.fromhex("40ef123400000960deadbeef"), "version"),
        (bytes.fromhex("83ef123400000960deadbeef00000001"), "CSRC"),
        (bytes.fromhex("90ef123400000960deadbeef"), "X bit"),
        (bytes.fromhex("90ef123400000960deadbeefbede0002aabbccdd"), "runs past"),
        (bytes.fromhex("a0ef123400000960deadbeef0000"), "padding count 0"),
        (bytes.fromhex("a0ef123400000960deadbeef0009"), "padding count 9"),
    ],
)
def test_rejects(data: bytes, field: str) -> None:
    with pytest.raises(ParseError, match=field):
        parse_rtp(data)


def test_build_rtp_matches_serialize() -> None:
    ext = encode_extensions({1: b"\xaa", 2: b"\x12\x34\x56", 3: b"\x00\x07"})
    built = build_rtp(111, 1, 50000, 0x1A2B3C4D, b"\xfc\xff\xfe", extensions=ext)
    assert built == CHROMIUM_OPUS
    assert build_rtp(111, 0x1234, 2400, 0xDEADBEEF, b"opus", marker=True) == BASIC
    # Extended counters are reduced modulo the field width.
    assert build_rtp(111, 0x1234 + 3 * 65536, 2400 + (1 << 32), 0xDEADBEEF, b"opus", True) == BASIC


def test_set_extensions_round_trip() -> None:
    p = parse_rtp(BASIC)
    p.set_extensions({5: b"\x01\x02"})
    assert parse_rtp(serialize_rtp(p)).extensions == {5: b"\x01\x02"}
    p.set_extensions({5: b"x" * 17})  # too long for one-byte form: two-byte is chosen
    assert p.extension_profile == TWO_BYTE_PROFILE
    assert parse_rtp(serialize_rtp(p)).extensions == {5: b"x" * 17}
    p.set_extensions({})
    assert serialize_rtp(p) == BASIC


def test_encode_extensions_rejects_misuse() -> None:
    with pytest.raises(ValueError, match="one-byte"):
        encode_extensions({15: b"a"}, two_byte=False)
    with pytest.raises(ValueError, match="id 0"):
        encode_extensions({0: b"a"}, two_byte=True)


def test_serialize_rejects_misuse() -> None:
    p = parse_rtp(BASIC)
    p.payload_type = PayloadType(128)
    with pytest.raises(ValueError, match="7 bits"):
        serialize_rtp(p)


ext_elements = st.dictionaries(st.integers(1, 255), st.binary(max_size=20), max_size=5)


@st.composite
def packets(draw: st.DrawFn) -> RtpPacket:
    p = RtpPacket(
        payload_type=PayloadType(draw(st.integers(0, 127))),
        sequence_number=draw(st.integers(0, 0xFFFF)),
        timestamp=draw(st.integers(0, 0xFFFFFFFF)),
        ssrc=Ssrc(draw(st.integers(0, 0xFFFFFFFF))),
        payload=draw(st.binary(max_size=64)),
        marker=draw(st.booleans()),
        csrcs=tuple(draw(st.lists(st.integers(0, 0xFFFFFFFF), max_size=15))),
        padding=draw(st.integers(0, 255)),
    )
    p.set_extensions(draw(ext_elements))
    return p


@given(packets())
def test_round_trip(p: RtpPacket) -> None:
    data = serialize_rtp(p)
    assert parse_rtp(data) == p
    assert serialize_rtp(parse_rtp(data)) == data


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_parse_error(data: bytes) -> None:
    try:
        parse_rtp(data)
    except ParseError:
        pass


@given(st.binary(min_size=12, max_size=120))
def test_version_2_bytes_parse_or_parse_error(data: bytes) -> None:
    # Force version 2 so the fuzzing reaches past the first check.
    data = bytes((0x80 | (data[0] & 0x3F),)) + data[1:]
    try:
        p = parse_rtp(data)
    except ParseError:
        return
    # Re-serializing reproduces the packet, except that padding octets (content unspecified,
    # RFC 3550 §5.1) come back as zeros before the count.
    out = serialize_rtp(p)
    body = len(data) - p.padding
    assert out[:body] == data[:body] and out[-1:] == data[-1:] and len(out) == len(data)


def test_byte_at_a_time_prefixes() -> None:
    # Every prefix is either a shorter valid packet (a truncated payload) or a ParseError; which one
    # is fixed by where the header, the extension header and the extension body end.
    for n in range(len(CHROMIUM_OPUS) + 1):
        prefix = CHROMIUM_OPUS[:n]
        if n < 28:
            with pytest.raises(ParseError):
                parse_rtp(prefix)
        else:
            p = parse_rtp(prefix)
            assert p.payload == CHROMIUM_OPUS[28:n]
            assert p.extensions == {1: b"\xaa", 2: b"\x12\x34\x56", 3: b"\x00\x07"}
    for n in range(len(BASIC) + 1):
        if n < 12:
            with pytest.raises(ParseError):
                parse_rtp(BASIC[:n])
        else:
            assert parse_rtp(BASIC[:n]).payload == BASIC[12:n]


def test_seq_diff() -> None:
    assert seq_diff(5, 3) == 2
    assert seq_diff(3, 5) == -2
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(0x8000, 0) == -0x8000
    assert seq_diff(0x7FFF, 0) == 0x7FFF


def test_seq_unwrapper_across_wrap() -> None:
    u = SeqUnwrapper()
    assert [u.unwrap(s) for s in (65533, 65534, 65535, 0, 1, 65535, 2)] == [
        65533,
        65534,
        65535,
        65536,
        65537,
        65535,
        65538,
    ]
    assert u.last == 65538


def test_seq_unwrapper_older_than_first_goes_negative() -> None:
    u = SeqUnwrapper()
    assert u.unwrap(2) == 2
    assert u.unwrap(65534) == -2


def test_ts_unwrapper_across_wrap() -> None:
    u = TsUnwrapper()
    start = 0xFFFFFFFF - 959
    out = [u.unwrap((start + 960 * k) & 0xFFFFFFFF) for k in range(4)]
    assert out == [start + 960 * k for k in range(4)]
    assert out[-1] > 1 << 32


@given(st.integers(0, 0xFFFF), st.lists(st.integers(-1000, 1000), max_size=50))
def test_seq_unwrapper_tracks_small_steps(start: int, steps: list[int]) -> None:
    u = SeqUnwrapper()
    truth = start
    assert u.unwrap(start) == truth
    for step in steps:
        truth += step
        assert u.unwrap(truth & 0xFFFF) == truth
