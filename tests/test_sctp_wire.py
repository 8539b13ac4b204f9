"""SCTP codec: CRC32C vectors, SNAP INIT vectors, round trips of every chunk, truncation and fuzzing."""

from __future__ import annotations

import base64
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwire.wire import sctp as w
from voxwire.wire.errors import ParseError

# RFC 3720 §B.4: CRC32C test vectors (the iSCSI appendix RFC 9260 Appendix A points to).
CRC_VECTORS = [
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
    (
        bytes.fromhex(
            "01c00000 00000000 00000000 00000000 14000000 00000400 00000014 00000018"
            "28000000 00000000 02000000 00000000"
        ),
        0xD9963A56,
    ),
]

# draft-hancke-tsvwg-snap §7 (example negotiation): the offer's and the answer's a=sctp-init.
SNAP_OFFER = "AQAAHols3R0AUAAA/////+B5ZR3AAAAEgAgABoLA"
SNAP_ANSWER = "AQAAHl+zdHQAUAAA/////6Gq3HTAAAAEgAgABoLA"
# Chromium 156 with WebRTC-Sctp-Snap/Enabled/ (tests/data/sdp/chromium_snap.sdp).
CHROMIUM_SNAP = "AQAAHmz8WQYAUAAA/////72YVxzAAAAEgAgABoLA"


@pytest.mark.parametrize(("data", "crc"), CRC_VECTORS)
def test_crc32c_rfc3720_vectors(data, crc):
    assert w.crc32c(data) == crc


def test_packet_checksum_is_crc32c_stored_little_endian():
    raw = w.serialize_packet(w.SctpPacket(5000, 5000, 0x01020304, (w.CookieAckChunk(),)))
    zeroed = raw[:8] + bytes(4) + raw[12:]
    assert struct.unpack_from("<I", raw, 8)[0] == w.crc32c(zeroed)  # RFC 9260 Appendix A


def test_packet_rejected_on_any_bit_flip():
    raw = w.serialize_packet(w.SctpPacket(5000, 5000, 7, (w.DataChunk(1, 0, 0, 51, b"hi"),)))
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x10
        with pytest.raises(ParseError):
            w.parse_packet(bytes(flipped))


@pytest.mark.parametrize(
    ("b64", "tag", "tsn"),
    [
        (SNAP_OFFER, 0x896CDD1D, 0xE079651D),
        (SNAP_ANSWER, 0x5FB37474, 0xA1AADC74),
        (CHROMIUM_SNAP, 0x6CFC5906, 0xBD98571C),
    ],
)
def test_snap_init_vectors(b64, tag, tsn):
    raw = base64.b64decode(b64)
    init = w.parse_init_chunk(raw)
    assert init == w.InitChunk(tag, 0x00500000, 65535, 65535, tsn, True, (w.RE_CONFIG, w.FORWARD_TSN))
    assert w.serialize_chunk(init) == raw  # 30 bytes: the last parameter is not padded
    assert w.parse_init_chunk(raw + b"\0\0") == init  # trailing padding tolerated


@pytest.mark.parametrize(
    "bad", ["AAAA", SNAP_OFFER[:-4], base64.b64encode(w.serialize_chunk(w.CookieAckChunk())).decode()]
)
def test_snap_init_rejects_non_init(bad):
    with pytest.raises(ParseError):
        w.parse_init_chunk(base64.b64decode(bad))


def test_snap_init_rejects_zero_tag_and_streams():
    for init in (
        w.InitChunk(0, 1500, 1, 1, 5),
        w.InitChunk(9, 1500, 0, 1, 5),
        w.InitChunk(9, 1500, 1, 0, 5),
    ):
        with pytest.raises(ParseError):
            w.parse_init_chunk(w.serialize_chunk(init))


def test_init_ack_requires_cookie():
    body = w.serialize_chunk(w.InitChunk(1, 1500, 1, 1, 1))
    as_ack = bytes([w.INIT_ACK]) + body[1:]
    with pytest.raises(ParseError, match="State Cookie"):
        w.parse_chunk(as_ack)


def test_data_chunk_layout_rfc9260_3_3_1():
    chunk = w.DataChunk(0x01020304, 0x0506, 0x0708, 51, b"abc", unordered=True, beginning=True, end=False)
    raw = w.serialize_chunk(chunk)
    assert raw == bytes.fromhex("00 06 0013 01020304 0506 0708 00000033") + b"abc"
    assert w.parse_chunk(raw) == chunk


