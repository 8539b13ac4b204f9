"""SCTP packets and chunks (RFC 9260) as WebRTC uses them: pure parse and serialize.

Theory of operation
-------------------
An SCTP packet is a 12-byte common header (ports, verification tag, CRC32C checksum; RFC 9260
§3.1) followed by chunks, each a type/flags/length header and a value padded to 4 bytes (§3.2).
:func:`parse_packet` checks the checksum first (RFC 9260 §6.8, Appendix A: CRC32C computed over the
packet with the checksum field zeroed, stored least significant byte first), then walks the chunks
with a table of per-type parsers. Every length is checked before it is used; anything malformed
raises :class:`ParseError` and nothing else. Chunk types we do not implement come back as
:class:`UnknownChunk` so the association can apply the "upper two bits" rule of §3.2.

The chunks are the ones a WebRTC data channel association needs: DATA, INIT / INIT ACK with their
parameters (state cookie, Forward-TSN-Supported of RFC 3758 §3.1, Supported Extensions of RFC 5061
§4.2.7), SACK with gap blocks and duplicate TSNs, HEARTBEAT / ACK, ABORT, ERROR, SHUTDOWN / ACK /
COMPLETE, COOKIE ECHO / ACK, FORWARD TSN (RFC 3758 §3.2) and RE-CONFIG (RFC 6525 §3.1, §4).

SNAP (draft-hancke-tsvwg-snap) signals one INIT chunk out of band; :func:`parse_chunk` and
:func:`serialize_chunk` handle a single chunk without a packet around it. A serialized chunk carries
no trailing padding (its length field covers it exactly), which is what ``a=sctp-init`` holds.

The chunk dataclasses and the type, parameter and cause numbers are in :mod:`voxwire.wire.sctp_chunks`
and re-exported here; this module is the codec.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

import google_crc32c

from voxwire.wire.errors import ParseError
from voxwire.wire.sctp_chunks import (
    ABORT,
    CAUSE_INVALID_MANDATORY_PARAMETER,
    CAUSE_NO_USER_DATA,
    CAUSE_PROTOCOL_VIOLATION,
    CAUSE_STALE_COOKIE,
    CAUSE_UNRECOGNIZED_CHUNK,
    CAUSE_USER_INITIATED_ABORT,
    COOKIE_ACK,
    COOKIE_ECHO,
    DATA,
    ERROR,
    FORWARD_TSN,
    HEARTBEAT,
    HEARTBEAT_ACK,
    INIT,
    INIT_ACK,
    PARAM_FORWARD_TSN_SUPPORTED,
    PARAM_HEARTBEAT_INFO,
    PARAM_INCOMING_RESET,
    PARAM_OUTGOING_RESET,
    PARAM_RECONFIG_RESPONSE,
    PARAM_STATE_COOKIE,
    PARAM_SUPPORTED_EXTENSIONS,
    RE_CONFIG,
    SACK,
    SHUTDOWN,
    SHUTDOWN_ACK,
    SHUTDOWN_COMPLETE,
    AbortChunk,
    Chunk,
    CookieAckChunk,
    CookieEchoChunk,
    DataChunk,
    ErrorCause,
    ErrorChunk,
    ForwardTsnChunk,
    HeartbeatAckChunk,
    HeartbeatChunk,
    IncomingResetRequest,
    InitAckChunk,
    InitChunk,
    OtherReconfigRequest,
    OutgoingResetRequest,
    ReconfigChunk,
    ReconfigParam,
    ReconfigResponse,
    SackChunk,
    SctpPacket,
    ShutdownAckChunk,
    ShutdownChunk,
    ShutdownCompleteChunk,
    UnknownChunk,
)

HEADER_SIZE: Final = 12
DATA_HEADER_SIZE: Final = 16
_U32: Final = 0xFFFFFFFF

_HEADER = struct.Struct("!HHI")  # ports and verification tag; the checksum is little-endian
_CHUNK_HEADER = struct.Struct("!BBH")
_DATA = struct.Struct("!IHHI")
_INIT = struct.Struct("!IIHHI")
_SACK = struct.Struct("!IIHH")


def _pad(n: int) -> int:
    return (4 - n % 4) % 4


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli) of ``data``, RFC 9260 Appendix A / RFC 3720 §B.4."""
    return int(google_crc32c.value(data))


