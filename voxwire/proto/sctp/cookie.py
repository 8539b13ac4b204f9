"""The State Cookie of the SCTP handshake (RFC 9260 §5.1.3, §5.1.5), signed with HMAC-SHA256.

Theory of operation
-------------------
The INIT ACK carries everything needed to build the association (both verification tags, both
initial TSNs, the peer's window and capabilities) inside a cookie, so the responder keeps no state
until the COOKIE ECHO proves the initiator can receive at its address (RFC 9260 §5.1.3). The cookie
is a fixed binary layout followed by a 16-byte truncated HMAC-SHA256 under a key the caller injects
(RFC 9260 §5.1.3 asks for a MAC with a secret key). :func:`open_cookie` checks the MAC in constant
time before looking at any field, then the lifetime: a cookie older than its lifetime is stale
(§5.1.5 step 3) and comes back as :class:`StaleCookie` with how long past its expiry it arrived, in
microseconds rounded up (the Measure of Staleness of the Stale Cookie error cause, §3.3.10.3); a
cookie from the future is forged or from another clock, and only counted.

The creation time is the association's ``now`` (monotonic seconds); cookies never leave the process
that made them, so one clock suffices.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
from dataclasses import dataclass
from typing import Final

__all__ = ["CookieContents", "StaleCookie", "open_cookie", "seal_cookie"]

_VERSION: Final = 1
# version, local tag, peer tag, local initial TSN, peer initial TSN, peer a_rwnd, peer OS, peer MIS,
# flags (bit 0: peer supports FORWARD TSN, bit 1: peer supports RE-CONFIG), created, lifetime
_LAYOUT: Final = struct.Struct("!BIIIIIHHBdd")
_MAC_LEN: Final = 16
_U32: Final = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class CookieContents:
    local_tag: int
    peer_tag: int
    local_initial_tsn: int
    peer_initial_tsn: int
    peer_a_rwnd: int
    peer_outbound_streams: int
    peer_inbound_streams: int
    peer_forward_tsn: bool
    peer_reconfig: bool
    created: float
    lifetime: float


@dataclass(frozen=True, slots=True)
class StaleCookie:
    """A genuine cookie received after its lifetime ran out (RFC 9260 §5.1.5 step 3)."""

    contents: CookieContents
    #: microseconds between its expiry and now, rounded up (RFC 9260 §3.3.10.3), at most 2**32 - 1
    staleness_us: int


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:_MAC_LEN]


def seal_cookie(contents: CookieContents, key: bytes) -> bytes:
    """The cookie bytes for an INIT ACK."""
    c = contents
    flags = int(c.peer_forward_tsn) | (int(c.peer_reconfig) << 1)
    body = _LAYOUT.pack(
        _VERSION,
        c.local_tag,
        c.peer_tag,
        c.local_initial_tsn,
        c.peer_initial_tsn,
        c.peer_a_rwnd,
        c.peer_outbound_streams,
        c.peer_inbound_streams,
        flags,
        c.created,
        c.lifetime,
    )
    return body + _mac(key, body)


def open_cookie(cookie: bytes, key: bytes, now: float) -> CookieContents | StaleCookie | str:
    """The cookie's contents; a :class:`StaleCookie` once its lifetime has passed; or the reason
    it is refused (``bad_cookie``, or ``stale_cookie`` for one created in the future)."""
    if len(cookie) != _LAYOUT.size + _MAC_LEN:
        return "bad_cookie"
    body, mac = cookie[: _LAYOUT.size], cookie[_LAYOUT.size :]
    if not hmac.compare_digest(mac, _mac(key, body)):
        return "bad_cookie"
    version, ltag, ptag, ltsn, ptsn, rwnd, os_, mis, flags, created, lifetime = _LAYOUT.unpack(body)
    if version != _VERSION:
        return "bad_cookie"
    if now < created - 1.0:
        return "stale_cookie"  # not minted by this clock: nothing to measure staleness against
    contents = CookieContents(
        ltag, ptag, ltsn, ptsn, rwnd, os_, mis, bool(flags & 1), bool(flags & 2), created, lifetime
    )
    expired = now - (created + lifetime)
    if expired > 0:  # RFC 9260 §5.1.5 step 3
        # Rounded to the nanosecond first, so float noise does not round a whole microsecond up.
        return StaleCookie(contents, min(_U32, max(1, math.ceil(round(expired * 1e6, 3)))))
    return contents
