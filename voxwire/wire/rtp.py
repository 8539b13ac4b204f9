"""RTP packets: parse, serialize, and a cheap egress builder (RFC 3550 §5.1, RFC 8285).

Theory of operation
-------------------
An RTP packet is a 12-octet fixed header, 0..15 CSRCs, an optional header extension, the payload and
optional padding (RFC 3550 §5.1, §5.3.1). `parse_rtp` checks every length before it slices and raises
only `ParseError`. The header extension is kept twice: the raw bytes (`extension_data`, the truth that
`serialize_rtp` writes back) and, for the RFC 8285 profiles, a parsed view `extensions: {id: bytes}`.
Change extensions with `RtpPacket.set_extensions`, which keeps both in step.

`build_rtp` is the per-packet egress path: one precompiled `struct.Struct` and two concatenations.
It takes sequence numbers and timestamps modulo 2**16 and 2**32, so a sender may pass its extended
(64-bit) counters straight in.

Sequence numbers and timestamps wrap. `seq_diff` is the signed modular distance between two sequence
numbers; `SeqUnwrapper` and `TsUnwrapper` extend the 16-bit and 32-bit fields to unbounded integers by
choosing, for each new value, the candidate nearest the previous one (RFC 3550 §A.1 uses the same
"half the number space" idea).

No codec is imported here: the payload is opaque bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from voxwire.wire.errors import ParseError
from voxwire.wire.types import PayloadType, Ssrc

RTP_VERSION = 2
RTP_HEADER_SIZE = 12

#: RFC 8285 §4.2: the "defined by profile" value of the one-byte header form.
ONE_BYTE_PROFILE = 0xBEDE
#: RFC 8285 §4.3: the two-byte form is 0x100 followed by 4 "appbits"; we send appbits 0.
TWO_BYTE_PROFILE = 0x1000
_TWO_BYTE_MASK = 0xFFF0

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1). The version is always 2 and not stored.

    `extension_profile` is None when the X bit is clear. `extension_data` is the extension body
    without its 4-octet profile/length header, a multiple of 4 octets. `padding` is the number of
    padding octets (RFC 3550 §5.1 P bit), 0 for none; it counts the final count octet itself.
    """

    payload_type: PayloadType
    sequence_number: int
    timestamp: int
    ssrc: Ssrc
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension_data: bytes = b""
    extensions: dict[int, bytes] = field(default_factory=dict)
    padding: int = 0

    def set_extensions(self, elements: Mapping[int, bytes], *, two_byte: bool | None = None) -> None:
        """Replace the header extension with RFC 8285 elements (empty mapping: no extension)."""
        if not elements:
            self.extension_profile, self.extension_data, self.extensions = None, b"", {}
            return
        block = encode_extensions(elements, two_byte=two_byte)
        self.extension_profile = _EXT_HEADER.unpack_from(block)[0]
        self.extension_data = block[4:]
        self.extensions = dict(elements)


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP packet; raise `ParseError` on anything malformed (RFC 3550 §5.1, §5.3.1)."""
    size = len(data)
    if size < RTP_HEADER_SIZE:
        raise ParseError(f"RTP: {size} octets, shorter than the 12-octet fixed header")
    first, second, seq, ts, ssrc = _HEADER.unpack_from(data)
    if first == 0x80:
        # Version 2 without padding, extension or CSRCs: what WebRTC audio sends unless header
        # extensions were negotiated. Per packet, so no NewType calls (they return their argument).
        return RtpPacket(second & 0x7F, seq, ts, ssrc, data[RTP_HEADER_SIZE:], second > 0x7F)
    if first >> 6 != RTP_VERSION:
        raise ParseError(f"RTP: version {first >> 6}, expected 2")
    offset = RTP_HEADER_SIZE + 4 * (first & 0x0F)
    if size < offset:
        raise ParseError(f"RTP: CSRC count {first & 0x0F} runs past the end ({size} octets)")
    csrcs: tuple[int, ...] = (
        struct.unpack_from(f"!{first & 0x0F}I", data, RTP_HEADER_SIZE) if first & 0x0F else ()
    )

    profile: int | None = None
    ext_data = b""
    extensions: dict[int, bytes] = {}
    if first & 0x10:  # X bit, §5.3.1
        if size < offset + 4:
            raise ParseError("RTP: X bit set but no room for the extension header")
        profile, words = _EXT_HEADER.unpack_from(data, offset)
        end = offset + 4 + 4 * words
        if size < end:
            raise ParseError(f"RTP: header extension of {words} words runs past the end")
        ext_data = data[offset + 4 : end]
        extensions = _parse_extensions(profile, ext_data)
        offset = end

    pad = 0
    if first & 0x20:  # P bit: the last octet counts the padding, itself included (§5.1)
        pad = data[-1]
        if pad == 0 or offset + pad > size:
            raise ParseError(f"RTP: padding count {pad} does not fit {size - offset} octets")
    # Positional: keyword construction costs twice as much on this per-packet path.
    return RtpPacket(
        PayloadType(second & 0x7F),
        seq,
        ts,
        Ssrc(ssrc),
        data[offset : size - pad],
        second > 0x7F,
        csrcs,
        profile,
        ext_data,
        extensions,
        pad,
    )


def serialize_rtp(packet: RtpPacket) -> bytes:
    """Serialize a packet; `extension_data` (not the parsed view) is what is written."""
    if len(packet.csrcs) > 15:
        raise ValueError(f"RTP: {len(packet.csrcs)} CSRCs, at most 15 fit the CC field")
    if len(packet.extension_data) % 4:
        raise ValueError("RTP: extension_data must be a multiple of 4 octets (RFC 3550 §5.3.1)")
    if not 0 <= packet.padding <= 255:
        raise ValueError(f"RTP: padding {packet.padding} does not fit one count octet")
    if not 0 <= packet.payload_type <= 127:
        raise ValueError(f"RTP: payload type {packet.payload_type} is not 7 bits")
    first = RTP_VERSION << 6 | len(packet.csrcs)
    parts: list[bytes] = []
    if packet.padding:
        first |= 0x20
    if packet.extension_profile is not None:
        first |= 0x10
    parts.append(
        _HEADER.pack(
            first,
            packet.payload_type | (0x80 if packet.marker else 0),
            packet.sequence_number,
            packet.timestamp,
            packet.ssrc,
        )
    )
    if packet.csrcs:
        parts.append(struct.pack(f"!{len(packet.csrcs)}I", *packet.csrcs))
    if packet.extension_profile is not None:
        parts.append(_EXT_HEADER.pack(packet.extension_profile, len(packet.extension_data) // 4))
        parts.append(packet.extension_data)
    parts.append(packet.payload)
    if packet.padding:
        parts.append(bytes(packet.padding - 1) + bytes((packet.padding,)))
    return b"".join(parts)


def build_rtp(
    payload_type: int,
    seq: int,
    ts: int,
    ssrc: int,
    payload: bytes,
    marker: bool = False,
    extensions: bytes = b"",
) -> bytes:
    """Build an RTP packet on the egress hot path.

    `extensions` is a complete header-extension block as made by `encode_extensions` (profile, length
    and padded body), or empty for none. `seq` and `ts` are reduced modulo 2**16 and 2**32.
    """
    second = payload_type | 0x80 if marker else payload_type
    if extensions:
        return _HEADER.pack(0x90, second, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + extensions + payload
    return _HEADER.pack(0x80, second, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def encode_extensions(elements: Mapping[int, bytes], *, two_byte: bool | None = None) -> bytes:
    """Encode RFC 8285 elements as a full header-extension block (profile, length, padded body).

    The one-byte form (§4.2) is used when every id is 1..14 and every value 1..16 octets, unless
    `two_byte` forces a choice; otherwise the two-byte form (§4.3: ids 1..255, values 0..255 octets).
    """
    fits_one = all(1 <= i <= 14 and 1 <= len(v) <= 16 for i, v in elements.items())
    if two_byte is None:
        two_byte = not fits_one
    elif not two_byte and not fits_one:
        raise ValueError("RTP: elements do not fit the one-byte header form (RFC 8285 §4.2)")
    body = bytearray()
    for ident, value in elements.items():
        if two_byte:
            if not 1 <= ident <= 255 or len(value) > 255:
                raise ValueError(f"RTP: extension id {ident} / {len(value)} octets invalid (RFC 8285 §4.3)")
            body += bytes((ident, len(value)))
        else:
            body.append(ident << 4 | (len(value) - 1))
        body += value
    body += bytes(-len(body) % 4)  # pad with zero octets to a 32-bit boundary (§4.1.1)
    profile = TWO_BYTE_PROFILE if two_byte else ONE_BYTE_PROFILE
    return _EXT_HEADER.pack(profile, len(body) // 4) + bytes(body)


def _parse_extensions(profile: int, body: bytes) -> dict[int, bytes]:
    """The RFC 8285 elements of an extension body; other profiles give an empty mapping.

    A malformed element ends the walk and keeps what came before it, as §4.2 prescribes for id 15:
    the packet itself is still valid RTP (RFC 3550 treats the extension as opaque).
    """
    out: dict[int, bytes] = {}
    end = len(body)
    i = 0
    if profile == ONE_BYTE_PROFILE:
        while i < end:
            octet = body[i]
            if octet == 0:  # padding octet (§4.2)
                i += 1
                continue
            ident, length = octet >> 4, (octet & 0x0F) + 1
            if ident in (0, 15) or i + 1 + length > end:
                break
            out[ident] = body[i + 1 : i + 1 + length]
            i += 1 + length
    elif profile & _TWO_BYTE_MASK == TWO_BYTE_PROFILE:
        while i < end:
            ident = body[i]
            if ident == 0:  # padding octet (§4.3)
                i += 1
                continue
            if i + 2 > end or i + 2 + body[i + 1] > end:
                break
            length = body[i + 1]
            out[ident] = body[i + 2 : i + 2 + length]
            i += 2 + length
    return out


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b between 16-bit sequence numbers, in -32768..32767 (RFC 3550 §A.1)."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


class _Unwrapper:
    """Extend a `bits`-wide wrapping counter to an unbounded int, nearest to the previous value."""

    __slots__ = ("_last", "_mask", "_half")

    def __init__(self, bits: int) -> None:
        self._mask = (1 << bits) - 1
        self._half = 1 << (bits - 1)
        self._last: int | None = None

    def unwrap(self, value: int) -> int:
        """The extended value. The first value maps to itself; older ones may go negative."""
        if self._last is None:
            self._last = value & self._mask
            return self._last
        delta = ((value - self._last + self._half) & self._mask) - self._half
        self._last += delta
        return self._last

    @property
    def last(self) -> int | None:
        """The most recent extended value, None before the first."""
        return self._last


class SeqUnwrapper(_Unwrapper):
    """Extend 16-bit RTP sequence numbers to unbounded integers."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(16)


class TsUnwrapper(_Unwrapper):
    """Extend 32-bit RTP timestamps to unbounded integers."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(32)