def _packet_crc(data: bytes | bytearray | memoryview) -> int:
    view = memoryview(data)
    crc = google_crc32c.value(bytes(view[:8]))
    crc = google_crc32c.extend(crc, b"\0\0\0\0")
    return int(google_crc32c.extend(crc, bytes(view[12:])))


# --------------------------------------------------------------------------------------------------
# TLV helpers (parameters and error causes share the layout, RFC 9260 §3.2.1, §3.3.10)


def _parse_tlvs(body: bytes, what: str) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(body):
        if len(body) - pos < 4:
            raise ParseError(f"{what}: {len(body) - pos} trailing bytes, too short for a header")
        ptype, plen = struct.unpack_from("!HH", body, pos)
        if plen < 4 or pos + plen > len(body):
            raise ParseError(f"{what} type {ptype}: length {plen} invalid")
        out.append((ptype, body[pos + 4 : pos + plen]))
        pos += plen + _pad(plen)
    return out


def _tlv(ptype: int, value: bytes, pad: bool = True) -> bytes:
    out = struct.pack("!HH", ptype, 4 + len(value)) + value
    return out + b"\0" * _pad(len(out)) if pad else out


def _tlvs(items: list[tuple[int, bytes]]) -> bytes:
    """Parameters in a chunk: each padded but the last, whose padding the packet adds."""
    return b"".join(_tlv(t, v, pad=i < len(items) - 1) for i, (t, v) in enumerate(items))


def _u16s(body: bytes, what: str) -> tuple[int, ...]:
    if len(body) % 2:
        raise ParseError(f"{what}: odd length {len(body)}")
    return struct.unpack(f"!{len(body) // 2}H", body)


# --------------------------------------------------------------------------------------------------
# Per-type parsers: (flags, value) -> chunk


def _p_data(flags: int, v: bytes) -> DataChunk:
    if len(v) <= 12:
        raise ParseError(f"DATA: {len(v) + 4} bytes, no user data (RFC 9260 §3.3.1)")
    tsn, sid, ssn, ppid = _DATA.unpack_from(v)
    return DataChunk(
        tsn, sid, ssn, ppid, v[12:], bool(flags & 4), bool(flags & 2), bool(flags & 1), bool(flags & 8)
    )


def _p_init_common(
    v: bytes, what: str
) -> tuple[tuple[int, int, int, int, int], bool, tuple[int, ...], list[tuple[int, bytes]], bytes | None]:
    if len(v) < 16:
        raise ParseError(f"{what}: {len(v) + 4} bytes, shorter than 20")
    fixed = _INIT.unpack_from(v)
    fwd = False
    ext: tuple[int, ...] = ()
    cookie: bytes | None = None
    other: list[tuple[int, bytes]] = []
    for ptype, pval in _parse_tlvs(v[16:], f"{what} parameter"):
        if ptype == PARAM_FORWARD_TSN_SUPPORTED and not pval and not fwd:
            fwd = True
        elif ptype == PARAM_SUPPORTED_EXTENSIONS and not ext:
            ext = tuple(pval)
        elif ptype == PARAM_STATE_COOKIE and cookie is None and what == "INIT ACK":
            cookie = pval
        else:
            other.append((ptype, pval))
    return fixed, fwd, ext, other, cookie


def _p_init(flags: int, v: bytes) -> InitChunk:
    fixed, fwd, ext, other, _ = _p_init_common(v, "INIT")
    return InitChunk(*fixed, forward_tsn_supported=fwd, supported_extensions=ext, other_params=tuple(other))


def _p_init_ack(flags: int, v: bytes) -> InitAckChunk:
    fixed, fwd, ext, other, cookie = _p_init_common(v, "INIT ACK")
    if cookie is None:
        raise ParseError("INIT ACK without a State Cookie (RFC 9260 §3.3.3)")
    return InitAckChunk(
        *fixed,
        forward_tsn_supported=fwd,
        supported_extensions=ext,
        other_params=tuple(other),
        state_cookie=cookie,
    )


