"""The Data Channel Establishment Protocol (RFC 8832) and the WebRTC PPIDs (RFC 8831 §8).

Theory of operation
-------------------
DCEP has two messages, both sent with PPID 50 on the stream of the channel they concern:
DATA_CHANNEL_OPEN (type 0x03) carries the channel type (reliability and ordering), a priority, the
reliability parameter (retransmissions or lifetime in milliseconds), and the label and protocol as
UTF-8 (RFC 8832 §5.1); DATA_CHANNEL_ACK (type 0x02) is a single byte (§5.2). :func:`parse_dcep`
checks lengths first and raises :class:`ParseError` for anything else, including an unknown message
or channel type and invalid UTF-8.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from voxwire.wire.errors import ParseError

__all__ = [
    "ChannelType",
    "DataChannelAck",
    "DataChannelOpen",
    "Ppid",
    "parse_dcep",
    "serialize_dcep",
]

MESSAGE_ACK: Final = 0x02  # RFC 8832 §8.2.1
MESSAGE_OPEN: Final = 0x03
_OPEN = struct.Struct("!BBHIHH")


class Ppid(IntEnum):
    """SCTP Payload Protocol Identifiers of WebRTC (RFC 8831 §8, RFC 8832 §8.1)."""

    DCEP = 50
    STRING = 51
    BINARY_PARTIAL = 52  # deprecated
    BINARY = 53
    STRING_PARTIAL = 54  # deprecated
    STRING_EMPTY = 56
    BINARY_EMPTY = 57


class ChannelType(IntEnum):
    """DATA_CHANNEL_OPEN channel types, RFC 8832 §5.1: the 0x80 bit means unordered."""

    RELIABLE = 0x00
    RELIABLE_UNORDERED = 0x80
    PARTIAL_RELIABLE_REXMIT = 0x01
    PARTIAL_RELIABLE_REXMIT_UNORDERED = 0x81
    PARTIAL_RELIABLE_TIMED = 0x02
    PARTIAL_RELIABLE_TIMED_UNORDERED = 0x82


@dataclass(frozen=True, slots=True)
class DataChannelOpen:
    """DATA_CHANNEL_OPEN, RFC 8832 §5.1."""

    channel_type: ChannelType
    priority: int
    reliability: int
    label: str
    protocol: str = ""

    @property
    def ordered(self) -> bool:
        return not self.channel_type & 0x80

    @property
    def max_retransmits(self) -> int | None:
        return self.reliability if self.channel_type & 0x7F == 0x01 else None

    @property
    def max_packet_lifetime(self) -> int | None:
        """Milliseconds."""
        return self.reliability if self.channel_type & 0x7F == 0x02 else None

    @classmethod
    def for_channel(
        cls,
        label: str,
        protocol: str = "",
        *,
        ordered: bool = True,
        max_retransmits: int | None = None,
        max_packet_lifetime: int | None = None,
        priority: int = 256,
    ) -> DataChannelOpen:
        """The OPEN for a channel with these W3C-style parameters (lifetime in milliseconds)."""
        if max_retransmits is not None and max_packet_lifetime is not None:
            raise ValueError("a channel has max_retransmits or max_packet_lifetime, not both")
        kind, value = 0x00, 0
        if max_retransmits is not None:
            kind, value = 0x01, max_retransmits
        elif max_packet_lifetime is not None:
            kind, value = 0x02, max_packet_lifetime
        return cls(ChannelType(kind | (0 if ordered else 0x80)), priority, value, label, protocol)


@dataclass(frozen=True, slots=True)
class DataChannelAck:
    """DATA_CHANNEL_ACK, RFC 8832 §5.2."""


DcepMessage = DataChannelOpen | DataChannelAck


def parse_dcep(data: bytes) -> DcepMessage:
    """Parse one DCEP message (the payload of a PPID 50 SCTP message)."""
    if not data:
        raise ParseError("DCEP: empty message")
    if data[0] == MESSAGE_ACK:
        if len(data) != 1:
            raise ParseError(f"DATA_CHANNEL_ACK: {len(data)} bytes, expected 1 (RFC 8832 §5.2)")
        return DataChannelAck()
    if data[0] != MESSAGE_OPEN:
        raise ParseError(f"DCEP: unknown message type {data[0]:#04x}")
    if len(data) < _OPEN.size:
        raise ParseError(f"DATA_CHANNEL_OPEN: {len(data)} bytes, shorter than 12")
    _, ctype, priority, reliability, label_len, proto_len = _OPEN.unpack_from(data)
    if len(data) != _OPEN.size + label_len + proto_len:
        raise ParseError(
            f"DATA_CHANNEL_OPEN: {len(data)} bytes do not match label {label_len} + protocol {proto_len}"
        )
    try:
        kind = ChannelType(ctype)
    except ValueError:
        raise ParseError(f"DATA_CHANNEL_OPEN: unknown channel type {ctype:#04x}") from None
    try:
        label = data[_OPEN.size : _OPEN.size + label_len].decode("utf-8")
        protocol = data[_OPEN.size + label_len :].decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("DATA_CHANNEL_OPEN: label or protocol is not UTF-8 (RFC 8832 §5.1)") from None
    if kind & 0x7F == 0:
        reliability = 0  # ignored for reliable channels (§5.1)
    return DataChannelOpen(kind, priority, reliability, label, protocol)


def serialize_dcep(message: DcepMessage) -> bytes:
    if isinstance(message, DataChannelAck):
        return bytes([MESSAGE_ACK])
    label = message.label.encode("utf-8")
    protocol = message.protocol.encode("utf-8")
    if len(label) > 0xFFFF or len(protocol) > 0xFFFF:
        raise ValueError("DATA_CHANNEL_OPEN: label and protocol must fit 65535 bytes each")
    head = _OPEN.pack(
        MESSAGE_OPEN, message.channel_type, message.priority, message.reliability, len(label), len(protocol)
    )
    return head + label + protocol
