"""One synthetic caller of the load generator: :class:`LoadClient`.

Theory of operation
-------------------
Each call is a :class:`LoadClient`, the sans-IO test client (:class:`~voxwire.testing.client.
TestClient`: controlling ICE with aggressive nomination, DTLS in the role the answer leaves it,
SRTP, optionally a data channel) with two additions: it answers the server's own connectivity
checks (a full-ICE server such as aiortc checks back before it nominates) and it has a lean media
path that allocates no packet objects (:meth:`LoadClient.media_packet`, :meth:`LoadClient.
handle_datagram`'s RTP branch).

**Matching echoes to what was sent.** A transcoding echo returns different bytes, and its RTP
sequence numbers and timestamps are its own. The server sends one packet per packet received, in
order, so the echo with extended sequence number ``s`` answers frame ``k = s - s0 + k0``, where
``(s0, k0)`` comes from the first echo: ``k0`` is found by payload equality among the frames sent
so far when the server passes packets through unchanged (exact), else it is the first frame sent
(exact for voxwire, whose first echo answers the caller's first packet; for other servers the
delay may carry a constant offset of whole frames, which the lateness measure below ignores).
A frame the server drops (voxwire trims a live stream's backlog beyond ``max_stream_backlog``
after a stall) shifts that mapping by one from there on. When the server passes payloads
through unchanged, every authenticated echo (below) checks it: an echo whose payload is that of
a later frame, up to :data:`MAX_RESYNC` frames on, moves the mapping there (``resyncs``). The
echoes between the drop and that check were mapped one frame early (they read 20 ms late), the
frame left without an echo counts as lost, and from there the call measures true delays again,
instead of carrying the drop for the rest of the call. A transcoding echo cannot be checked this
way: a drop then reads as 20 ms of lasting delay (a step counted as late frames in the window
where it happens, and by ``bench/capacity.py``'s median delay check after it).
Then, per frame: ``delay = arrival of its echo - send time``; a frame is **lost** when no echo
maps to it within ``grace`` seconds, and **late** when its delay exceeds the smallest delay of that
call in the measured window by more than ``late_threshold`` (20 ms, one frame). Jitter is RFC 3550's inter-arrival jitter
(§6.4.1) of the echoed stream against its own RTP timestamps.

**Authenticating a sample.** All of the above reads the RTP header, which SRTP authenticates but
leaves in the clear (RFC 3711 §3.1), so an echo is measured without decrypting it. The first
echo of a call (its payload names the frame it answers) and one in every :data:`VERIFY_EVERY`
after it are authenticated and decrypted; one that fails counts in ``srtp_failures`` and is not
measured. A server whose SRTP is wrong fails within a third of a second, and the generator saves
the decryption of the others: 0.8 against 1.7 us per echo with 400 calls in process, ~5% of
what a call costs the generator, which at 800-1000 pass-through calls saturates about when the
server does.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from struct import Struct

from voxwire.loadgen.audio import FRAME_SAMPLES
from voxwire.proto.certificate import Certificate
from voxwire.proto.srtp import SrtpError
from voxwire.testing.client import TestClient
from voxwire.wire import stun
from voxwire.wire.errors import ParseError
from voxwire.wire.rtp import parse_rtp
from voxwire.wire.sdp import parse_description
from voxwire.wire.types import Address

#: One echo in this many is authenticated and decrypted (see the module docstring).
VERIFY_EVERY = 16
#: How far on (frames) an authenticated pass-through echo looks for its own payload when it does
#: not answer the frame its sequence number maps to: the server dropped that many frames.
MAX_RESYNC = 64

_RTP_HEADER = Struct("!BBHII")
_SEQ_TS = Struct("!HI")


@dataclass
class Timeline:
    """Monotonic times of one call's setup."""

    post: float = 0.0
    answer: float | None = None
    ice: float | None = None  # first check response
    keys: float | None = None  # SRTP keys in place (DTLS done)
    first_echo: float | None = None
    channel_open: float | None = None


