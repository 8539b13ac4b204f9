"""Configuration, events, errors and serial-number arithmetic shared by the SCTP modules.

TSNs are 32-bit and SSNs 16-bit serial numbers (RFC 9260 §1.6, RFC 1982). Inside the association
they are *unwrapped* into unbounded Python ints, so every comparison is plain ``<``; only the wire
sees them modulo 2**32 / 2**16. :func:`unwrap` maps a wire value to the int nearest a reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Final

__all__ = [
    "BufferedAmountLow",
    "Closed",
    "Connected",
    "MessageReceived",
    "MessageTooLarge",
    "SctpConfig",
    "SctpError",
    "SctpEvent",
    "SctpStateError",
    "SendBufferFull",
    "State",
    "StreamClosing",
    "StreamsReset",
    "unwrap",
]

TSN_MOD: Final = 1 << 32
SSN_MOD: Final = 1 << 16
#: RFC 8831 §6.5: stream 65535 is reserved; data channels use 0..65534.
MAX_STREAM_ID: Final = 65534
#: Streams we announce and accept (OS and MIS of our INIT, RFC 9260 §3.3.2), as WebRTC stacks do.
STREAMS: Final = 65535


class State(Enum):
    """Association states, RFC 9260 §4."""

    CLOSED = "closed"
    COOKIE_WAIT = "cookie-wait"
    COOKIE_ECHOED = "cookie-echoed"
    ESTABLISHED = "established"
    SHUTDOWN_PENDING = "shutdown-pending"
    SHUTDOWN_SENT = "shutdown-sent"
    SHUTDOWN_RECEIVED = "shutdown-received"
    SHUTDOWN_ACK_SENT = "shutdown-ack-sent"


def unwrap(value: int, reference: int, modulus: int) -> int:
    """The int congruent to ``value`` modulo ``modulus`` that lies nearest ``reference``."""
    half = modulus >> 1
    return reference + ((value - reference + half) % modulus) - half


@dataclass(frozen=True, slots=True)
class SctpConfig:
    """Per-association settings, defaults for WebRTC data channels.

    ``mtu``: largest SCTP packet we emit, in bytes. The DTLS record around it adds up to 37 bytes
    (13 header, 8 explicit nonce, 16 GCM tag), so 1160 fits a 1200-byte DTLS datagram.

    ``receive_window``: the a_rwnd we advertise (RFC 9260 §6.2), which also bounds the bytes we hold
    for reordering and reassembly; it must exceed the largest message we accept.

    ``send_buffer``: bytes of messages accepted by ``send`` but not yet transmitted once; ``send``
    raises :class:`SendBufferFull` beyond it (the back-pressure bound).

    ``rto_initial`` / ``rto_min`` / ``rto_max``: RFC 6298 / RFC 9260 §6.3.1 retransmission timer, in
    seconds. RFC 9260 §16 suggests 1 / 1 / 60 s; WebRTC stacks run sub-second minima and cap the
    backoff at a few seconds so a data channel recovers quickly once the path is back (the ICE
    consent timer, not SCTP, decides that a peer is gone). ``max_retransmits``: consecutive timeouts
    (Association.Max.Retrans) before the association fails; None retries forever, as WebRTC does.
    ``max_init_retransmits`` likewise for INIT and COOKIE ECHO (Max.Init.Retransmits).

    ``sack_delay``: delayed acknowledgement (RFC 9260 §6.2, at most 500 ms, 200 ms recommended).
    ``heartbeat_interval``: HB.interval of RFC 9260 §8.3 (30 s). ``cookie_lifetime``:
    Valid.Cookie.Life (60 s, §16).
    """

    mtu: int = 1160
    receive_window: int = 1024 * 1024
    send_buffer: int = 4 * 1024 * 1024
    rto_initial: float = 1.0
    rto_min: float = 0.4
    rto_max: float = 3.0
    max_retransmits: int | None = None
    max_init_retransmits: int | None = None
    sack_delay: float = 0.2
    heartbeat_interval: float = 30.0
    cookie_lifetime: float = 60.0

    def __post_init__(self) -> None:
        if not 256 <= self.mtu <= 65535 or self.mtu % 4:
            raise ValueError(f"SctpConfig.mtu must be a multiple of 4 in 256..65535, got {self.mtu}")
        if self.receive_window < 4 * self.mtu:
            raise ValueError(f"SctpConfig.receive_window must be at least 4 * mtu, got {self.receive_window}")
        if self.send_buffer < 1:
            raise ValueError(f"SctpConfig.send_buffer must be positive, got {self.send_buffer}")
        times = (
            self.rto_initial,
            self.rto_min,
            self.rto_max,
            self.sack_delay,
            self.heartbeat_interval,
            self.cookie_lifetime,
        )
        if not all(math.isfinite(t) and t > 0 for t in times):
            raise ValueError("SctpConfig times must be positive finite seconds")
        if not self.rto_min <= self.rto_initial <= self.rto_max:
            raise ValueError("SctpConfig needs rto_min <= rto_initial <= rto_max")
        if self.sack_delay > 0.5:
            raise ValueError("SctpConfig.sack_delay must not exceed 0.5 s (RFC 9260 §6.2)")
        for name in ("max_retransmits", "max_init_retransmits"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"SctpConfig.{name} must be None or >= 0, got {value}")


# --------------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class Connected:
    """The association is established: data flows both ways."""


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """One complete user message."""

    stream_id: int
    ppid: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamsReset:
    """Streams were reset (RFC 6525). ``by_peer``: the peer reset its outgoing streams, so these
    incoming streams start again at SSN 0 (a data channel the peer closed); otherwise our own
    :meth:`reset_streams` request was performed and these outgoing streams may be reused."""

    stream_ids: tuple[int, ...]
    by_peer: bool = True


@dataclass(frozen=True, slots=True)
class BufferedAmountLow:
    """The unsent bytes of ``stream_id`` fell to (or below) its low-water mark."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class Closed:
    """The association is gone (ABORT either way, SHUTDOWN complete, or failure); final event."""

    reason: str
    by_peer: bool = False


SctpEvent = Connected | MessageReceived | StreamsReset | BufferedAmountLow | Closed


# --------------------------------------------------------------------------------------------------
# Errors for local misuse


class SctpError(Exception):
    """Base of the errors this package raises for local misuse."""


class SctpStateError(SctpError):
    """The operation is not allowed in the association's state (names role and state)."""


class SendBufferFull(SctpError):
    """Back-pressure: the message does not fit in the send buffer; retry after BufferedAmountLow."""


class MessageTooLarge(SctpError):
    """The message exceeds the peer's max-message-size (RFC 8841 §6)."""


class StreamClosing(SctpError):
    """The stream is being reset; nothing more may be sent on it until the reset completes."""
