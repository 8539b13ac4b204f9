"""One WebRTC media session: ICE-lite + DTLS + SRTP + RTCP behind one sans-IO driver shape.

Theory of operation
-------------------
A :class:`Session` is created by signaling from a parsed offer, before any datagram arrives. It owns:

* an :class:`~voxwire.proto.ice.IceLiteAgent` that answers the client's connectivity checks; the
  first valid check selects the client's address (RFC 8445 §2.5 lite agents never check), a later
  check with USE-CANDIDATE can move it;
* a :class:`~voxwire.proto.dtls.DtlsTransport` in the role fixed by the answer's ``a=setup``. As the
  DTLS client we send the ClientHello the moment the first valid check arrives, which saves the
  round trip a DTLS server spends waiting for the browser's ClientHello;
* after the handshake, an :class:`~voxwire.proto.srtp.SrtpSession` keyed by DTLS-SRTP (RFC 5764),
  and RTCP statistics for the one inbound and one outbound audio stream (RFC 3550 §6).

Datagrams are routed by their first byte (RFC 7983). Only STUN may come from an address the ICE agent
has not validated; DTLS, SRTP and SRTCP from anywhere else are dropped and counted. Remote garbage is
never raised out of :meth:`handle_datagram`: it lands in :attr:`counters`.

Upward the session emits small frozen events: :class:`Connected`, :class:`AudioPacket` and
:class:`Closed`. The application sends audio with :meth:`send_audio`.

Timers: a connect deadline until SRTP keys exist (``SessionConfig.connect_timeout``), the ICE consent
deadline (RFC 7675), DTLS retransmission and the RTCP report schedule. :meth:`poll_timeout` returns the
earliest; none of them fires on the happy path before ``Connected``.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import dataclass, field, replace

from voxwire.proto.certificate import Certificate
from voxwire.proto.clock import NtpTime
from voxwire.proto.dtls import (
    AlertAfterRelease,
    ApplicationData,
    DtlsClosed,
    DtlsConfig,
    DtlsRole,
    DtlsTransport,
    HandshakeComplete,
)
from voxwire.proto.ice import ConsentExpired, IceConfig, IceLiteAgent, PairSelected
from voxwire.proto.rtcp import ReceiverStats, RtcpConfig, RtcpScheduler, SenderStats
from voxwire.proto.srtp import SrtpError, SrtpSession
from voxwire.wire import rtcp as rtcp_wire
from voxwire.wire import stun
from voxwire.wire.demux import PacketKind, classify
from voxwire.wire.errors import ParseError
from voxwire.wire.rtp import RtpPacket, build_rtp, parse_rtp
from voxwire.wire.types import Address, Ssrc

OPUS_CLOCK_RATE = 48_000


@dataclass(frozen=True)
class SessionConfig:
    """Per-session limits and choices; defaults suit a voice session on the public internet."""

    #: Seconds from creation until SRTP keys must exist, else the session is freed.
    connect_timeout: float = 30.0
    #: ICE consent freshness (RFC 7675 §5.1).
    consent_timeout: float = 30.0
    #: Largest datagram we send (DTLS flights are split to fit).
    mtu: int = 1200
    #: Mean RTCP report interval in seconds (randomised 0.5..1.5x, RFC 3550 §6.3.1): 5 s, RFC 3550
    #: §6.2's minimum and libwebrtc's own for audio. Chrome reports on our stream every ~5 s, so RTT
    #: (our SR, its report block) and its loss feedback come no fresher with more SRs; at 1 s the
    #: reports cost ~5% of a pass-through call's CPU (bench/packet_path.py).
    rtcp_interval: float = 5.0
    #: A call without data channels frees its DTLS connection once keyed, and then cannot read a
    #: close_notify (Chromium's pc.close() sends one, and no RTCP BYE). An alert record that is
    #: followed by this many seconds without an authenticated SRTP or SRTCP packet ends the call;
    #: a forged alert changes nothing while the client's media (50 packets/s) or RTCP flows.
    alert_grace: float = 2.0

    def __post_init__(self) -> None:
        if not 1.0 <= self.connect_timeout <= 300.0:
            raise ValueError(f"connect_timeout {self.connect_timeout} outside 1..300 s")
        if not 5.0 <= self.consent_timeout <= 300.0:
            raise ValueError(f"consent_timeout {self.consent_timeout} outside 5..300 s")
        if not 576 <= self.mtu <= 1472:
            raise ValueError(f"mtu {self.mtu} outside 576..1472")
        if not 0.1 <= self.rtcp_interval <= 10.0:
            raise ValueError(f"rtcp_interval {self.rtcp_interval} outside 0.1..10 s")
        if not 0.5 <= self.alert_grace <= self.consent_timeout:
            raise ValueError(f"alert_grace {self.alert_grace} outside 0.5 s..consent_timeout")


@dataclass(frozen=True, slots=True)
class SessionParams:
    """What signaling negotiated for one session."""

    local_ufrag: str
    local_pwd: str
    remote_ufrag: str
    remote_fingerprints: tuple[tuple[str, str], ...]
    dtls_role: DtlsRole
    #: Opus payload type from the offer (the answer keeps the offerer's number, RFC 3264 §6.1).
    opus_pt: int
    local_ssrc: int
    cname: str


class State(enum.Enum):
    NEW = "new"  # waiting for the first valid ICE check
    CONNECTING = "connecting"  # pair selected, DTLS handshaking
    CONNECTED = "connected"  # SRTP keys in place
    CLOSED = "closed"


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    """SRTP keys are in place; media may flow."""

    remote: Address
    srtp_profile: str


# Not frozen: made once per packet, and a frozen dataclass costs 1.4 us to create against 0.4 us
# (object.__setattr__ per field). Treat it as immutable.
@dataclass(slots=True)
class AudioPacket:
    """One decrypted inbound Opus RTP packet."""

    packet: RtpPacket
    now: float


@dataclass(frozen=True, slots=True)
class DataReceived:
    """DTLS application data (SCTP, handled by the data-channel layer)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Closed:
    reason: str


