"""RTCP packets: SR, RR, SDES, BYE, generic NACK, and the rest kept raw (RFC 3550 §6, RFC 4585).

Theory of operation
-------------------
An RTCP datagram is a compound: RTCP packets back to back, each with a 4-octet common header whose
length field counts 32-bit words minus one (RFC 3550 §6.4.1). `parse_rtcp` walks the compound and
checks the version and the length of each packet against what is left *before* it reads the body, then
strips padding (P bit: the last octet counts the padding octets, itself included) and dispatches on
the packet type:

* 200 SR, 201 RR (§6.4.1, §6.4.2) with their 24-octet report blocks; a profile-specific extension
  after the blocks is kept raw.
* 202 SDES (§6.5) as chunks of (type, value) items; CNAME is item 1.
* 203 BYE (§6.6) with the optional reason.
* 205 RTPFB with FMT 1, the generic NACK of RFC 4585 §6.2.1 (PID + BLP bitmask).
* everything else (APP, PSFB such as PLI, other RTPFB such as transport-cc, XR) as `UnknownRtcp`,
  whose `raw` is the whole packet, header included, and is written back unchanged.

The compound is not required to begin with SR or RR: RFC 5506 reduced-size RTCP (a lone NACK, say)
parses the same way. `serialize_rtcp` writes packets without padding.

NTP timestamps stay plain 64-bit ints here; `voxwire.proto.clock.NtpTime` gives them a type.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from voxwire.wire.errors import ParseError
from voxwire.wire.rtp import seq_diff
from voxwire.wire.types import Ssrc

PT_SR = 200
PT_RR = 201
PT_SDES = 202
PT_BYE = 203
PT_APP = 204
PT_RTPFB = 205  # RFC 4585 §6.1 transport-layer feedback
PT_PSFB = 206  # RFC 4585 §6.1 payload-specific feedback
FMT_GENERIC_NACK = 1  # RFC 4585 §6.2.1

SDES_END = 0
SDES_CNAME = 1  # RFC 3550 §6.5.1

_HEADER = struct.Struct("!BBH")
_SR_INFO = struct.Struct("!IQIII")  # SSRC, NTP (64 bits), RTP timestamp, packet count, octet count
_BLOCK = struct.Struct("!IIIIII")
_U32 = struct.Struct("!I")
_NACK_FCI = struct.Struct("!HH")
_TWO_SSRC = struct.Struct("!II")
_MAX_COUNT = 31  # five-bit RC/SC field


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 §6.4.1).

    `fraction_lost` is fixed point with the binary point at the left (lost/expected * 256);
    `cumulative_lost` is a signed 24-bit count (duplicates can make it negative); `highest_sequence`
    is the extended highest sequence number; `lsr` is the middle 32 bits of the last SR's NTP
    timestamp and `dlsr` the delay since that SR, both in units of 1/65536 s; `jitter` is in RTP
    timestamp units.
    """

    ssrc: Ssrc
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    lsr: int
    dlsr: int


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (RFC 3550 §6.4.1). `ntp_timestamp` is the full 64-bit NTP value, seconds.fraction 32.32."""

    ssrc: Ssrc
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (RFC 3550 §6.4.2)."""

    ssrc: Ssrc
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk: a source and its (item type, value) pairs (RFC 3550 §6.5)."""

    ssrc: Ssrc
    items: tuple[tuple[int, bytes], ...] = ()

    @property
    def cname(self) -> str | None:
        """The CNAME item decoded as UTF-8 (§6.5.1), None when absent."""
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (RFC 3550 §6.5)."""

    chunks: tuple[SdesChunk, ...]

    @classmethod
    def with_cname(cls, ssrc: Ssrc, cname: str) -> SourceDescription:
        return cls((SdesChunk(ssrc, ((SDES_CNAME, cname.encode()),)),))


@dataclass(frozen=True, slots=True)
class Bye:
    """BYE (RFC 3550 §6.6)."""

    sources: tuple[Ssrc, ...]
    reason: bytes = b""