def _p_sack(flags: int, v: bytes) -> SackChunk:
    if len(v) < 12:
        raise ParseError(f"SACK: {len(v) + 4} bytes, shorter than 16")
    cum, rwnd, ngaps, ndups = _SACK.unpack_from(v)
    if len(v) != 12 + 4 * ngaps + 4 * ndups:
        raise ParseError(f"SACK: length {len(v) + 4} does not match {ngaps} gap blocks and {ndups} TSNs")
    nums = struct.unpack_from(f"!{2 * ngaps}H{ndups}I", v, 12)
    gaps = tuple((nums[2 * i], nums[2 * i + 1]) for i in range(ngaps))
    return SackChunk(cum, rwnd, gaps, tuple(nums[2 * ngaps :]))


def _p_heartbeat_info(v: bytes, what: str) -> bytes:
    params = _parse_tlvs(v, what)
    if len(params) != 1 or params[0][0] != PARAM_HEARTBEAT_INFO:
        raise ParseError(f"{what}: expected one Heartbeat Info parameter (RFC 9260 §3.3.5)")
    return params[0][1]


def _p_causes(v: bytes) -> tuple[ErrorCause, ...]:
    return tuple(ErrorCause(c, i) for c, i in _parse_tlvs(v, "error cause"))


def _p_shutdown(flags: int, v: bytes) -> ShutdownChunk:
    if len(v) != 4:
        raise ParseError(f"SHUTDOWN: length {len(v) + 4}, expected 8")
    return ShutdownChunk(struct.unpack("!I", v)[0])


def _empty(make: Callable[[int], Chunk], what: str) -> Callable[[int, bytes], Chunk]:
    def parse(flags: int, v: bytes) -> Chunk:
        if v:
            raise ParseError(f"{what}: {len(v)} unexpected value bytes")
        return make(flags)

    return parse


def _p_forward_tsn(flags: int, v: bytes) -> ForwardTsnChunk:
    if len(v) < 4 or len(v) % 4:
        raise ParseError(f"FORWARD TSN: length {len(v) + 4} invalid (RFC 3758 §3.2)")
    nums = struct.unpack(f"!I{(len(v) - 4) // 2}H", v)
    return ForwardTsnChunk(nums[0], tuple((nums[i], nums[i + 1]) for i in range(1, len(nums), 2)))


def _p_reconfig_param(ptype: int, v: bytes) -> ReconfigParam:
    if ptype == PARAM_OUTGOING_RESET:
        if len(v) < 12:
            raise ParseError("Outgoing SSN Reset Request: shorter than 16 bytes")
        req, resp, last = struct.unpack_from("!III", v)
        return OutgoingResetRequest(req, resp, last, _u16s(v[12:], "Outgoing SSN Reset Request"))
    if ptype == PARAM_INCOMING_RESET:
        if len(v) < 4:
            raise ParseError("Incoming SSN Reset Request: shorter than 8 bytes")
        return IncomingResetRequest(
            struct.unpack_from("!I", v)[0], _u16s(v[4:], "Incoming SSN Reset Request")
        )
    if ptype == PARAM_RECONFIG_RESPONSE:
        if len(v) == 8:
            return ReconfigResponse(*struct.unpack("!II", v))
        if len(v) == 16:
            seq, result, snd, rcv = struct.unpack("!IIII", v)
            return ReconfigResponse(seq, result, snd, rcv)
        raise ParseError(f"Re-configuration Response: length {len(v) + 4}, expected 12 or 20")
    if ptype in (15, 17, 18) and len(v) >= 4:  # SSN/TSN reset, add outgoing/incoming streams
        return OtherReconfigRequest(ptype, struct.unpack_from("!I", v)[0], v[4:])
    raise ParseError(f"RE-CONFIG: parameter type {ptype} with {len(v)} bytes not allowed (RFC 6525 §4)")


def _p_reconfig(flags: int, v: bytes) -> ReconfigChunk:
    params = tuple(_p_reconfig_param(t, pv) for t, pv in _parse_tlvs(v, "RE-CONFIG parameter"))
    if not 1 <= len(params) <= 2:
        raise ParseError(f"RE-CONFIG: {len(params)} parameters, expected 1 or 2 (RFC 6525 §3.1)")
    return ReconfigChunk(params)


