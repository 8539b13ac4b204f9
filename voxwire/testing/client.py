"""A minimal sans-IO WebRTC client: the controlling side of what a browser does, for tests.

It writes an SDP offer, then against the answer it runs a controlling ICE agent that checks ONE
remote candidate (with USE-CANDIDATE, aggressive nomination), DTLS in the role the answer leaves it,
and SRTP. It sends and receives raw RTP payloads; audio coding is the caller's business. The virtual
time tests drive it next to the server on :class:`voxwire.testing.link.Network`, and the load
generator (capacity issue) will reuse it against a real socket.
"""

from __future__ import annotations

import base64
import random
import secrets
from collections import deque
from dataclasses import dataclass, field

from voxwire.proto import sctp
from voxwire.proto.certificate import Certificate
from voxwire.proto.datachannel import ChannelMessage, ChannelOpen, DataChannelManager
from voxwire.proto.dtls import ApplicationData, DtlsClosed, DtlsRole, DtlsTransport, HandshakeComplete
from voxwire.proto.srtp import SrtpError, SrtpSession
from voxwire.wire import stun
from voxwire.wire.demux import PacketKind, classify
from voxwire.wire.errors import ParseError
from voxwire.wire.icechars import ice_string
from voxwire.wire.rtcp import Bye, ReceiverReport, parse_rtcp, serialize_rtcp
from voxwire.wire.rtp import RtpPacket, build_rtp, parse_rtp
from voxwire.wire.sdp import parse_description
from voxwire.wire.types import Address, Ssrc

#: RFC 8445 §14.3: Ta pacing; we retransmit an unanswered check every 50 ms, then consent every 5 s.
CHECK_INTERVAL = 0.05
CONSENT_INTERVAL = 5.0


def _ice(rng: random.Random, n: int) -> str:
    return ice_string(n, rng.randbytes)


def make_offer(
    ufrag: str,
    pwd: str,
    fingerprint: tuple[str, str],
    *,
    data_channel: bool = False,
    opus_pt: int = 111,
    sctp_init: bytes | None = None,
) -> str:
    """A browser-shaped offer: one sendrecv Opus audio section, optionally a data channel."""
    mids = "0 1" if data_channel else "0"
    lines = [
        "v=0",
        f"o=- {secrets.randbits(62)} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        f"a=group:BUNDLE {mids}",
        "a=msid-semantic: WMS",
        f"m=audio 9 UDP/TLS/RTP/SAVPF {opus_pt} 0",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        f"a=ice-ufrag:{ufrag}",
        f"a=ice-pwd:{pwd}",
        "a=ice-options:trickle",
        f"a=fingerprint:{fingerprint[0]} {fingerprint[1]}",
        "a=setup:actpass",
        "a=mid:0",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        f"a=rtpmap:{opus_pt} opus/48000/2",
        f"a=fmtp:{opus_pt} minptime=10;useinbandfec=1",
        "a=rtpmap:0 PCMU/8000",
        "a=ssrc:1111 cname:testclient",
    ]
    if data_channel:
        lines += [
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "c=IN IP4 0.0.0.0",
            f"a=ice-ufrag:{ufrag}",
            f"a=ice-pwd:{pwd}",
            f"a=fingerprint:{fingerprint[0]} {fingerprint[1]}",
            "a=setup:actpass",
            "a=mid:1",
            "a=sctp-port:5000",
            "a=max-message-size:262144",
        ]
        if sctp_init is not None:
            lines.append("a=sctp-init:" + base64.b64encode(sctp_init).decode().rstrip("="))
    return "\r\n".join(lines) + "\r\n"