@dataclass(frozen=True, slots=True)
class GenericNack:
    """Generic NACK, RTPFB FMT 1 (RFC 4585 §6.2.1): (PID, BLP) pairs.

    PID is a lost sequence number; bit i of BLP (least significant first) reports PID + i + 1 lost too.
    """

    sender_ssrc: Ssrc
    media_ssrc: Ssrc
    pairs: tuple[tuple[int, int], ...]

    def lost_sequence_numbers(self) -> list[int]:
        """Every sequence number the NACK reports lost, in the order carried."""
        lost = []
        for pid, blp in self.pairs:
            lost.append(pid)
            for bit in range(16):
                if blp >> bit & 1:
                    lost.append((pid + bit + 1) & 0xFFFF)
        return lost

    @classmethod
    def from_sequence_numbers(cls, sender_ssrc: Ssrc, media_ssrc: Ssrc, lost: Iterable[int]) -> GenericNack:
        """The fewest pairs covering `lost` (all within half the sequence space of the first one)."""
        seqs = list(lost)
        if not seqs:
            return cls(sender_ssrc, media_ssrc, ())
        ref = seqs[0]
        pairs: list[tuple[int, int]] = []
        pid = blp = 0
        for ext in sorted({ref + seq_diff(s, ref) for s in seqs}):
            if pairs and 1 <= ext - pid <= 16:
                blp |= 1 << (ext - pid - 1)
                pairs[-1] = (pid & 0xFFFF, blp)
            else:
                pid, blp = ext, 0
                pairs.append((pid & 0xFFFF, 0))
        return cls(sender_ssrc, media_ssrc, tuple(pairs))


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    """Any other RTCP packet, kept whole (header, body and padding) for forwarding or later parsing."""

    raw: bytes

    @property
    def packet_type(self) -> int:
        return self.raw[1]

    @property
    def fmt(self) -> int:
        """The 5-bit count/FMT field of the common header."""
        return self.raw[0] & 0x1F


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | GenericNack | UnknownRtcp


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: on a muxed port, a second octet in 192..223 marks RTCP (else RTP)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse a compound (or reduced-size, RFC 5506) RTCP datagram; raise only `ParseError`."""
    if not data:
        raise ParseError("RTCP: empty datagram")
    packets: list[RtcpPacket] = []
    offset = 0
    size = len(data)
    while offset < size:
        if size - offset < 4:
            raise ParseError(f"RTCP: {size - offset} trailing octets, shorter than a header")
        first, ptype, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != 2:
            raise ParseError(f"RTCP: version {first >> 6} at offset {offset}, expected 2")
        length = 4 * (words + 1)
        if length > size - offset:
            raise ParseError(f"RTCP: packet type {ptype} claims {length} octets, {size - offset} left")
        end = offset + length
        if first & 0x20:
            pad = data[end - 1]
            if pad == 0 or pad > length - 4:
                raise ParseError(f"RTCP: padding count {pad} does not fit packet type {ptype}")
        else:
            pad = 0
        count = first & 0x1F
        body = bytes(data[offset + 4 : end - pad])
        if ptype == PT_SR:
            packets.append(_parse_sr(count, body))
        elif ptype == PT_RR:
            packets.append(_parse_rr(count, body))
        elif ptype == PT_SDES:
            packets.append(_parse_sdes(count, body))
        elif ptype == PT_BYE:
            packets.append(_parse_bye(count, body))
        elif ptype == PT_RTPFB and count == FMT_GENERIC_NACK:
            packets.append(_parse_nack(body))
        else:
            packets.append(UnknownRtcp(bytes(data[offset:end])))
        offset = end
    return packets


def _parse_blocks(count: int, body: bytes, offset: int, what: str) -> tuple[tuple[ReportBlock, ...], bytes]:
    end = offset + _BLOCK.size * count
    if len(body) < end:
        raise ParseError(f"RTCP {what}: {count} report blocks need {end} octets, have {len(body)}")
    blocks = []
    for i in range(offset, end, _BLOCK.size):
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(body, i)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:  # signed 24-bit (§6.4.1, §A.3)
            cumulative -= 1 << 24
        blocks.append(ReportBlock(Ssrc(ssrc), lost >> 24, cumulative, highest, jitter, lsr, dlsr))
    return tuple(blocks), body[end:]


def _parse_sr(count: int, body: bytes) -> SenderReport:
    if len(body) < _SR_INFO.size:
        raise ParseError(f"RTCP SR: {len(body)} octets, sender info needs {_SR_INFO.size}")
    ssrc, ntp, rtp_ts, packets, octets = _SR_INFO.unpack_from(body)
    blocks, extension = _parse_blocks(count, body, _SR_INFO.size, "SR")
    return SenderReport(Ssrc(ssrc), ntp, rtp_ts, packets, octets, blocks, extension)


def _parse_rr(count: int, body: bytes) -> ReceiverReport:
    if len(body) < 4:
        raise ParseError("RTCP RR: no room for the reporter SSRC")
    blocks, extension = _parse_blocks(count, body, 4, "RR")
    return ReceiverReport(Ssrc(_U32.unpack_from(body)[0]), blocks, extension)


def _parse_sdes(count: int, body: bytes) -> SourceDescription:
    chunks: list[SdesChunk] = []
    i = 0
    end = len(body)
    for _ in range(count):
        if i + 4 > end:
            raise ParseError(f"RTCP SDES: chunk {len(chunks)} has no room for its SSRC")
        ssrc = _U32.unpack_from(body, i)[0]
        i += 4
        items: list[tuple[int, bytes]] = []
        while True:
            if i >= end:
                raise ParseError(f"RTCP SDES: chunk {len(chunks)} has no terminating null item")
            kind = body[i]
            if kind == SDES_END:  # null item, then null octets to the next 32-bit boundary
                i = (i + 4) & ~3
                break
            if i + 2 > end or i + 2 + body[i + 1] > end:
                raise ParseError(f"RTCP SDES: item type {kind} runs past the end")
            items.append((kind, body[i + 2 : i + 2 + body[i + 1]]))
            i += 2 + body[i + 1]
        chunks.append(SdesChunk(Ssrc(ssrc), tuple(items)))
    return SourceDescription(tuple(chunks))


def _parse_bye(count: int, body: bytes) -> Bye:
    n = 4 * count
    if len(body) < n:
        raise ParseError(f"RTCP BYE: {count} sources need {n} octets, have {len(body)}")
    sources = tuple(Ssrc(s) for s in struct.unpack_from(f"!{count}I", body))
    reason = b""
    if len(body) > n:
        length = body[n]
        if n + 1 + length > len(body):
            raise ParseError(f"RTCP BYE: reason of {length} octets runs past the end")
        reason = body[n + 1 : n + 1 + length]
    return Bye(sources, reason)


def _parse_nack(body: bytes) -> GenericNack:
    if len(body) < 8 or len(body) % 4:
        raise ParseError(f"RTCP NACK: body of {len(body)} octets is not 8 + 4n")
    sender, media = _TWO_SSRC.unpack_from(body)
    pairs = tuple(_NACK_FCI.unpack_from(body, i) for i in range(8, len(body), 4))
    return GenericNack(Ssrc(sender), Ssrc(media), pairs)


def serialize_rtcp(packets: Iterable[RtcpPacket]) -> bytes:
    """Serialize packets back to back as one compound datagram."""
    return b"".join(_serialize_one(p) for p in packets)


def _packet(count: int, ptype: int, body: bytes) -> bytes:
    if count > _MAX_COUNT:
        raise ValueError(f"RTCP: count {count} for packet type {ptype} exceeds {_MAX_COUNT}")
    if len(body) % 4:
        raise ValueError(f"RTCP: body of packet type {ptype} is not a multiple of 4 octets")
    return _HEADER.pack(0x80 | count, ptype, len(body) // 4) + body


def _blocks(blocks: tuple[ReportBlock, ...]) -> bytes:
    out = bytearray()
    for b in blocks:
        if not 0 <= b.fraction_lost <= 255 or not -0x800000 <= b.cumulative_lost <= 0x7FFFFF:
            raise ValueError(f"RTCP: report block for {b.ssrc} has loss fields out of range")
        lost = b.fraction_lost << 24 | (b.cumulative_lost & 0xFFFFFF)
        out += _BLOCK.pack(b.ssrc, lost, b.highest_sequence, b.jitter, b.lsr, b.dlsr)
    return bytes(out)


def _serialize_one(p: RtcpPacket) -> bytes:
    if isinstance(p, SenderReport):
        info = _SR_INFO.pack(p.ssrc, p.ntp_timestamp, p.rtp_timestamp, p.packet_count, p.octet_count)
        return _packet(len(p.reports), PT_SR, info + _blocks(p.reports) + p.extension)
    if isinstance(p, ReceiverReport):
        return _packet(len(p.reports), PT_RR, _U32.pack(p.ssrc) + _blocks(p.reports) + p.extension)
    if isinstance(p, SourceDescription):
        body = bytearray()
        for chunk in p.chunks:
            body += _U32.pack(chunk.ssrc)
            for kind, value in chunk.items:
                if not 1 <= kind <= 255 or len(value) > 255:
                    raise ValueError(f"RTCP SDES: item type {kind} with {len(value)} octets is invalid")
                body += bytes((kind, len(value))) + value
            body += bytes(4 - len(body) % 4)  # one to four null octets (§6.5)
        return _packet(len(p.chunks), PT_SDES, bytes(body))
    if isinstance(p, Bye):
        body = bytearray(struct.pack(f"!{len(p.sources)}I", *p.sources))
        if p.reason:
            if len(p.reason) > 255:
                raise ValueError("RTCP BYE: reason longer than 255 octets")
            body += bytes((len(p.reason),)) + p.reason
            body += bytes(-len(body) % 4)
        return _packet(len(p.sources), PT_BYE, bytes(body))
    if isinstance(p, GenericNack):
        fci = b"".join(_NACK_FCI.pack(pid, blp) for pid, blp in p.pairs)
        return _packet(FMT_GENERIC_NACK, PT_RTPFB, _TWO_SSRC.pack(p.sender_ssrc, p.media_ssrc) + fci)
    if len(p.raw) < 4 or len(p.raw) % 4:
        raise ValueError("RTCP: UnknownRtcp.raw is not a whole RTCP packet")
    return p.raw
