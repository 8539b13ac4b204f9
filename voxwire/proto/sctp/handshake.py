"""What the association learns about its peer at setup, and the INIT / INIT ACK it sends.

Theory of operation
-------------------
Three routes lead to the same peer parameters (:class:`PeerParams`): an INIT ACK (we initiated,
RFC 9260 §5.1 C), a State Cookie we minted from the peer's INIT (we responded, §5.1.5), or the
peer's INIT taken from the SDP (SNAP, draft-hancke-tsvwg-snap). Our own INIT is the same in all of
them: one Initiate Tag and one initial TSN per association, announced in our INIT, repeated in any
INIT ACK (as §5.2.1 requires when INITs cross) and signalled in ``a=sctp-init``.

Our INIT matches what Chromium's SNAP offer carries, so the answer looks like what it expects:
a_rwnd, 65535 streams each way, Forward-TSN-Supported (RFC 3758 §3.1) and Supported Extensions
(RFC 5061 §4.2.7) listing RE-CONFIG (0x82) and FORWARD TSN (0xC0); 30 bytes, no padding.
"""

from __future__ import annotations

from dataclasses import dataclass

from voxwire.proto.sctp.common import STREAMS
from voxwire.proto.sctp.cookie import CookieContents, seal_cookie
from voxwire.wire import sctp as w

__all__ = ["PeerParams", "init_ack_for", "local_init", "valid_init"]

EXTENSIONS = (w.RE_CONFIG, w.FORWARD_TSN)


@dataclass(frozen=True, slots=True)
class PeerParams:
    """The peer's half of the TCB (RFC 9260 §14)."""

    tag: int
    initial_tsn: int
    a_rwnd: int
    inbound_streams: int
    forward_tsn: bool
    reconfig: bool

    @classmethod
    def from_init(cls, init: w.InitChunk | w.InitAckChunk) -> PeerParams:
        reconfig = w.RE_CONFIG in init.supported_extensions
        return cls(
            init.initiate_tag,
            init.initial_tsn,
            init.a_rwnd,
            init.inbound_streams,
            init.forward_tsn_supported,
            reconfig,
        )

    @classmethod
    def from_cookie(cls, c: CookieContents) -> PeerParams:
        return cls(
            c.peer_tag,
            c.peer_initial_tsn,
            c.peer_a_rwnd,
            c.peer_inbound_streams,
            c.peer_forward_tsn,
            c.peer_reconfig,
        )


def valid_init(init: w.InitChunk | w.InitAckChunk) -> bool:
    """RFC 9260 §3.3.2: a zero Initiate Tag or stream count makes the chunk unusable."""
    return init.initiate_tag != 0 and init.outbound_streams != 0 and init.inbound_streams != 0


def local_init(tag: int, a_rwnd: int, initial_tsn: int) -> w.InitChunk:
    return w.InitChunk(tag, a_rwnd, STREAMS, STREAMS, initial_tsn, True, EXTENSIONS)


def init_ack_for(
    init: w.InitChunk, ours: w.InitChunk, key: bytes, now: float, lifetime: float
) -> w.InitAckChunk:
    """Our INIT ACK to the peer's ``init``, with a cookie holding both sides' parameters (§5.1.3)."""
    cookie = seal_cookie(
        CookieContents(
            ours.initiate_tag,
            init.initiate_tag,
            ours.initial_tsn,
            init.initial_tsn,
            init.a_rwnd,
            init.outbound_streams,
            init.inbound_streams,
            init.forward_tsn_supported,
            w.RE_CONFIG in init.supported_extensions,
            now,
            lifetime,
        ),
        key,
    )
    return w.InitAckChunk(
        ours.initiate_tag,
        ours.a_rwnd,
        ours.outbound_streams,
        ours.inbound_streams,
        ours.initial_tsn,
        True,
        EXTENSIONS,
        state_cookie=cookie,
    )