def test_empty_data_chunk_rejected():
    with pytest.raises(ParseError, match="no user data"):
        w.parse_chunk(bytes.fromhex("00 03 0010 00000001 0000 0000 00000033"))


def test_sack_layout_rfc9260_3_3_4():
    sack = w.SackChunk(100, 65536, ((2, 3), (6, 6)), (99,))
    raw = w.serialize_chunk(sack)
    assert raw == bytes.fromhex("03 00 001c 00000064 00010000 0002 0001 0002 0003 0006 0006 00000063")
    assert w.parse_chunk(raw) == sack
    with pytest.raises(ParseError):
        w.parse_chunk(raw[:-4])  # counts do not match the length


def test_stale_cookie_cause_layout_rfc9260_3_3_10_3():
    """Cause code 3, length 8, then the Measure of Staleness in microseconds (32 bits)."""
    error = w.ErrorChunk((w.stale_cookie_cause(10_000),))
    assert w.serialize_chunk(error) == bytes.fromhex("0900000c 00030008 00002710")
    parsed = w.parse_chunk(w.serialize_chunk(error))
    assert parsed == error and isinstance(parsed, w.ErrorChunk)
    assert w.measure_of_staleness(parsed.causes[0]) == 10_000
    assert w.measure_of_staleness(w.stale_cookie_cause(0xFFFFFFFF)) == 0xFFFFFFFF


@pytest.mark.parametrize("bad", [-1, 1 << 32])
def test_stale_cookie_cause_refuses_a_measure_beyond_32_bits(bad):
    with pytest.raises(ValueError, match="Measure of Staleness"):
        w.stale_cookie_cause(bad)


@pytest.mark.parametrize(
    "cause",
    [
        w.ErrorCause(3, b"\0\0\0"),
        w.ErrorCause(3, bytes(8)),
        w.ErrorCause(w.CAUSE_INVALID_MANDATORY_PARAMETER, bytes(4)),
    ],
    ids=["short", "long", "other-code"],
)
def test_measure_of_staleness_rejects_other_causes(cause):
    with pytest.raises(ParseError):
        w.measure_of_staleness(cause)


def test_invalid_mandatory_parameter_abort_layout_rfc9260_3_3_10_7():
    """Cause code 7 has no cause-specific information: length 4."""
    abort = w.AbortChunk((w.ErrorCause(w.CAUSE_INVALID_MANDATORY_PARAMETER),))
    assert w.serialize_chunk(abort) == bytes.fromhex("06000008 00070004")
    assert w.parse_chunk(w.serialize_chunk(abort)) == abort


def test_unknown_chunk_kept_for_the_upper_bit_rule():
    raw = bytes([0x84, 0x00, 0x00, 0x06, 0xAA, 0xBB])
    assert w.parse_chunk(raw) == w.UnknownChunk(0x84, 0, b"\xaa\xbb")


def test_reconfig_rejects_unknown_parameter():
    raw = bytes.fromhex("82 00 0008 0063 0004")
    with pytest.raises(ParseError):
        w.parse_chunk(raw)


