"""SCTP chunks (RFC 9260 §3.3, RFC 3758 §3.2, RFC 6525 §3.1, §4) as frozen dataclasses, the common
header's :class:`SctpPacket`, and the numbers that name chunk types, parameters and error causes.
The byte layout of each is in :mod:`voxwire.wire.sctp`, which parses and serializes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Chunk types, RFC 9260 §3.2; RE-CONFIG RFC 6525 §3.1; FORWARD TSN RFC 3758 §3.2.
DATA: Final = 0
INIT: Final = 1
INIT_ACK: Final = 2
SACK: Final = 3
HEARTBEAT: Final = 4
HEARTBEAT_ACK: Final = 5
ABORT: Final = 6
SHUTDOWN: Final = 7
SHUTDOWN_ACK: Final = 8
ERROR: Final = 9
COOKIE_ECHO: Final = 10
COOKIE_ACK: Final = 11
SHUTDOWN_COMPLETE: Final = 14
RE_CONFIG: Final = 0x82
FORWARD_TSN: Final = 0xC0

# INIT parameters (RFC 9260 §3.3.2.1, §3.3.3.1; RFC 3758 §3.1; RFC 5061 §4.2.7).
PARAM_HEARTBEAT_INFO: Final = 1
PARAM_STATE_COOKIE: Final = 7
PARAM_FORWARD_TSN_SUPPORTED: Final = 0xC000
PARAM_SUPPORTED_EXTENSIONS: Final = 0x8008

# RE-CONFIG parameters (RFC 6525 §4).
PARAM_OUTGOING_RESET: Final = 13
PARAM_INCOMING_RESET: Final = 14
PARAM_RECONFIG_RESPONSE: Final = 16

# Error cause codes (RFC 9260 §3.3.10).
CAUSE_STALE_COOKIE: Final = 3
CAUSE_UNRECOGNIZED_CHUNK: Final = 6
CAUSE_INVALID_MANDATORY_PARAMETER: Final = 7
CAUSE_NO_USER_DATA: Final = 9
CAUSE_USER_INITIATED_ABORT: Final = 12
CAUSE_PROTOCOL_VIOLATION: Final = 13


@dataclass(frozen=True, slots=True)
class DataChunk:
    """User data, RFC 9260 §3.3.1. Flags: I (immediate SACK, RFC 7053), U (unordered), B, E."""

    tsn: int
    stream_id: int
    ssn: int
    ppid: int
    data: bytes
    unordered: bool = False
    beginning: bool = True
    end: bool = True
    immediate: bool = False


@dataclass(frozen=True, slots=True)
class _InitBase:
    initiate_tag: int
    a_rwnd: int
    outbound_streams: int
    inbound_streams: int
    initial_tsn: int
    forward_tsn_supported: bool = False
    #: chunk types of the Supported Extensions parameter (RFC 5061 §4.2.7)
    supported_extensions: tuple[int, ...] = ()
    #: parameters we do not interpret, as (type, value), kept in order
    other_params: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class InitChunk(_InitBase):
    """INIT, RFC 9260 §3.3.2."""


@dataclass(frozen=True, slots=True)
class InitAckChunk(_InitBase):
    """INIT ACK, RFC 9260 §3.3.3; ``state_cookie`` is mandatory on the wire."""

    state_cookie: bytes = b""


@dataclass(frozen=True, slots=True)
class SackChunk:
    """Selective acknowledgement, RFC 9260 §3.3.4. Gap blocks are (start, end) offsets from
    ``cumulative_tsn``, inclusive."""

    cumulative_tsn: int
    a_rwnd: int
    gap_blocks: tuple[tuple[int, int], ...] = ()
    duplicate_tsns: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class HeartbeatChunk:
    """HEARTBEAT, RFC 9260 §3.3.5: ``info`` is the opaque Heartbeat Info value."""

    info: bytes


@dataclass(frozen=True, slots=True)
class HeartbeatAckChunk:
    """HEARTBEAT ACK, RFC 9260 §3.3.6: echoes the HEARTBEAT's info."""

    info: bytes


