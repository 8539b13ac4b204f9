"""The SCTP handshake (RFC 9260 §5.1): what the association learns about its peer at setup, the
INIT / INIT ACK it sends, and the T1-init / T1-cookie timer.

Theory of operation
-------------------
Either side may start (``connect`` sends INIT, RFC 9260 §5.1), and in WebRTC both usually do. An
INIT received before we are established is answered with an INIT ACK carrying our tag and initial
TSN -- the same ones our own INIT carried, as §5.2.1 requires for the collision -- and a State
Cookie signed with HMAC-SHA256 (see ``cookie.py``), so a lone INIT creates no state. A valid
COOKIE ECHO establishes the association (§5.1.5, and Table 7 action D of §5.2.4 when both INITs
crossed); a COOKIE ACK does so for the initiator. Association restart (§5.2.4 action A) is not
supported: WebRTC ties the association to one DTLS session.

SNAP (draft-hancke-tsvwg-snap): both INIT chunks travel in the SDP (``a=sctp-init``). Our INIT is
fixed at construction, and the peer's INIT (:func:`snap_peer`) builds the association state
directly, skipping INIT / INIT ACK / COOKIE ECHO / COOKIE ACK: each side sends with the other's
Initiate Tag as verification tag, and the initial TSNs come from the two INITs. The association
starts it once DTLS is up and is ESTABLISHED at once (draft §6).

Three routes lead to the same peer parameters (:class:`PeerParams`): an INIT ACK (we initiated,
RFC 9260 §5.1 C), a State Cookie we minted from the peer's INIT (we responded, §5.1.5), or the
peer's INIT taken from the SDP (SNAP, draft-hancke-tsvwg-snap). Our own INIT is the same in all of
them: one Initiate Tag and one initial TSN per association, announced in our INIT, repeated in any
INIT ACK (as §5.2.1 requires when INITs cross) and signalled in ``a=sctp-init``.

Our INIT matches what Chromium's SNAP offer carries, so the answer looks like what it expects:
a_rwnd, 65535 streams each way, Forward-TSN-Supported (RFC 3758 §3.1) and Supported Extensions
(RFC 5061 §4.2.7) listing RE-CONFIG (0x82) and FORWARD TSN (0xC0); 30 bytes, no padding.

:class:`Handshake` is the association's part for its own side of the exchange: it holds our INIT
and the cookie key, answers an INIT with an INIT ACK, opens a COOKIE ECHO, and runs one timer --
T1-init while our INIT is unanswered, T1-cookie while our COOKIE ECHO is (§5.1 A, C). Each expiry
resends and doubles the timer, capped at ``rto_max``; passing Max.Init.Retransmits ends the
handshake (§5.1 A, C). The association resends the INIT itself (it travels alone, §6.10); the
COOKIE ECHO leads the next packet it builds.

Bad handshake input is counted, and some of it is answered: the handshake queues each answer in
:attr:`Handshake.replies` with the verification tag it goes out under, and the association sends
each in a packet of its own. An INIT with a zero Initiate Tag is silently discarded (§3.3.2); one
with zero outbound or inbound streams is answered with an ABORT carrying an Invalid Mandatory
Parameter cause (§3.3.2, §3.3.10.7), tagged with the INIT's Initiate Tag and the T bit clear as for
any ABORT answering an INIT (§8.4 item 3); no state is kept. An INIT ACK with a zero stream count
gets the same ABORT, tagged with its Initiate Tag, and ends the handshake (§3.3.3: the receiver
destroys the association): :attr:`Handshake.failure` says why. A genuine State Cookie past its
lifetime is answered with an ERROR carrying a Stale Cookie cause (§5.1.5 step 3, §3.3.10.3), under
the Initiate Tag of the peer's INIT that the cookie holds (§8.5).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from voxwire.proto.sctp.common import STREAMS, SctpConfig, State
from voxwire.proto.sctp.cookie import CookieContents, StaleCookie, open_cookie, seal_cookie
from voxwire.wire import sctp as w
from voxwire.wire.errors import ParseError

__all__ = ["PRE_ESTABLISHED", "Handshake", "PeerParams", "snap_peer", "valid_init"]

EXTENSIONS = (w.RE_CONFIG, w.FORWARD_TSN)
PRE_ESTABLISHED = frozenset({State.CLOSED, State.COOKIE_WAIT, State.COOKIE_ECHOED})
# RFC 9260 §3.3.10.7: the answer to an INIT or INIT ACK with a mandatory parameter set to an invalid
# value (here a zero stream count). T bit clear: it goes under the chunk's Initiate Tag (§8.4, §8.5).
_INVALID_PARAMETER = w.AbortChunk((w.ErrorCause(w.CAUSE_INVALID_MANDATORY_PARAMETER),))


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


def snap_peer(remote_init: bytes | w.InitChunk) -> PeerParams:
    """The peer's parameters from its INIT in the SDP (SNAP); raises ParseError if it is unusable."""
    init = remote_init if isinstance(remote_init, w.InitChunk) else w.parse_init_chunk(remote_init)
    if not valid_init(init):
        raise ParseError("INIT: zero Initiate Tag or stream count (RFC 9260 §3.3.2)")
    return PeerParams.from_init(init)