@dataclass
class TestClient:
    """Controlling ICE + DTLS + SRTP client for one session. Call :meth:`offer`, then :meth:`answer`."""

    __test__ = False  # not a pytest test class

    certificate: Certificate
    now: float
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    ssrc: int = 0x12345678
    opus_pt: int = 111

    def __post_init__(self) -> None:
        self.ufrag = _ice(self.rng, 8)
        self.pwd = _ice(self.rng, 24)
        self.remote: Address | None = None
        self.dtls: DtlsTransport | None = None
        self.srtp: SrtpSession | None = None
        self.connected_at: float | None = None
        self.closed_reason: str | None = None
        self.received: list[RtpPacket] = []
        self.channels: DataChannelManager | None = None
        self._association: sctp.SctpAssociation | None = None
        self._snap = False
        self.channel_messages: list[tuple[int, str | bytes]] = []
        self.open_channels: dict[str, int] = {}
        self.channel_open_at: dict[str, float] = {}
        self.check_responses = 0
        self._username = b""
        self._key = b""
        self._next_check: float | None = None
        self._transmits: deque[tuple[bytes, Address]] = deque()
        self._seq = self.rng.randrange(1 << 16)

    def offer(self, *, data_channel: bool = False, snap: bool = False) -> str:
        """The offer; with ``data_channel`` an application section, with ``snap`` our SCTP INIT in it."""
        init = None
        if data_channel:
            self._association = sctp.SctpAssociation(rng=self.rng)
            self._snap = snap
            init = self._association.local_init_chunk() if snap else None
        return make_offer(
            self.ufrag, self.pwd, self.certificate.fingerprint, data_channel=data_channel, opus_pt=self.opus_pt,
            sctp_init=init,
        )

    def answer(self, sdp: str, now: float) -> None:
        ans = parse_description(sdp)
        cand = next(c for c in ans.candidates if c.transport == "udp")
        self.remote = (cand.address, cand.port)
        self._username = f"{ans.ice_ufrag}:{self.ufrag}".encode()
        self._key = ans.ice_pwd.encode()
        role = DtlsRole.SERVER if ans.setup == "active" else DtlsRole.CLIENT
        if self._association is not None:
            app = ans.application
            if self._snap and app is not None and app.sctp_init is not None:
                self._association.start_snap(app.sctp_init, now)
            self.channels = DataChannelManager(self._association, dtls_client=role is DtlsRole.CLIENT)
        fingerprints = [(f.algorithm, f.value) for f in ans.fingerprints]
        self.dtls = DtlsTransport(self.certificate, role, fingerprints)
        if role is DtlsRole.SERVER:
            self.dtls.start(now)  # ready for the ClientHello that may overtake the check response
        self._next_check = now
        self.handle_timeout(now)

    # -- driver shape ---------------------------------------------------------------------------

    def handle_datagram(self, data: bytes, addr: Address, now: float) -> None:
        kind = classify(data)
        if kind is PacketKind.STUN:
            self._on_stun(data, now)
        elif kind is PacketKind.DTLS and self.dtls is not None:
            self.dtls.handle_datagram(data, now)
            self._drain_dtls(now)
        elif kind is PacketKind.RTP and self.srtp is not None:
            try:
                self.received.append(parse_rtp(self.srtp.unprotect_rtp(data)))
            except (SrtpError, ParseError):
                pass
        elif kind is PacketKind.RTCP and self.srtp is not None:
            # Only a BYE matters here (the session tests read the server's own stats).
            try:
                packets = parse_rtcp(self.srtp.unprotect_rtcp(data))
            except (SrtpError, ParseError):
                return
            if self.closed_reason is None and any(isinstance(p, Bye) for p in packets):
                self.closed_reason = "RTCP BYE"

    def handle_timeout(self, now: float) -> None:
        if self._next_check is not None and now >= self._next_check:
            self._send_check()
            interval = CONSENT_INTERVAL if self.check_responses else CHECK_INTERVAL
            self._next_check = now + interval
        if self.dtls is not None:
            t = self.dtls.poll_timeout()
            if t is not None and now >= t:
                self.dtls.handle_timeout(now)
                self._drain_dtls(now)
        if self.channels is not None and self.srtp is not None:
            t = self.channels.poll_timeout()
            if t is not None and now >= t:
                self.channels.handle_timeout(now)
                self._drain_channels(now)

    def poll_timeout(self) -> float | None:
        times = [self._next_check, self.dtls.poll_timeout() if self.dtls else None]
        if self.channels is not None and self.srtp is not None:
            times.append(self.channels.poll_timeout())
        return min((t for t in times if t is not None), default=None)

    def poll_transmit(self) -> tuple[bytes, Address] | None:
        return self._transmits.popleft() if self._transmits else None

    # -- media ----------------------------------------------------------------------------------

    def send_rtp(self, payload: bytes, timestamp: int, marker: bool = False) -> None:
        assert self.srtp is not None and self.remote is not None, "send_rtp before connected"
        packet = build_rtp(self.opus_pt, self._seq, timestamp, self.ssrc, payload, marker)
        self._seq = (self._seq + 1) & 0xFFFF
        self._transmits.append((self.srtp.protect_rtp(packet), self.remote))

    def close(self, now: float) -> None:
        """Leave as Chromium's pc.close() does: a DTLS close_notify, no RTCP BYE, then silence."""
        assert self.dtls is not None, "close before the answer"
        self.dtls.close(now)
        self._drain_dtls(now)
        self._next_check = None

    def send_bye(self, ssrc: int | None = None) -> None:
        """Leave as a browser does when its sender stops: an SRTCP compound RR + BYE."""
        assert self.srtp is not None and self.remote is not None, "send_bye before connected"
        source = Ssrc(self.ssrc if ssrc is None else ssrc)
        compound = serialize_rtcp([ReceiverReport(ssrc=Ssrc(self.ssrc), reports=()), Bye((source,))])
        self._transmits.append((self.srtp.protect_rtcp(compound), self.remote))

    @property
    def remote_credentials(self) -> tuple[str, str]:
        """The server's ICE ufrag and password in use."""
        return self._username.decode().split(":")[0], self._key.decode()

    def new_credentials(self) -> str:
        """Start an ICE restart on our side: fresh ufrag/pwd; returns the new ufrag."""
        self.ufrag = _ice(self.rng, 8)
        self.pwd = _ice(self.rng, 24)
        return self.ufrag

    def restart_ice(self, remote_ufrag: str, remote_pwd: str, now: float) -> None:
        """Finish the restart with the server's new credentials and check again at once."""
        self._username = f"{remote_ufrag}:{self.ufrag}".encode()
        self._key = remote_pwd.encode()
        self.check_responses = 0
        self._next_check = now

    def open_channel(self, label: str, now: float) -> int:
        assert self.channels is not None, "the offer had no data channel"
        channel = self.channels.open_channel(label, now=now)
        self._drain_channels(now)
        return channel.id

    def send_message(self, channel_id: int, data: str | bytes, now: float) -> None:
        assert self.channels is not None
        self.channels.send(channel_id, data, now=now)
        self._drain_channels(now)

    def _drain_channels(self, now: float) -> None:
        channels = self.channels
        assert channels is not None
        while (event := channels.poll_event()) is not None:
            if isinstance(event, ChannelOpen):
                self.open_channels[event.channel.label] = event.channel.id
                self.channel_open_at.setdefault(event.channel.label, now)
            elif isinstance(event, ChannelMessage):
                self.channel_messages.append((event.channel_id, event.data))
        if self.dtls is not None and self.dtls.is_connected:
            while (packet := channels.poll_transmit()) is not None:
                self.dtls.send(packet)
            self._drain_dtls_transmits()

    def stop_checks(self) -> None:
        """Stop sending consent checks (the server should then expire the session)."""
        self._next_check = None

    # -- internals ------------------------------------------------------------------------------

    def _send_check(self) -> None:
        assert self.remote is not None
        msg = stun.StunMessage(
            method=stun.BINDING,
            cls=stun.StunClass.REQUEST,
            transaction_id=self.rng.randbytes(12),
            username=self._username,
            priority=0x6E7F1EFF,
            use_candidate=True,
            ice_controlling=self.rng.getrandbits(64),
        )
        self._transmits.append((stun.serialize(msg, integrity_key=self._key), self.remote))

    def _on_stun(self, data: bytes, now: float) -> None:
        try:
            msg = stun.parse(data)
        except ParseError:
            return
        if msg.cls is not stun.StunClass.SUCCESS or not stun.verify_integrity(data, msg, self._key):
            return
        self.check_responses += 1
        if self.check_responses == 1:
            self._next_check = now + CONSENT_INTERVAL
            assert self.dtls is not None
            if self.dtls.role is DtlsRole.CLIENT and self.srtp is None and self.connected_at is None:
                self.dtls.start(now)
                self._drain_dtls(now)

    def _drain_dtls_transmits(self) -> None:
        assert self.dtls is not None and self.remote is not None
        while (out := self.dtls.poll_transmit()) is not None:
            self._transmits.append((out, self.remote))

    def _drain_dtls(self, now: float) -> None:
        assert self.dtls is not None
        self._drain_dtls_transmits()
        while (event := self.dtls.poll_event()) is not None:
            if isinstance(event, HandshakeComplete):
                self.srtp = SrtpSession(event.srtp_profile, event.local_key, event.remote_key)
                self.connected_at = now
                if self.channels is not None:
                    if self.channels.association.state is sctp.State.CLOSED:
                        self.channels.association.connect(now)
                    self._drain_channels(now)
            elif isinstance(event, ApplicationData):
                if self.channels is not None:
                    self.channels.handle_packet(event.data, now)
                    self._drain_channels(now)
            elif isinstance(event, DtlsClosed):
                self.closed_reason = event.reason