SessionEvent = Connected | AudioPacket | DataReceived | Closed


@dataclass(slots=True)
class _Outbound:
    """State of our one outbound audio stream."""

    seq: int
    stats: SenderStats
    last_rtp_ts: int = 0
    last_sent_at: float | None = None


@dataclass(slots=True, eq=False)  # a session is itself: identity, not field-by-field equality
class Session:
    """A sans-IO WebRTC session. Drive it with ``handle_datagram``/``handle_timeout``; drain
    ``poll_transmit``/``poll_event``; sleep until ``poll_timeout``."""

    params: SessionParams
    certificate: Certificate
    now: float
    config: SessionConfig = field(default_factory=SessionConfig)
    rng: random.Random = field(default_factory=random.Random)
    #: Unix wallclock minus monotonic ``now``, measured once by the I/O shell; only RTCP SR uses it.
    wallclock_offset: float = 0.0
    # Set in __post_init__, declared for slots=True (one Session per call: ~50 bytes less).
    state: State = field(init=False, repr=False)
    counters: dict[str, int] = field(init=False, repr=False)
    ice: IceLiteAgent = field(init=False, repr=False)
    dtls: DtlsTransport = field(init=False, repr=False)
    #: The replaced agent, during an ICE restart.
    _previous_ice: IceLiteAgent | None = field(init=False, repr=False)
    srtp: SrtpSession | None = field(init=False, repr=False)
    remote: Address | None = field(init=False, repr=False)
    connect_deadline: float | None = field(init=False, repr=False)
    #: Set by an alert after the DTLS release; cleared by the next authenticated packet.
    alert_deadline: float | None = field(init=False, repr=False)
    inbound: ReceiverStats | None = field(init=False, repr=False)
    outbound: _Outbound = field(init=False, repr=False)
    rtcp: RtcpScheduler | None = field(init=False, repr=False)
    _transmits: deque[tuple[bytes, Address]] = field(init=False, repr=False)
    _events: list[SessionEvent] = field(init=False, repr=False)
    closed_reason: str | None = field(init=False, repr=False)
    #: :meth:`poll_timeout`'s answer, kept while :attr:`_timeout_known`. Only SRTP media leaves
    #: every timer as it was, and media is nearly every datagram: the endpoint asks after each.
    _timeout: float | None = field(init=False, repr=False)
    _timeout_known: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        p = self.params
        self.state = State.NEW
        self.counters = {}
        self.ice = IceLiteAgent(
            p.local_ufrag, p.local_pwd, p.remote_ufrag, IceConfig(consent_timeout=self.config.consent_timeout)
        )
        self.dtls = DtlsTransport(
            self.certificate, p.dtls_role, p.remote_fingerprints, DtlsConfig(mtu=self.config.mtu)
        )
        self._previous_ice = None
        self.srtp = None
        self.remote = None
        self.connect_deadline = self.now + self.config.connect_timeout
        self.alert_deadline = None
        self.inbound = None
        self.outbound = _Outbound(
            seq=self.rng.randrange(0, 1 << 15),  # RFC 3550 §5.1: random initial sequence number
            stats=SenderStats(Ssrc(p.local_ssrc), OPUS_CLOCK_RATE),
        )
        self.rtcp = None
        self._transmits = deque()
        self._events = []
        self.closed_reason = None
        self._timeout = None
        self._timeout_known = False

    # -- driver shape ---------------------------------------------------------------------------

    def handle_datagram(self, data: bytes, addr: Address, now: float) -> None:
        if self.state is State.CLOSED:
            return
        kind = classify(data)
        if kind is not PacketKind.RTP:
            self._timeout_known = False
        if kind is PacketKind.STUN:
            self._handle_stun(data, addr, now)
        elif not self.accepts(addr):
            self._count("drop_unvalidated_source")
        elif kind is PacketKind.DTLS:
            self.dtls.handle_datagram(data, now)
            self._drain_dtls(now)
        elif kind is PacketKind.RTP:
            self._handle_srtp(data, now)
        elif kind is PacketKind.RTCP:
            self._handle_srtcp(data, now)
        else:
            self._count("drop_unknown_kind")

    def handle_timeout(self, now: float) -> None:
        if self.state is State.CLOSED:
            return
        self._timeout_known = False
        if self.connect_deadline is not None and now >= self.connect_deadline:
            self._close(now, "connect timeout")
            return
        if self.alert_deadline is not None and now >= self.alert_deadline:
            self._close(now, "DTLS alert, then no authenticated packet")
            return
        self.ice.handle_timeout(now)
        self._drain_ice(now)
        if self.is_closed:  # consent expired
            return
        timeout = self.dtls.poll_timeout()
        if timeout is not None and now >= timeout:
            self.dtls.handle_timeout(now)
            self._drain_dtls(now)
        if self.rtcp is not None and self.rtcp.handle_timeout(now):
            self._send_rtcp_report(now)

    def poll_timeout(self) -> float | None:
        if not self._timeout_known:
            self._timeout = self._earliest_deadline()
            self._timeout_known = True
        return self._timeout

    def _earliest_deadline(self) -> float | None:
        if self.state is State.CLOSED:
            return None
        # Compare in place, allocate nothing.
        best = self.connect_deadline
        d = self.alert_deadline
        if d is not None and (best is None or d < best):
            best = d
        d = self.ice.poll_timeout()
        if d is not None and (best is None or d < best):
            best = d
        d = self.dtls.poll_timeout()
        if d is not None and (best is None or d < best):
            best = d
        if self.rtcp is not None:
            d = self.rtcp.poll_timeout()
            if best is None or d < best:
                best = d
        return best

    def poll_transmit(self) -> tuple[bytes, Address] | None:
        transmits = self._transmits
        return transmits.popleft() if transmits else None

    def share_transmits(self, outbox: deque[tuple[bytes, Address]]) -> None:
        """Queue this session's datagrams on ``outbox`` from now on, after what already waits
        there: the :class:`~voxwire.proto.endpoint.Endpoint` gives all its sessions one queue, so
        sending needs no walk over sessions. :meth:`poll_transmit` then drains the shared queue."""
        if outbox is not self._transmits:
            outbox.extend(self._transmits)
            self._transmits = outbox

    def unshare_transmits(self) -> None:
        """Back to a queue of its own (the endpoint took this session out): nothing it still
        queues reaches the endpoint's other sessions' queue."""
        self._transmits = deque()

    @property
    def deadline_known(self) -> bool:
        """Whether :meth:`poll_timeout`'s answer is remembered: nothing moved since it was asked."""
        return self._timeout_known

    def poll_event(self) -> SessionEvent | None:
        return self._events.pop(0) if self._events else None

    # -- application API ------------------------------------------------------------------------

    @property
    def local_ufrag(self) -> str:
        return self.params.local_ufrag

    @property
    def is_closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def ice_restarting(self) -> bool:
        """An ICE restart is waiting for its first valid check."""
        return self._previous_ice is not None

    def accepts(self, addr: Address) -> bool:
        """True when non-STUN datagrams from ``addr`` belong to this session."""
        previous = self._previous_ice
        return self.ice.is_valid_remote(addr) or (previous is not None and previous.is_valid_remote(addr))

    def send_audio(self, payload: bytes, rtp_timestamp: int, marker: bool, now: float) -> bool:
        """Encrypt and queue one Opus frame. Returns False (and counts) when not connected."""
        if self.srtp is None or self.remote is None:
            self._count("send_before_connected")
            return False
        out = self.outbound
        packet = build_rtp(self.params.opus_pt, out.seq, rtp_timestamp, self.params.local_ssrc, payload, marker)
        out.seq = (out.seq + 1) & 0xFFFF
        out.last_rtp_ts = rtp_timestamp
        out.last_sent_at = now
        out.stats.on_rtp_sent(len(payload))
        self._transmits.append((self.srtp.protect_rtp(packet), self.remote))
        return True

    def send_data(self, data: bytes) -> None:
        """Send DTLS application data (the SCTP layer's packets)."""
        self._timeout_known = False
        self.dtls.send(data)
        self._drain_dtls_transmits()

    def restart_ice(self, local_ufrag: str, local_pwd: str, remote_ufrag: str, now: float) -> None:
        """ICE restart (RFC 8445 §9): new credentials on both sides; DTLS and SRTP carry on.

        Until the first valid check under the new credentials, media keeps flowing on the old pair
        (the client keeps using it, RFC 8445 §9); that check must come within ``connect_timeout``.
        """
        self._timeout_known = False
        self._previous_ice = self.ice
        self.ice = IceLiteAgent(
            local_ufrag, local_pwd, remote_ufrag, IceConfig(consent_timeout=self.config.consent_timeout)
        )
        self.params = replace(self.params, local_ufrag=local_ufrag, local_pwd=local_pwd, remote_ufrag=remote_ufrag)
        self.connect_deadline = now + self.config.connect_timeout

    def close(self, now: float, reason: str = "closed by application") -> None:
        if self.state is not State.CLOSED:
            self._close(now, reason)

    # -- internals ------------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _handle_stun(self, data: bytes, addr: Address, now: float) -> None:
        try:
            msg = stun.parse(data)
        except ParseError:
            self._count("drop_bad_stun")
            return
        self.ice.handle_stun(data, msg, addr, now)
        self._drain_ice(now)

    def _drain_ice(self, now: float) -> None:
        while (out := self.ice.poll_transmit()) is not None:
            self._transmits.append(out)
        while (event := self.ice.poll_event()) is not None:
            if isinstance(event, PairSelected):
                self._on_pair_selected(event.addr, now)
            elif isinstance(event, ConsentExpired):
                self._close(now, "ICE consent expired")
                return

    def _on_pair_selected(self, addr: Address, now: float) -> None:
        first = self.remote is None
        self.remote = addr
        if self._previous_ice is not None:  # an ICE restart completed
            self._previous_ice = None
            if self.state is State.CONNECTED:
                self.connect_deadline = None
        if first:
            # As DTLS client our ClientHello leaves now; as server we start the handshake deadline.
            self.state = State.CONNECTING
            self.dtls.start(now)
            self._drain_dtls(now)

    def _drain_dtls_transmits(self) -> None:
        if self.remote is None:
            return
        while (datagram := self.dtls.poll_transmit()) is not None:
            self._transmits.append((datagram, self.remote))

    def _drain_dtls(self, now: float) -> None:
        self._drain_dtls_transmits()
        while (event := self.dtls.poll_event()) is not None:
            if isinstance(event, HandshakeComplete):
                self._on_handshake(event, now)
            elif isinstance(event, ApplicationData):
                self._events.append(DataReceived(event.data))
            elif isinstance(event, DtlsClosed):
                self._close(now, f"DTLS: {event.reason}")
                return
            elif isinstance(event, AlertAfterRelease) and self.alert_deadline is None:
                self._count("dtls_alert_after_release")
                self.alert_deadline = now + self.config.alert_grace

    def _on_handshake(self, event: HandshakeComplete, now: float) -> None:
        self.srtp = SrtpSession(event.srtp_profile, event.local_key, event.remote_key)
        self.state = State.CONNECTED
        self.connect_deadline = None
        self.rtcp = RtcpScheduler(RtcpConfig(interval=self.config.rtcp_interval), self.rng, now)
        assert self.remote is not None, "DTLS completed without a selected ICE pair"
        self._events.append(Connected(self.remote, event.srtp_profile.name))

    def _handle_srtp(self, data: bytes, now: float) -> None:
        if self.srtp is None:
            self._count("drop_rtp_before_keys")
            return
        try:
            packet = parse_rtp(self.srtp.unprotect_rtp(data))
        except SrtpError:
            self._count("drop_srtp_auth")
            return
        except ParseError:
            self._count("drop_bad_rtp")
            return
        if packet.payload_type != self.params.opus_pt:
            self._count("drop_unknown_payload_type")
            return
        stats = self.inbound
        if stats is None or stats.ssrc != packet.ssrc:
            stats = self.inbound = ReceiverStats(Ssrc(packet.ssrc), OPUS_CLOCK_RATE)
        stats.on_rtp(packet.sequence_number, packet.timestamp, now)
        self._events.append(AudioPacket(packet, now))
        if self.alert_deadline is not None:
            self.alert_deadline = None  # the client is still here: the alert was not its own
            self._timeout_known = False

    def _handle_srtcp(self, data: bytes, now: float) -> None:
        if self.srtp is None:
            self._count("drop_rtcp_before_keys")
            return
        try:
            packets = rtcp_wire.parse_rtcp(self.srtp.unprotect_rtcp(data))
        except SrtpError:
            self._count("drop_srtcp_auth")
            return
        except ParseError:
            self._count("drop_bad_rtcp")
            return
        self.alert_deadline = None
        ntp = self._ntp(now)
        for packet in packets:
            if isinstance(packet, rtcp_wire.SenderReport):
                if self.inbound is not None and packet.ssrc == self.inbound.ssrc:
                    self.inbound.on_sender_report(packet, now)
                blocks = packet.reports
            elif isinstance(packet, rtcp_wire.ReceiverReport):
                blocks = packet.reports
            elif isinstance(packet, rtcp_wire.Bye):
                # Authenticated (SRTCP) and for the one stream the client sends: it is leaving.
                if self.inbound is None or self.inbound.ssrc in packet.sources:
                    self._close(now, "RTCP BYE", peer_left=True)
                    return
                continue
            else:
                continue
            for block in blocks:
                if block.ssrc == self.params.local_ssrc:
                    self.outbound.stats.on_report_block(block, now, ntp)

    def _ntp(self, now: float) -> NtpTime:
        return NtpTime.from_unix(now + self.wallclock_offset)

    def _send_rtcp_report(self, now: float, *, bye: bool = False) -> None:
        """A compound report (SR or RR, SDES CNAME), ending in a BYE when we are leaving."""
        assert self.srtp is not None and self.remote is not None, "RTCP report before keys"
        blocks = (self.inbound.report_block(now),) if self.inbound is not None else ()
        out = self.outbound
        ssrc = Ssrc(self.params.local_ssrc)
        report: rtcp_wire.SenderReport | rtcp_wire.ReceiverReport
        if out.last_sent_at is not None:
            # RFC 3550 §6.4.1: the SR's RTP timestamp corresponds to the NTP time of the report.
            rtp_now = out.last_rtp_ts + round((now - out.last_sent_at) * OPUS_CLOCK_RATE)
            report = out.stats.sender_report(now, self._ntp(now), rtp_now, blocks)
        else:
            report = rtcp_wire.ReceiverReport(ssrc=ssrc, reports=blocks)
        sdes = rtcp_wire.SourceDescription.with_cname(ssrc, self.params.cname)
        packets: list[rtcp_wire.RtcpPacket] = [report, sdes]
        if bye:
            packets.append(rtcp_wire.Bye((ssrc,)))
        compound = rtcp_wire.serialize_rtcp(packets)
        assert self.rtcp is not None
        self.rtcp.on_compound(len(compound) + 28)  # with IPv4 + UDP headers (RFC 3550 §6.2)
        self._transmits.append((self.srtp.protect_rtcp(compound), self.remote))

    def release_dtls(self) -> bool:
        """Free the DTLS connection once connected, for a call that carries no data channel
        (:meth:`DtlsTransport.release`: about 40 KB per call); True if released."""
        self._timeout_known = False
        return self.state is State.CONNECTED and self.dtls.release()

    def _close(self, now: float, reason: str, *, peer_left: bool = False) -> None:
        if self.state is State.CONNECTED and not peer_left:  # tell the peer rather than let it wait for consent loss
            self._send_rtcp_report(now, bye=True)  # RFC 3550 §6.6 (the only word a released DTLS has)
            self.dtls.close(now)  # close_notify, unless released
            self._drain_dtls_transmits()
        self.state = State.CLOSED
        self._timeout_known = False
        self.closed_reason = reason
        self.rtcp = None
        self._events.append(Closed(reason))