_PARSERS: Final[dict[int, Callable[[int, bytes], Chunk]]] = {
    DATA: _p_data,
    INIT: _p_init,
    INIT_ACK: _p_init_ack,
    SACK: _p_sack,
    HEARTBEAT: lambda f, v: HeartbeatChunk(_p_heartbeat_info(v, "HEARTBEAT")),
    HEARTBEAT_ACK: lambda f, v: HeartbeatAckChunk(_p_heartbeat_info(v, "HEARTBEAT ACK")),
    ABORT: lambda f, v: AbortChunk(_p_causes(v), bool(f & 1)),
    SHUTDOWN: _p_shutdown,
    SHUTDOWN_ACK: _empty(lambda f: ShutdownAckChunk(), "SHUTDOWN ACK"),
    ERROR: lambda f, v: ErrorChunk(_p_causes(v)),
    COOKIE_ECHO: lambda f, v: CookieEchoChunk(v),
    COOKIE_ACK: _empty(lambda f: CookieAckChunk(), "COOKIE ACK"),
    SHUTDOWN_COMPLETE: _empty(lambda f: ShutdownCompleteChunk(bool(f & 1)), "SHUTDOWN COMPLETE"),
    FORWARD_TSN: _p_forward_tsn,
    RE_CONFIG: _p_reconfig,
}