# --------------------------------------------------------------------------------------------------
# Round trips of every chunk type

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
blob = st.binary(max_size=40)
causes = st.lists(st.builds(w.ErrorCause, u16, blob), max_size=3).map(tuple)
_known_params = {w.PARAM_STATE_COOKIE, w.PARAM_FORWARD_TSN_SUPPORTED, w.PARAM_SUPPORTED_EXTENSIONS}
other_params = st.lists(st.tuples(u16.filter(lambda t: t not in _known_params), blob), max_size=3).map(tuple)
init_fields = dict(
    initiate_tag=u32,
    a_rwnd=u32,
    outbound_streams=u16,
    inbound_streams=u16,
    initial_tsn=u32,
    forward_tsn_supported=st.booleans(),
    supported_extensions=st.lists(st.integers(0, 255), max_size=4).map(tuple),
    other_params=other_params,
)
reconfig_params = st.one_of(
    st.builds(w.OutgoingResetRequest, u32, u32, u32, st.lists(u16, max_size=5).map(tuple)),
    st.builds(w.IncomingResetRequest, u32, st.lists(u16, max_size=5).map(tuple)),
    st.builds(w.ReconfigResponse, u32, u32),
    st.builds(w.ReconfigResponse, u32, u32, u32, u32),
    st.builds(w.OtherReconfigRequest, st.sampled_from([15, 17, 18]), u32, st.just(b"\0\0\0\0")),
)
chunks = st.one_of(
    st.builds(
        w.DataChunk,
        u32,
        u16,
        u16,
        u32,
        st.binary(min_size=1, max_size=60),
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.booleans(),
    ),
    st.builds(w.InitChunk, **init_fields),
    st.builds(w.InitAckChunk, **init_fields, state_cookie=blob),
    st.builds(
        w.SackChunk,
        u32,
        u32,
        st.lists(st.tuples(u16, u16), max_size=5).map(tuple),
        st.lists(u32, max_size=5).map(tuple),
    ),
    st.builds(w.HeartbeatChunk, blob),
    st.builds(w.HeartbeatAckChunk, blob),
    st.builds(w.AbortChunk, causes, st.booleans()),
    st.builds(w.ErrorChunk, causes),
    st.builds(w.ShutdownChunk, u32),
    st.just(w.ShutdownAckChunk()),
    st.builds(w.ShutdownCompleteChunk, st.booleans()),
    st.builds(w.CookieEchoChunk, blob),
    st.just(w.CookieAckChunk()),
    st.builds(w.ForwardTsnChunk, u32, st.lists(st.tuples(u16, u16), max_size=4).map(tuple)),
    st.builds(w.ReconfigChunk, st.lists(reconfig_params, min_size=1, max_size=2).map(tuple)),
    st.builds(
        w.UnknownChunk,
        st.integers(0, 255).filter(lambda t: t not in w._PARSERS),
        st.integers(0, 255),
        blob,
    ),
)
packets = st.builds(w.SctpPacket, u16, u16, u32, st.lists(chunks, min_size=1, max_size=4).map(tuple))


@given(chunks)
def test_every_chunk_round_trips(chunk):
    raw = w.serialize_chunk(chunk)
    assert w.parse_chunk(raw) == chunk
    assert w.chunk_size(chunk) == (len(raw) + 3) // 4 * 4


@given(packets)
def test_packets_round_trip(packet):
    raw = w.serialize_packet(packet)
    assert len(raw) % 4 == 0
    assert w.parse_packet(raw) == packet


def _with_crc(body: bytes) -> bytes:
    out = bytearray(body)
    struct.pack_into("<I", out, 8, w._packet_crc(out))
    return bytes(out)


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_parse_error(data):
    try:
        w.parse_packet(data)
    except ParseError:
        pass


@given(st.binary(min_size=16, max_size=200))
def test_any_checksummed_bytes_parse_or_raise_parse_error(data):
    try:
        packet = w.parse_packet(_with_crc(data))
    except ParseError:
        return
    assert w.parse_packet(w.serialize_packet(packet)) == packet


@given(st.sampled_from(sorted(w._PARSERS)), st.integers(0, 255), st.binary(max_size=80))
def test_every_chunk_parser_on_any_value(ctype, flags, value):
    raw = struct.pack("!BBH", ctype, flags, 4 + len(value)) + value
    try:
        chunk = w.parse_chunk(raw)
    except ParseError:
        return
    assert w.parse_chunk(w.serialize_chunk(chunk)) == chunk


@settings(max_examples=30)
@given(packets)
def test_every_truncation_is_rejected_or_parsed(packet):
    raw = w.serialize_packet(packet)
    for n in range(len(raw)):
        try:
            w.parse_packet(_with_crc(raw[:n]) if n >= 12 else raw[:n])
        except ParseError:
            pass


def test_interoperates_with_an_independent_implementation():
    """Black-box check of the checksum byte order and DATA layout against aiortc's codec."""
    aiortc_sctp = pytest.importorskip("aiortc.rtcsctptransport")
    raw = w.serialize_packet(w.SctpPacket(5000, 5001, 0xDEADBEEF, (w.DataChunk(7, 3, 2, 53, b"payload"),)))
    sport, dport, tag, parsed = aiortc_sctp.parse_packet(raw)
    assert (sport, dport, tag) == (5000, 5001, 0xDEADBEEF)
    assert parsed[0].tsn == 7 and parsed[0].user_data == b"payload"
