"""RTCP codec: hand-built RFC 3550 / RFC 4585 vectors, compound and reduced-size, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxwire.wire.errors import ParseError
from voxwire.wire.rtcp import (
    PT_PSFB,
    Bye,
    GenericNack,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SdesChunk,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    is_rtcp,
    parse_rtcp,
    serialize_rtcp,
)
from voxwire.wire.types import Ssrc

# Vectors built octet by octet from the RFC diagrams. Each comment gives the common header as
# V=2 P RC | PT | length (32-bit words minus one), RFC 3550 §6.4.1.

BLOCK_HEX = (
    "1a2b3c4d"  # SSRC_1 (source being reported)
    "33000002"  # fraction lost 0x33 (51/256), cumulative lost 2
    "00010005"  # extended highest sequence: 1 cycle, seq 5
    "00000010"  # interarrival jitter 16
    "ff1c9d49"  # LSR
    "00008000"  # DLSR 0.5 s
)
BLOCK = ReportBlock(Ssrc(0x1A2B3C4D), 0x33, 2, 0x10005, 16, 0xFF1C9D49, 0x8000)

SR_HEX = (
    "81c8000c"  # V=2 P=0 RC=1 | PT=200 SR | length 12 (52 octets)
    "902f9e2e"  # SSRC of sender
    "e0c8ff1c9d495182"  # NTP timestamp, 64 bits
    "0002b950"  # RTP timestamp
    "00000064"  # sender's packet count 100
    "00003e80"  # sender's octet count 16000
) + BLOCK_HEX
SR = SenderReport(Ssrc(0x902F9E2E), 0xE0C8FF1C9D495182, 0x2B950, 100, 16000, (BLOCK,))

SDES_HEX = (
    "81ca0006"  # V=2 P=0 SC=1 | PT=202 SDES | length 6 (28 octets)
    "902f9e2e"  # SSRC/CSRC_1
    "0110" + b"4jZnDMs7Xu8Dq0iw".hex() + "0000"  # CNAME, 16 octets; null item + 1 null to the boundary
)
SDES = SourceDescription((SdesChunk(Ssrc(0x902F9E2E), ((1, b"4jZnDMs7Xu8Dq0iw"),)),))

# Chromium-shaped compound (built by hand in the shape Chromium sends from an audio sender, not a
# capture): SR with one report block, then SDES with a 16-character random CNAME.
CHROMIUM_COMPOUND = bytes.fromhex(SR_HEX + SDES_HEX)

RR_HEX = "81c90007 11223344" + BLOCK_HEX  # RC=1 | PT=201 | length 7 (32 octets)
BYE_HEX = "81cb0003 902f9e2e 06" + b"hangup".hex() + "00"  # SC=1, reason of 6 octets, 1 pad
NACK_HEX = "81cd0003 11223344 902f9e2e 0064 0005"  # FMT=1 | PT=205 | PID 100, BLP 0b101
PLI_HEX = "81ce0002 11223344 902f9e2e"  # FMT=1 | PT=206 PSFB: picture loss indication


def test_sender_report_vector() -> None:
    assert parse_rtcp(bytes.fromhex(SR_HEX)) == [SR]
    assert serialize_rtcp([SR]) == bytes.fromhex(SR_HEX)


def test_chromium_shaped_compound() -> None:
    packets = parse_rtcp(CHROMIUM_COMPOUND)
    assert packets == [SR, SDES]
    sdes = packets[1]
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0].cname == "4jZnDMs7Xu8Dq0iw"
    assert serialize_rtcp(packets) == CHROMIUM_COMPOUND


def test_receiver_report_and_negative_cumulative_loss() -> None:
    assert parse_rtcp(bytes.fromhex(RR_HEX)) == [ReceiverReport(Ssrc(0x11223344), (BLOCK,))]
    # Duplicates can drive cumulative loss negative: 0xffffff is -1 in the signed 24-bit field.
    data = bytes.fromhex(RR_HEX.replace("33000002", "00ffffff"))
    (rr,) = parse_rtcp(data)
    assert isinstance(rr, ReceiverReport) and rr.reports[0].cumulative_lost == -1
    assert serialize_rtcp([rr]) == data


def test_empty_rr_with_padding() -> None:
    # RFC 3550 §6.4.1 P bit: 4 octets of padding, the last one counting them.
    data = bytes.fromhex("a0c90002 11223344 00000004")
    assert parse_rtcp(data) == [ReceiverReport(Ssrc(0x11223344))]


def test_bye_with_reason() -> None:
    data = bytes.fromhex(BYE_HEX)
    assert parse_rtcp(data) == [Bye((Ssrc(0x902F9E2E),), b"hangup")]
    assert serialize_rtcp([Bye((Ssrc(0x902F9E2E),), b"hangup")]) == data


def test_reduced_size_nack_and_pli() -> None:
    # RFC 5506: no leading SR/RR. RFC 4585 §6.2.1: PID 100, BLP bits 0 and 2 -> 101 and 103 lost.
    packets = parse_rtcp(bytes.fromhex(NACK_HEX + PLI_HEX))
    nack, pli = packets
    assert nack == GenericNack(Ssrc(0x11223344), Ssrc(0x902F9E2E), ((100, 5),))
    assert isinstance(nack, GenericNack) and nack.lost_sequence_numbers() == [100, 101, 103]
    assert isinstance(pli, UnknownRtcp) and pli.packet_type == PT_PSFB and pli.fmt == 1
    assert serialize_rtcp(packets) == bytes.fromhex(NACK_HEX + PLI_HEX)


def test_sdes_chunk_without_items_and_several_items() -> None:
    sdes = SourceDescription(
        (
            SdesChunk(Ssrc(1)),
            SdesChunk(Ssrc(2), ((1, b"c"), (6, b"voxwire"))),
        )
    )
    data = serialize_rtcp([sdes])
    assert data[4:12] == bytes.fromhex("00000001 00000000")  # empty chunk: SSRC + 4 null octets
    assert parse_rtcp(data) == [sdes]


@pytest.mark.parametrize(
    ("hex_data", "field"),
    [
        ("", "empty"),
        ("41c90001 11223344", "version"),
        ("81c90007 11223344", "claims"),
        ("80c90001 11223344 00", "trailing"),
        ("a0c90001 11223344", "padding count 68"),
        ("a0c90001 11223300", "padding count 0"),
        ("80c80001 11223344", "sender info"),
        ("81c90001 11223344", "report blocks"),
        ("80c90000", "reporter"),
        ("81ca0001 00000001", "terminating"),
        ("82ca0002 00000001 00000000", "chunk 1 has no room"),
        ("81ca0002 00000001 0109aaaa", "runs past"),
        ("82cb0001 00000001", "BYE"),
        ("81cb0002 00000001 09aaaaaa", "reason"),
        ("81cd0001 00000001", "NACK"),
    ],
)
def test_rejects(hex_data: str, field: str) -> None:
    with pytest.raises(ParseError, match=field):
        parse_rtcp(bytes.fromhex(hex_data))


def test_byte_at_a_time_prefixes() -> None:
    # Only prefixes ending on a packet boundary are whole compounds; the rest must be ParseError.
    boundaries = {52: [SR], 80: [SR, SDES]}
    for n in range(len(CHROMIUM_COMPOUND) + 1):
        if n in boundaries:
            assert parse_rtcp(CHROMIUM_COMPOUND[:n]) == boundaries[n]
        else:
            with pytest.raises(ParseError):
                parse_rtcp(CHROMIUM_COMPOUND[:n])


def test_is_rtcp() -> None:
    assert is_rtcp(CHROMIUM_COMPOUND)
    assert is_rtcp(bytes.fromhex(NACK_HEX))
    assert not is_rtcp(bytes.fromhex("80ef1234"))  # RTP, marker set, PT 111
    assert not is_rtcp(b"\x80")


def test_nack_from_sequence_numbers_across_wrap() -> None:
    nack = GenericNack.from_sequence_numbers(Ssrc(1), Ssrc(2), [65534, 0, 65535, 2, 0])
    assert nack.pairs == ((65534, 0b1011),)
    assert nack.lost_sequence_numbers() == [65534, 65535, 0, 2]


def test_nack_from_sequence_numbers_splits_beyond_16() -> None:
    nack = GenericNack.from_sequence_numbers(Ssrc(1), Ssrc(2), [10, 26, 27])
    assert nack.pairs == ((10, 1 << 15), (27, 0))
    assert GenericNack.from_sequence_numbers(Ssrc(1), Ssrc(2), []).pairs == ()


@given(st.integers(0, 0xFFFF), st.sets(st.integers(0, 3000), min_size=1, max_size=200))
def test_nack_round_trip(base: int, offsets: set[int]) -> None:
    seqs = [(base + o) & 0xFFFF for o in sorted(offsets)]
    nack = GenericNack.from_sequence_numbers(Ssrc(1), Ssrc(2), reversed(seqs))
    assert sorted(nack.lost_sequence_numbers(), key=lambda s: (s - seqs[0]) & 0xFFFF) == seqs
    assert nack.lost_sequence_numbers() == seqs
    assert parse_rtcp(serialize_rtcp([nack])) == [nack]


def test_serialize_rejects_misuse() -> None:
    with pytest.raises(ValueError, match="exceeds 31"):
        serialize_rtcp([ReceiverReport(Ssrc(1), (BLOCK,) * 32)])
    bad = ReportBlock(Ssrc(1), 256, 0, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="loss fields"):
        serialize_rtcp([ReceiverReport(Ssrc(1), (bad,))])
    with pytest.raises(ValueError, match="multiple of 4"):
        serialize_rtcp([ReceiverReport(Ssrc(1), extension=b"abc")])


u32 = st.integers(0, 0xFFFFFFFF)
ssrcs = u32.map(Ssrc)
blocks = st.builds(
    ReportBlock, ssrcs, st.integers(0, 255), st.integers(-0x800000, 0x7FFFFF), u32, u32, u32, u32
)
words = st.binary(max_size=12).map(lambda b: b + bytes(-len(b) % 4))
rtcp_packets: st.SearchStrategy[RtcpPacket] = st.one_of(
    st.builds(
        SenderReport,
        ssrcs,
        st.integers(0, (1 << 64) - 1),
        u32,
        u32,
        u32,
        st.lists(blocks, max_size=3).map(tuple),
        words,
    ),
    st.builds(ReceiverReport, ssrcs, st.lists(blocks, max_size=3).map(tuple), words),
    st.builds(
        SourceDescription,
        st.lists(
            st.builds(
                SdesChunk,
                ssrcs,
                st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=30)), max_size=3).map(tuple),
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(Bye, st.lists(ssrcs, max_size=4).map(tuple), st.binary(max_size=40)),
    st.builds(
        GenericNack,
        ssrcs,
        ssrcs,
        st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)), max_size=4).map(tuple),
    ),
    words.map(lambda body: UnknownRtcp(bytes((0x81, PT_PSFB, 0, len(body) // 4)) + body)),
)


@given(st.lists(rtcp_packets, min_size=1, max_size=5))
def test_round_trip(packets: list[RtcpPacket]) -> None:
    data = serialize_rtcp(packets)
    assert parse_rtcp(data) == packets
    assert serialize_rtcp(parse_rtcp(data)) == data


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_parse_error(data: bytes) -> None:
    try:
        parse_rtcp(data)
    except ParseError:
        pass


@given(
    st.lists(
        st.tuples(
            st.integers(0, 63),  # P bit and count
            st.sampled_from([200, 201, 202, 203, 204, 205, 206, 207]),
            st.binary(max_size=60).map(lambda b: b + bytes(-len(b) % 4)),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_well_framed_garbage_bodies_parse_or_parse_error(parts: list[tuple[int, int, bytes]]) -> None:
    # Correct version and length fields, so the fuzzing reaches every body parser.
    data = b"".join(bytes((0x80 | flags, pt, 0, len(body) // 4)) + body for flags, pt, body in parts)
    try:
        parse_rtcp(data)
    except ParseError:
        pass