@dataclass(frozen=True, slots=True)
class ErrorCause:
    """One error cause, RFC 9260 §3.3.10."""

    code: int
    info: bytes = b""


@dataclass(frozen=True, slots=True)
class AbortChunk:
    """ABORT, RFC 9260 §3.3.7. ``reflected`` is the T bit (tag of the receiver's peer)."""

    causes: tuple[ErrorCause, ...] = ()
    reflected: bool = False


@dataclass(frozen=True, slots=True)
class ErrorChunk:
    """Operation ERROR, RFC 9260 §3.3.10."""

    causes: tuple[ErrorCause, ...] = ()


@dataclass(frozen=True, slots=True)
class ShutdownChunk:
    """SHUTDOWN, RFC 9260 §3.3.8."""

    cumulative_tsn: int


@dataclass(frozen=True, slots=True)
class ShutdownAckChunk:
    """SHUTDOWN ACK, RFC 9260 §3.3.9."""


@dataclass(frozen=True, slots=True)
class ShutdownCompleteChunk:
    """SHUTDOWN COMPLETE, RFC 9260 §3.3.13. ``reflected`` is the T bit."""

    reflected: bool = False


@dataclass(frozen=True, slots=True)
class CookieEchoChunk:
    """COOKIE ECHO, RFC 9260 §3.3.11."""

    cookie: bytes


@dataclass(frozen=True, slots=True)
class CookieAckChunk:
    """COOKIE ACK, RFC 9260 §3.3.12."""


@dataclass(frozen=True, slots=True)
class ForwardTsnChunk:
    """FORWARD TSN, RFC 3758 §3.2: skip to ``new_cumulative_tsn``; (stream, ssn) of skipped
    ordered messages."""

    new_cumulative_tsn: int
    streams: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class OutgoingResetRequest:
    """Outgoing SSN Reset Request parameter, RFC 6525 §4.1. No streams means all streams."""

    request_seq: int
    response_seq: int
    last_tsn: int
    streams: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class IncomingResetRequest:
    """Incoming SSN Reset Request parameter, RFC 6525 §4.2."""

    request_seq: int
    streams: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ReconfigResponse:
    """Re-configuration Response parameter, RFC 6525 §4.4 (result codes in §4.4)."""

    response_seq: int
    result: int
    sender_next_tsn: int | None = None
    receiver_next_tsn: int | None = None


@dataclass(frozen=True, slots=True)
class OtherReconfigRequest:
    """A request we do not perform (SSN/TSN reset, add streams; RFC 6525 §4.3, §4.5, §4.6):
    kept so it can be answered with its sequence number."""

    param_type: int
    request_seq: int
    rest: bytes = b""


ReconfigParam = OutgoingResetRequest | IncomingResetRequest | ReconfigResponse | OtherReconfigRequest


@dataclass(frozen=True, slots=True)
class ReconfigChunk:
    """RE-CONFIG, RFC 6525 §3.1: one or two parameters."""

    params: tuple[ReconfigParam, ...]


@dataclass(frozen=True, slots=True)
class UnknownChunk:
    """A chunk type we do not implement; the association applies RFC 9260 §3.2's upper-bit rule."""

    type: int
    flags: int
    value: bytes


Chunk = (
    DataChunk
    | InitChunk
    | InitAckChunk
    | SackChunk
    | HeartbeatChunk
    | HeartbeatAckChunk
    | AbortChunk
    | ErrorChunk
    | ShutdownChunk
    | ShutdownAckChunk
    | ShutdownCompleteChunk
    | CookieEchoChunk
    | CookieAckChunk
    | ForwardTsnChunk
    | ReconfigChunk
    | UnknownChunk
)


@dataclass(frozen=True, slots=True)
class SctpPacket:
    """Common header (RFC 9260 §3.1) and chunks. The checksum is computed on serialization."""

    source_port: int
    destination_port: int
    verification_tag: int
    chunks: tuple[Chunk, ...]
