"""DCEP codec (RFC 8832 §5): OPEN and ACK layouts, channel types, errors and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxwire.wire.dcep import ChannelType, DataChannelAck, DataChannelOpen, Ppid, parse_dcep, serialize_dcep
from voxwire.wire.errors import ParseError


def test_open_layout_rfc8832_5_1():
    raw = bytes.fromhex("03 01 0100 00000003 0004 0003") + b"chat" + b"xyz"
    message = parse_dcep(raw)
    assert message == DataChannelOpen(ChannelType.PARTIAL_RELIABLE_REXMIT, 256, 3, "chat", "xyz")
    assert message.ordered and message.max_retransmits == 3 and message.max_packet_lifetime is None
    assert serialize_dcep(message) == raw


def test_ack_is_one_byte():
    assert serialize_dcep(DataChannelAck()) == b"\x02"
    assert parse_dcep(b"\x02") == DataChannelAck()
    with pytest.raises(ParseError):
        parse_dcep(b"\x02\x00")


@pytest.mark.parametrize(
    ("kwargs", "kind", "reliability"),
    [
        ({}, ChannelType.RELIABLE, 0),
        ({"ordered": False}, ChannelType.RELIABLE_UNORDERED, 0),
        ({"max_retransmits": 0}, ChannelType.PARTIAL_RELIABLE_REXMIT, 0),
        ({"max_retransmits": 5, "ordered": False}, ChannelType.PARTIAL_RELIABLE_REXMIT_UNORDERED, 5),
        ({"max_packet_lifetime": 150}, ChannelType.PARTIAL_RELIABLE_TIMED, 150),
        ({"max_packet_lifetime": 150, "ordered": False}, ChannelType.PARTIAL_RELIABLE_TIMED_UNORDERED, 150),
    ],
)
def test_channel_types_from_w3c_parameters(kwargs, kind, reliability):
    message = DataChannelOpen.for_channel("l", "p", **kwargs)
    assert (message.channel_type, message.reliability) == (kind, reliability)
    back = parse_dcep(serialize_dcep(message))
    assert back == message
    assert back.ordered == kwargs.get("ordered", True)
    assert back.max_retransmits == kwargs.get("max_retransmits")
    assert back.max_packet_lifetime == kwargs.get("max_packet_lifetime")


def test_both_reliability_limits_refused():
    with pytest.raises(ValueError):
        DataChannelOpen.for_channel("l", max_retransmits=1, max_packet_lifetime=1)


def test_reliability_ignored_for_reliable_channels():
    raw = bytes.fromhex("03 00 0000 0000002a 0000 0000")
    assert parse_dcep(raw) == DataChannelOpen(ChannelType.RELIABLE, 0, 0, "")


def test_utf8_labels_round_trip():
    message = DataChannelOpen.for_channel("événements 🎙", "oai-events")
    assert parse_dcep(serialize_dcep(message)).label == "événements 🎙"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x04",
        bytes.fromhex("03 00 0000 00000000 0001"),  # short header
        bytes.fromhex("03 00 0000 00000000 0002 0000") + b"a",  # label shorter than its length
        bytes.fromhex("03 00 0000 00000000 0000 0000") + b"!",  # trailing byte
        bytes.fromhex("03 07 0000 00000000 0000 0000"),  # unknown channel type
        bytes.fromhex("03 00 0000 00000000 0001 0000 ff"),  # label not UTF-8
    ],
)
def test_malformed_messages_raise_parse_error(raw):
    with pytest.raises(ParseError):
        parse_dcep(raw)


def test_ppids_rfc8831_8():
    assert [int(p) for p in Ppid] == [50, 51, 52, 53, 54, 56, 57]


@given(st.binary(max_size=64))
def test_any_bytes_parse_or_raise_parse_error(data):
    try:
        message = parse_dcep(data)
    except ParseError:
        return
    assert parse_dcep(serialize_dcep(message)) == message


@given(
    st.sampled_from(list(ChannelType)),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.text(max_size=20),
    st.text(max_size=20),
)
def test_open_round_trips(kind, priority, reliability, label, protocol):
    if kind & 0x7F == 0:
        reliability = 0
    message = DataChannelOpen(kind, priority, reliability, label, protocol)
    assert parse_dcep(serialize_dcep(message)) == message