class Handshake:
    def __init__(self, config: SctpConfig, tag: int, initial_tsn: int, cookie_key: bytes) -> None:
        self.init = w.InitChunk(tag, config.receive_window, STREAMS, STREAMS, initial_tsn, True, EXTENSIONS)
        self._config = config
        self._key = cookie_key
        self._cookie: bytes | None = None
        self.cookie_echo_due = False
        self.deadline: float | None = None  # T1-init or T1-cookie
        self.rto = config.rto_initial
        self._expiries = 0
        #: (verification tag, chunk) answers to the peer's handshake chunks, each sent alone
        self.replies: deque[tuple[int, w.InitAckChunk | w.AbortChunk | w.ErrorChunk]] = deque()
        #: why the handshake ended without an association, once it has
        self.failure: str | None = None

    def start(self, now: float) -> None:
        """Our INIT went out (§5.1 A): start T1-init."""
        self.deadline = now + self.rto

    def on_init(self, init: w.InitChunk, state: State, now: float) -> str | None:
        """Queue our INIT ACK to the peer's ``init``, with a cookie holding both sides' parameters
        (§5.1.3); or the counter naming why the INIT is refused."""
        if init.initiate_tag == 0:
            return "bad_init"  # RFC 9260 §3.3.2: silently discard
        if not valid_init(init):  # zero OS or MIS: §3.3.2 SHOULD abort; no state is kept
            self.replies.append((init.initiate_tag, _INVALID_PARAMETER))
            return "bad_init"
        if state not in PRE_ESTABLISHED:
            return "init_while_established"  # restart (§5.2.2) is not supported
        ours = self.init
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
                self._config.cookie_lifetime,
            ),
            self._key,
        )
        ack = w.InitAckChunk(
            ours.initiate_tag,
            ours.a_rwnd,
            ours.outbound_streams,
            ours.inbound_streams,
            ours.initial_tsn,
            True,
            EXTENSIONS,
            state_cookie=cookie,
        )
        self.replies.append((init.initiate_tag, ack))
        return None

    def on_init_ack(self, ack: w.InitAckChunk, state: State, now: float) -> PeerParams | str:
        """The peer in its INIT ACK, whose State Cookie we now echo under T1-cookie, restarted at the
        initial RTO (§5.1 C); or the counter naming why the INIT ACK is refused."""
        if state is not State.COOKIE_WAIT or ack.initiate_tag == 0:
            return "unexpected_init_ack"  # §5.2.3; a zero tag (§3.3.3) is discarded too
        if not valid_init(ack):  # zero OS or MIS: §3.3.3 SHOULD destroy the association
            self.replies.append((ack.initiate_tag, _INVALID_PARAMETER))
            self.failure = "INIT ACK with a zero stream count (RFC 9260 §3.3.3)"
            self.stop()
            return "bad_init_ack"
        self._cookie = ack.state_cookie
        self.cookie_echo_due = True
        self._expiries = 0
        self.rto = self._config.rto_initial
        self.deadline = now + self.rto
        return PeerParams.from_init(ack)

    def on_cookie_echo(self, echo: w.CookieEchoChunk, peer_tag: int | None, now: float) -> PeerParams | str:
        """The peer in a cookie we minted for this association, or the counter naming why the
        COOKIE ECHO is refused. ``peer_tag`` is the peer we already know, if any."""
        opened = open_cookie(echo.cookie, self._key, now)
        if isinstance(opened, str):
            return opened
        contents = opened.contents if isinstance(opened, StaleCookie) else opened
        if contents.local_tag != self.init.initiate_tag:
            return "bad_cookie"
        if isinstance(opened, StaleCookie):  # §5.1.5 step 3: tell the peer, under its own tag (§8.5)
            error = w.ErrorChunk((w.stale_cookie_cause(opened.staleness_us),))
            self.replies.append((contents.peer_tag, error))
            return "stale_cookie"
        if peer_tag is not None and contents.peer_tag != peer_tag:
            return "cookie_tag_mismatch"  # restart / stale collision cases of §5.2.4
        return PeerParams.from_cookie(contents)

    def on_timer(self, now: float, state: State) -> bool:
        """T1 expired: back off and rearm (§5.1 A, C). False once Max.Init.Retransmits is passed."""
        self._expiries += 1
        limit = self._config.max_init_retransmits
        if limit is not None and self._expiries > limit:
            return False
        self.rto = min(self._config.rto_max, self.rto * 2)
        self.deadline = now + self.rto
        if state is State.COOKIE_ECHOED:
            self.cookie_echo_due = True
        return True

    def cookie_echo(self) -> w.CookieEchoChunk | None:
        """The COOKIE ECHO for the next packet, if one is due."""
        if self.cookie_echo_due and self._cookie is not None:
            return w.CookieEchoChunk(self._cookie)
        return None

    def stop(self) -> None:
        self.deadline = None
        self.cookie_echo_due = False
