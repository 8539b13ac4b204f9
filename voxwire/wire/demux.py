"""First-byte demultiplexing of one UDP port (RFC 7983, updated by RFC 9443).

Theory of operation
-------------------
WebRTC runs STUN, DTLS, SRTP and SRTCP over one 5-tuple. Their first bytes were chosen not to
collide, so the first byte alone names the protocol (RFC 7983 §7, RFC 9443 §3):

    [0..3]      STUN           [64..79]    TURN ChannelData (RFC 8656 §12)
    [16..19]    ZRTP           [80..127]   QUIC short header (RFC 9443)
    [20..63]    DTLS           [128..191]  RTP / RTCP
    [192..255]  QUIC long header (RFC 9443)

QUIC packets with the QUIC bit set start in [64..127] or [192..255]; the part of that range that
TURN channels use ([64..79]) is reported as TURN_CHANNEL, as RFC 9443 leaves it to context.

RTP and RTCP share [128..191] (version 2). RFC 5761 §4 separates them by the second byte: RTCP
packet types 192..223 there (SR=200, RR=201, ... ), which is why RTP payload types 64..95 are not
used when the two are multiplexed.

:func:`classify` is a table lookup (plus a second lookup for RTP/RTCP) and never raises. It does not
validate anything beyond the bytes it reads: that is the job of each protocol's parser.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

__all__ = ["PacketKind", "classify"]


class PacketKind(Enum):
    """Which protocol a datagram belongs to, by its first byte."""

    STUN = "stun"
    ZRTP = "zrtp"
    DTLS = "dtls"
    TURN_CHANNEL = "turn_channel"
    QUIC = "quic"
    RTP = "rtp"
    RTCP = "rtcp"
    UNKNOWN = "unknown"


def _kind_of_first_byte(b: int) -> PacketKind:
    if b <= 3:
        return PacketKind.STUN
    if 16 <= b <= 19:
        return PacketKind.ZRTP
    if 20 <= b <= 63:
        return PacketKind.DTLS
    if 64 <= b <= 79:
        return PacketKind.TURN_CHANNEL
    if 80 <= b <= 127 or b >= 192:
        return PacketKind.QUIC
    if 128 <= b <= 191:
        return PacketKind.RTP  # refined to RTCP by the second byte
    return PacketKind.UNKNOWN  # 4..15: unassigned


#: The 256-entry table indexed by the first byte.
_FIRST_BYTE: Final[tuple[PacketKind, ...]] = tuple(_kind_of_first_byte(b) for b in range(256))
#: RFC 5761 §4: a second byte of 192..223 (RTCP packet types, or RTP marker bit + PT 64..95) is RTCP.
_RTCP_SECOND_BYTE: Final[tuple[bool, ...]] = tuple(192 <= b <= 223 for b in range(256))


def classify(data: bytes | bytearray | memoryview) -> PacketKind:
    """Classify one datagram by its first byte (and, for RTP/RTCP, its second). Never raises."""
    if not data:
        return PacketKind.UNKNOWN
    kind = _FIRST_BYTE[data[0]]
    if kind is PacketKind.RTP:
        if len(data) < 2:
            return PacketKind.UNKNOWN
        if _RTCP_SECOND_BYTE[data[1]]:
            return PacketKind.RTCP
    return kind