class LoadClient(TestClient):
    """One synthetic caller: :class:`TestClient` plus answers to the server's checks and a lean,
    allocation-light media path with echo matching."""

    __test__ = False

    def __init__(self, certificate: Certificate, now: float, rng: random.Random, frames: Sequence[bytes],
                 *, frame_offset: int, late_threshold: float = 0.02) -> None:
        super().__init__(certificate, now, rng, ssrc=rng.randrange(1, 1 << 32))
        self.frames = frames
        self.frame_offset = frame_offset
        self.late_threshold = late_threshold
        self.timeline = Timeline(post=now)
        self.local_address: Address | None = None
        self.error: str | None = None
        self.url: str | None = None  # the call's resource (Location), for the hang-up
        self.media_on = False
        self._ts0 = rng.randrange(1 << 32)
        self._frame = 0  # next frame index to send
        self._integrity_key = b""
        #: Per frame k: send time, then delay of its echo (NaN until it arrives).
        self.sent_at = array("d")
        self.delay = array("d")
        self.min_delay = math.inf
        self.echoes = 0  # echoed RTP packets received
        self.unmatched = 0  # echoes mapping outside the frames sent
        self.duplicates = 0
        self.jitter = 0.0  # RFC 3550 §6.4.1, seconds
        self.max_jitter = 0.0
        self.messages = 0  # data channel messages received
        self._s0: int | None = None
        self._k0 = 0
        self._last_seq = 0
        self._last_ext = 0
        self._last_transit: float | None = None
        self.rtcp_received = 0
        self.srtp_failures = 0  # sampled echoes that failed authentication
        self.resyncs = 0  # times an echo's payload showed the server had dropped frames
        self._payload_exact = False  # the server returns payloads unchanged (pass-through)
        self._unverified = 0  # echoes to measure before the next authenticated one

    # -- setup ----------------------------------------------------------------------------------

    def offer_with_candidate(self, local: Address, *, data_channel: bool) -> str:
        """The offer with our host candidate in each section (a full-ICE server checks back)."""
        self.local_address = local
        candidate = [f"a=candidate:1 1 udp 2130706431 {local[0]} {local[1]} typ host", "a=end-of-candidates"]
        lines = self.offer(data_channel=data_channel).rstrip("\r\n").split("\r\n")
        out: list[str] = []
        in_media = False
        for line in lines:
            if line.startswith("m=") and in_media:
                out += candidate
            in_media = in_media or line.startswith("m=")
            out.append(line)
        out += candidate
        return "\r\n".join(out) + "\r\n"

    def answer(self, sdp: str, now: float) -> None:
        self.timeline.answer = now
        ans = parse_description(sdp)
        udp = [c for c in ans.candidates if c.transport.lower() == "udp" and ":" not in c.address]
        if not udp:
            raise ValueError("the answer has no IPv4 UDP candidate")
        # Prefer the candidate on our own address family and host (loopback in the tests).
        mine = [c for c in udp if self.local_address is not None and c.address == self.local_address[0]]
        cand = (mine or udp)[0]
        fixed = sdp
        if cand is not udp[0]:  # TestClient takes the first UDP candidate: put ours first
            fixed = _first_candidate(sdp, cand.address, cand.port)
        super().answer(fixed, now)
        self._integrity_key = self.pwd.encode()

    # -- datagrams ------------------------------------------------------------------------------

    def handle_datagram(self, data: bytes, addr: Address, now: float) -> None:
        first = data[0] if data else 0
        if 128 <= first <= 191:
            if 192 <= data[1] <= 223:
                self.rtcp_received += 1
                return
            srtp = self.srtp
            if srtp is None:
                return
            if self._unverified and self._s0 is not None:
                self._unverified -= 1
                self._on_echo(data, now)  # its header is all that is read
                return
            try:
                plain = srtp.unprotect_rtp(data)
            except SrtpError:
                self.srtp_failures += 1
                return
            self._unverified = VERIFY_EVERY - 1
            self._on_echo(plain, now, verified=True)
            return
        if first <= 3:
            try:
                msg = stun.parse(data)
            except ParseError:
                return
            if msg.cls is stun.StunClass.REQUEST and msg.method == stun.BINDING:
                if stun.verify_integrity(data, msg, self._integrity_key):
                    key = stun.IntegrityKey(self._integrity_key)
                    self._transmits.append((stun.binding_success(msg.transaction_id, addr, key), addr))
                return
            had = self.check_responses
            self._on_stun(data, now)
            if self.check_responses > had and self.timeline.ice is None:
                self.timeline.ice = now
            return
        was = self.srtp
        super().handle_datagram(data, addr, now)
        if was is None and self.srtp is not None:
            self.timeline.keys = now
        if self.channels is not None and self.timeline.channel_open is None and self.open_channels:
            self.timeline.channel_open = now
        self.messages = len(self.channel_messages)

    def _on_echo(self, plain: bytes, now: float, *, verified: bool = False) -> None:
        """One echoed RTP packet, measured by its header; ``verified``: authenticated and
        decrypted, so its payload can be read."""
        if len(plain) < 12:
            return
        seq, ts = _SEQ_TS.unpack_from(plain, 2)
        self.echoes += 1
        # Extend the 16-bit sequence number (RFC 3550 A.1): forward within half the space.
        if self._s0 is None:
            self._s0 = ext = self._last_ext = seq
            self._last_seq = seq
            self._k0 = self._match_first(plain)
            self.timeline.first_echo = now
        else:
            delta = (seq - self._last_seq) & 0xFFFF
            if delta < 0x8000:
                ext = self._last_ext = self._last_ext + delta
                self._last_seq = seq
            else:  # reordered: an older packet
                ext = self._last_ext - (0x10000 - delta)
        k = ext - self._s0 + self._k0
        if verified and self._payload_exact and k != self._k0 and (payload := _payload(plain)) is not None:
            k = self._resync(payload, k)
        # RFC 3550 §6.4.1 inter-arrival jitter against the echo's own timestamps.
        transit = now - ts / 48_000
        if self._last_transit is not None:
            d = abs(transit - self._last_transit)
            if d < 1000:  # not a timestamp wrap
                self.jitter += (d - self.jitter) / 16
                if self.jitter > self.max_jitter:
                    self.max_jitter = self.jitter
        self._last_transit = transit
        if not 0 <= k < len(self.sent_at):
            self.unmatched += 1
            return
        if not math.isnan(self.delay[k]):
            self.duplicates += 1
            return
        d = now - self.sent_at[k]
        self.delay[k] = d
        if d < self.min_delay:
            self.min_delay = d

    def _match_first(self, plain: bytes) -> int:
        """Index of the frame the first echo answers: by payload when unchanged, else frame 0."""
        payload = _payload(plain)
        frames, n = self.frames, len(self.frames)
        hits = [k for k in range(len(self.sent_at)) if frames[(self.frame_offset + k) % n] == payload]
        self._payload_exact = bool(hits)
        return hits[-1] if hits else 0  # the latest: an echo answers a recent frame

    def _resync(self, payload: bytes, k: int) -> int:
        """The frame a pass-through echo mapped to ``k`` really answers: ``k`` itself, or a later
        one when the server dropped frames in between (the mapping moves on for good)."""
        frames, n, offset = self.frames, len(self.frames), self.frame_offset
        if frames[(offset + k) % n] == payload:
            return k
        for j in range(1, min(MAX_RESYNC, n - 1) + 1):
            if k + j < len(self.sent_at) and frames[(offset + k + j) % n] == payload:
                self._k0 += j
                self.resyncs += 1
                return k + j
        return k  # not found near: keep the mapping (a stray, or a server that changes payloads)

    # -- media ----------------------------------------------------------------------------------

    def media_packet(self, now: float) -> bytes:
        """The next frame, protected, stamped and recorded as sent at ``now``."""
        k = self._frame
        self._frame = k + 1
        frames = self.frames
        payload = frames[(self.frame_offset + k) % len(frames)]
        header = _RTP_HEADER.pack(0x80, self.opus_pt | (0x80 if k == 0 else 0), (self._seq + k) & 0xFFFF,
                                  (self._ts0 + k * FRAME_SAMPLES) & 0xFFFFFFFF, self.ssrc)
        self.sent_at.append(now)
        self.delay.append(math.nan)
        assert self.srtp is not None
        return self.srtp.protect_rtp(header + payload)

    @property
    def frames_sent(self) -> int:
        return self._frame

    def window(self, first: int, last: int) -> tuple[int, int, int, list[float]]:
        """Frames ``first..last-1``: (sent, lost, late, delays in seconds of those that came back)."""
        first = max(first, 0)
        last = min(last, len(self.delay))
        if last <= first:
            return 0, 0, 0, []
        span = self.delay[first:last]
        delays = [d for d in span if not math.isnan(d)]
        lost = len(span) - len(delays)
        # Late: beyond the window's smallest delay by more than the threshold. A lasting step up
        # (a standing queue after a stall) is a glitch in the window where it happens, not after.
        late = 0
        if delays:
            limit = min(delays) + self.late_threshold
            late = sum(1 for d in delays if d > limit)
        return len(span), lost, late, delays


def _payload(plain: bytes) -> bytes | None:
    """An RTP packet's payload, or None when it does not parse."""
    try:
        return parse_rtp(plain).payload
    except ParseError:
        return None


def _first_candidate(sdp: str, address: str, port: int) -> str:
    """The answer with the candidate at ``address:port`` moved before the other candidates."""
    lines = sdp.split("\r\n")
    mark = f" {address} {port} "
    chosen = [ln for ln in lines if ln.startswith("a=candidate") and mark in ln]
    others = [ln for ln in lines if not (ln.startswith("a=candidate") and mark in ln)]
    at = next((i for i, ln in enumerate(others) if ln.startswith("a=candidate")), len(others))
    return "\r\n".join(others[:at] + chosen[:1] + others[at:])