def _parse_chunks(data: bytes, pos: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    while pos < len(data):
        if len(data) - pos < 4:
            raise ParseError(f"chunk header: {len(data) - pos} trailing bytes")
        ctype, flags, length = _CHUNK_HEADER.unpack_from(data, pos)
        if length < 4 or pos + length > len(data):
            raise ParseError(f"chunk type {ctype}: length {length} invalid at offset {pos}")
        value = data[pos + 4 : pos + length]
        parser = _PARSERS.get(ctype)
        chunks.append(parser(flags, value) if parser else UnknownChunk(ctype, flags, value))
        pos += length + _pad(length)
        if pos > len(data):  # RFC 9260 §3.2: padding is part of the packet; tolerate it missing at the end
            pos = len(data)
    return chunks


def parse_chunk(data: bytes) -> Chunk:
    """Parse exactly one chunk (with or without its trailing padding), e.g. SNAP's INIT."""
    chunks = _parse_chunks(bytes(data), 0)
    if len(chunks) != 1:
        raise ParseError(f"expected one chunk, found {len(chunks)}")
    return chunks[0]


def parse_init_chunk(data: bytes) -> InitChunk:
    """One INIT chunk as SNAP signals it (``a=sctp-init``), with RFC 9260 §3.3.2's value checks:
    a non-zero Initiate Tag and at least one stream each way."""
    chunk = parse_chunk(data)
    if not isinstance(chunk, InitChunk):
        raise ParseError(f"expected an INIT chunk, got {type(chunk).__name__}")
    if chunk.initiate_tag == 0 or chunk.outbound_streams == 0 or chunk.inbound_streams == 0:
        raise ParseError("INIT: zero Initiate Tag or stream count (RFC 9260 §3.3.2)")
    return chunk


def parse_packet(data: bytes) -> SctpPacket:
    """Parse one SCTP packet and verify its CRC32C checksum (RFC 9260 §6.8)."""
    data = bytes(data)
    if len(data) < HEADER_SIZE + 4:
        raise ParseError(f"SCTP packet: {len(data)} bytes, shorter than header and one chunk")
    (checksum,) = struct.unpack_from("<I", data, 8)
    if checksum != _packet_crc(data):
        raise ParseError("SCTP packet: CRC32C mismatch")
    sport, dport, vtag = _HEADER.unpack_from(data)
    return SctpPacket(sport, dport, vtag, tuple(_parse_chunks(data, HEADER_SIZE)))


def measure_of_staleness(cause: ErrorCause) -> int:
    """The Measure of Staleness (microseconds) of a Stale Cookie error cause, RFC 9260 §3.3.10.3."""
    if cause.code != CAUSE_STALE_COOKIE or len(cause.info) != 4:
        raise ParseError(f"error cause {cause.code} with {len(cause.info)} bytes is not a Stale Cookie cause")
    return int.from_bytes(cause.info, "big")


# --------------------------------------------------------------------------------------------------
# Serialization


def _causes(causes: tuple[ErrorCause, ...]) -> bytes:
    return _tlvs([(c.code, c.info) for c in causes])


def stale_cookie_cause(staleness_us: int) -> ErrorCause:
    """A Stale Cookie error cause (RFC 9260 §3.3.10.3): how long past its expiry, in microseconds,
    the State Cookie was received (0: not reported)."""
    if not 0 <= staleness_us <= _U32:
        raise ValueError(f"Measure of Staleness {staleness_us} outside 0..{_U32}")
    return ErrorCause(CAUSE_STALE_COOKIE, struct.pack("!I", staleness_us))


def _init_body(c: InitChunk | InitAckChunk, cookie: bytes | None) -> bytes:
    params: list[tuple[int, bytes]] = []
    if cookie is not None:
        params.append((PARAM_STATE_COOKIE, cookie))
    if c.forward_tsn_supported:
        params.append((PARAM_FORWARD_TSN_SUPPORTED, b""))
    if c.supported_extensions:
        params.append((PARAM_SUPPORTED_EXTENSIONS, bytes(c.supported_extensions)))
    params.extend(c.other_params)
    fixed = _INIT.pack(c.initiate_tag, c.a_rwnd, c.outbound_streams, c.inbound_streams, c.initial_tsn)
    return fixed + _tlvs(params)


def _reconfig_param(p: ReconfigParam) -> tuple[int, bytes]:
    if isinstance(p, OutgoingResetRequest):
        body = struct.pack(f"!III{len(p.streams)}H", p.request_seq, p.response_seq, p.last_tsn, *p.streams)
        return PARAM_OUTGOING_RESET, body
    if isinstance(p, IncomingResetRequest):
        return PARAM_INCOMING_RESET, struct.pack(f"!I{len(p.streams)}H", p.request_seq, *p.streams)
    if isinstance(p, ReconfigResponse):
        body = struct.pack("!II", p.response_seq, p.result)
        if p.sender_next_tsn is not None and p.receiver_next_tsn is not None:
            body += struct.pack("!II", p.sender_next_tsn, p.receiver_next_tsn)
        return PARAM_RECONFIG_RESPONSE, body
    return p.param_type, struct.pack("!I", p.request_seq) + p.rest


def _type_flags_value(c: Chunk) -> tuple[int, int, bytes]:
    if isinstance(c, DataChunk):
        flags = (c.immediate << 3) | (c.unordered << 2) | (c.beginning << 1) | int(c.end)
        return DATA, flags, _DATA.pack(c.tsn, c.stream_id, c.ssn, c.ppid) + c.data
    if isinstance(c, InitAckChunk):  # before InitChunk: both derive from _InitBase
        return INIT_ACK, 0, _init_body(c, c.state_cookie)
    if isinstance(c, InitChunk):
        return INIT, 0, _init_body(c, None)
    if isinstance(c, SackChunk):
        gaps = [n for g in c.gap_blocks for n in g]
        body = _SACK.pack(c.cumulative_tsn, c.a_rwnd, len(c.gap_blocks), len(c.duplicate_tsns))
        return SACK, 0, body + struct.pack(f"!{len(gaps)}H{len(c.duplicate_tsns)}I", *gaps, *c.duplicate_tsns)
    if isinstance(c, HeartbeatChunk):
        return HEARTBEAT, 0, _tlv(PARAM_HEARTBEAT_INFO, c.info, pad=False)
    if isinstance(c, HeartbeatAckChunk):
        return HEARTBEAT_ACK, 0, _tlv(PARAM_HEARTBEAT_INFO, c.info, pad=False)
    if isinstance(c, AbortChunk):
        return ABORT, int(c.reflected), _causes(c.causes)
    if isinstance(c, ErrorChunk):
        return ERROR, 0, _causes(c.causes)
    if isinstance(c, ShutdownChunk):
        return SHUTDOWN, 0, struct.pack("!I", c.cumulative_tsn)
    if isinstance(c, ShutdownAckChunk):
        return SHUTDOWN_ACK, 0, b""
    if isinstance(c, ShutdownCompleteChunk):
        return SHUTDOWN_COMPLETE, int(c.reflected), b""
    if isinstance(c, CookieEchoChunk):
        return COOKIE_ECHO, 0, c.cookie
    if isinstance(c, CookieAckChunk):
        return COOKIE_ACK, 0, b""
    if isinstance(c, ForwardTsnChunk):
        pairs = [n for s in c.streams for n in s]
        return FORWARD_TSN, 0, struct.pack(f"!I{len(pairs)}H", c.new_cumulative_tsn, *pairs)
    if isinstance(c, ReconfigChunk):
        return RE_CONFIG, 0, _tlvs([_reconfig_param(p) for p in c.params])
    return c.type, c.flags, c.value


def serialize_chunk(chunk: Chunk) -> bytes:
    """One chunk without trailing padding (its length field counts exactly these bytes)."""
    ctype, flags, value = _type_flags_value(chunk)
    if len(value) + 4 > 0xFFFF:
        raise ValueError(f"chunk type {ctype}: {len(value) + 4} bytes exceed the 16-bit length")
    return _CHUNK_HEADER.pack(ctype, flags, len(value) + 4) + value


def chunk_size(chunk: Chunk) -> int:
    """Bytes the chunk takes in a packet, padding included."""
    n = len(serialize_chunk(chunk))
    return n + _pad(n)


def serialize_packet(packet: SctpPacket) -> bytes:
    """The packet's bytes with every chunk padded and the CRC32C filled in (RFC 9260 §6.8)."""
    parts = [_HEADER.pack(packet.source_port, packet.destination_port, packet.verification_tag), b"\0\0\0\0"]
    for chunk in packet.chunks:
        raw = serialize_chunk(chunk)
        parts.append(raw + b"\0" * _pad(len(raw)))
    out = bytearray(b"".join(parts))
    struct.pack_into("<I", out, 8, _packet_crc(out))
    return bytes(out)


__all__ = [
    "ABORT",
    "AbortChunk",
    "CAUSE_INVALID_MANDATORY_PARAMETER",
    "CAUSE_NO_USER_DATA",
    "CAUSE_PROTOCOL_VIOLATION",
    "CAUSE_STALE_COOKIE",
    "CAUSE_UNRECOGNIZED_CHUNK",
    "CAUSE_USER_INITIATED_ABORT",
    "COOKIE_ACK",
    "COOKIE_ECHO",
    "Chunk",
    "CookieAckChunk",
    "CookieEchoChunk",
    "DATA",
    "DATA_HEADER_SIZE",
    "DataChunk",
    "ERROR",
    "ErrorCause",
    "ErrorChunk",
    "FORWARD_TSN",
    "ForwardTsnChunk",
    "HEADER_SIZE",
    "HEARTBEAT",
    "HEARTBEAT_ACK",
    "HeartbeatAckChunk",
    "HeartbeatChunk",
    "INIT",
    "INIT_ACK",
    "IncomingResetRequest",
    "InitAckChunk",
    "InitChunk",
    "OtherReconfigRequest",
    "OutgoingResetRequest",
    "PARAM_FORWARD_TSN_SUPPORTED",
    "PARAM_HEARTBEAT_INFO",
    "PARAM_INCOMING_RESET",
    "PARAM_OUTGOING_RESET",
    "PARAM_RECONFIG_RESPONSE",
    "PARAM_STATE_COOKIE",
    "PARAM_SUPPORTED_EXTENSIONS",
    "RE_CONFIG",
    "ReconfigChunk",
    "ReconfigParam",
    "ReconfigResponse",
    "SACK",
    "SHUTDOWN",
    "SHUTDOWN_ACK",
    "SHUTDOWN_COMPLETE",
    "SackChunk",
    "SctpPacket",
    "ShutdownAckChunk",
    "ShutdownChunk",
    "ShutdownCompleteChunk",
    "UnknownChunk",
    "chunk_size",
    "crc32c",
    "measure_of_staleness",
    "parse_chunk",
    "parse_init_chunk",
    "parse_packet",
    "serialize_chunk",
    "serialize_packet",
    "stale_cookie_cause",
]
