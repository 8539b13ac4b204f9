"""Many synthetic WebRTC callers in one process: the load generator's engine.

Theory of operation
-------------------
Each call is a :class:`LoadClient`, the sans-IO test client (:class:`~voxwire.testing.client.
TestClient`: controlling ICE with aggressive nomination, DTLS in the role the answer leaves it,
SRTP, optionally a data channel) with two additions: it answers the server's own connectivity
checks (a full-ICE server such as aiortc checks back before it nominates) and it has a lean media
path that allocates no packet objects (:meth:`LoadClient.media_packet`, :meth:`LoadClient.
handle_datagram`'s RTP branch).

Every call owns one UDP socket: the server keys its sessions by the client's address, so calls
must have distinct source ports, and the local port then names the call for free on the way back.
The answer's first UDP candidate is all a call needs, so it works the same directly and through a
relay.

**One schedule for all calls.** :class:`LoadGen` runs a single timer on a 1 ms slot grid anchored
on a monotonic clock. Each call is given a phase (one of the 20 slots of a 20 ms frame, spread by
the golden ratio so that any number of calls is spread evenly) and sends one pre-encoded Opus frame
each time its slot comes round: exactly 50 packets per second per call, never bunched into one
burst per frame. The same tick runs the calls' protocol timers (ICE checks and consent, DTLS and
SCTP retransmissions) from a heap of deadlines, so nothing else wakes the loop. If the process
falls behind, the overdue slots are sent late rather than skipped, and the lateness of the
generator itself is recorded (``sched_late``): a measurement taken while the generator was late
is flagged, not trusted.

**Matching echoes to what was sent.** A transcoding echo returns different bytes, and its RTP
sequence numbers and timestamps are its own. The server sends one packet per packet received, in
order, so the echo with extended sequence number ``s`` answers frame ``k = s - s0 + k0``, where
``(s0, k0)`` comes from the first echo: ``k0`` is found by payload equality among the frames sent
so far when the server passes packets through unchanged (exact), else it is the first frame sent
(exact for voxwire, whose first echo answers the caller's first packet; for other servers the
delay may carry a constant offset of whole frames, which the lateness measure below ignores).
Then, per frame: ``delay = arrival of its echo - send time``; a frame is **lost** when no echo
maps to it within ``grace`` seconds, and **late** when its delay exceeds the smallest delay of that
call in the measured window by more than ``late_threshold`` (20 ms, one frame). Jitter is RFC 3550's inter-arrival jitter
(§6.4.1) of the echoed stream against its own RTP timestamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import math
import random
import secrets
import shutil
import subprocess
import tempfile
import time
import wave
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from struct import Struct
from typing import Any

import numpy as np

from voxwire.proto.certificate import Certificate
from voxwire.proto.srtp import SrtpError
from voxwire.testing.client import TestClient
from voxwire.wire import stun
from voxwire.wire.errors import ParseError
from voxwire.wire.sdp import parse_description
from voxwire.wire.types import Address

FRAME_SECONDS = 0.02
FRAME_SAMPLES = 960  # RTP clock is 48 kHz for Opus (RFC 7587 §4.1)
SLOT_SECONDS = 0.001
SLOTS_PER_FRAME = 20
_GOLDEN = (math.sqrt(5) - 1) / 2
_RTP_HEADER = Struct("!BBHII")
_SEQ_TS = Struct("!HI")
_EVENTS_CHANNEL = "oai-events"

DEFAULT_PHRASE = (
    "Hello, this is a synthetic caller. I am counting the packets that come back to me, one two "
    "three four five, and measuring how late each of them is."
)


# -- audio ----------------------------------------------------------------------------------------


def speech_pcm(text: str = DEFAULT_PHRASE) -> np.ndarray | None:
    """``text`` spoken by espeak-ng at 48 kHz mono int16, or None without espeak-ng."""
    if shutil.which("espeak-ng") is None:
        return None
    from voxwire.media.resample import Resampler

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(path), text], check=True,
                       capture_output=True)
        with wave.open(str(path)) as w:
            rate, raw = w.getframerate(), w.readframes(w.getnframes())
    pcm = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    if rate != 48_000:
        resampler = Resampler(rate, 48_000)
        pcm = np.concatenate([resampler.process(pcm), resampler.process(np.zeros(rate // 10, np.int16))])
    return pcm


def synthetic_pcm(seconds: float = 6.0, seed: int = 1) -> np.ndarray:
    """A speech-like signal at 48 kHz: a glottal pulse train whose pitch wanders, shaped by three
    moving formants, in syllables of 120-300 ms with short pauses."""
    rng = np.random.default_rng(seed)
    rate = 48_000
    n = int(seconds * rate)
    t = np.arange(n) / rate
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t) + 10 * np.sin(2 * np.pi * 3.1 * t)
    phase = np.cumsum(pitch / rate)
    source = np.zeros(n)
    for h in range(1, 25):
        source += np.sin(2 * np.pi * h * phase) / h
    out = np.zeros(n)
    for f0, df, rate_hz in ((600, 250, 2.3), (1500, 500, 1.7), (2600, 300, 1.1)):
        centre = f0 + df * np.sin(2 * np.pi * rate_hz * t)
        out += source * np.cos(2 * np.pi * np.cumsum(centre / rate)) * 0.5
    env = np.zeros(n)
    pos = 0
    while pos < n:
        length = int(rng.uniform(0.12, 0.3) * rate)
        seg = min(length, n - pos)
        env[pos : pos + seg] = np.sin(np.linspace(0, np.pi, seg)) ** 0.5
        pos += seg + int(rng.uniform(0.02, 0.12) * rate)
    out *= env
    out = out / np.max(np.abs(out)) * 0.5
    pcm: np.ndarray = (out * 32767).astype(np.int16)
    return pcm


def encode_frames(pcm: np.ndarray, bitrate: int = 32_000, seed: int = 2) -> list[bytes]:
    """Encode 48 kHz mono PCM once into 20 ms Opus payloads. A faint noise floor keeps every payload
    distinct (no two silent frames encode alike), which payload matching relies on."""
    from voxwire.media.opus import OpusEncoder

    rng = np.random.default_rng(seed)
    usable = len(pcm) - len(pcm) % FRAME_SAMPLES
    noisy = np.clip(pcm[:usable].astype(np.int32) + rng.integers(-24, 25, usable), -32768, 32767).astype(np.int16)
    encoder = OpusEncoder(48_000, 1, bitrate=bitrate)
    frames = [encoder.encode(noisy[i : i + FRAME_SAMPLES]) for i in range(0, usable, FRAME_SAMPLES)]
    if not frames:
        raise ValueError("the audio is shorter than one frame")
    return frames


def load_frames(source: str = "auto") -> tuple[list[bytes], str]:
    """Pre-encoded frames: ``espeak`` (espeak-ng speech), ``synthetic``, ``auto`` (espeak when
    installed) or the path of a 48 kHz mono 16-bit WAV. Returns the frames and what they are."""
    if source in ("auto", "espeak"):
        pcm = speech_pcm()
        if pcm is not None:
            return encode_frames(pcm), "espeak-ng speech"
        if source == "espeak":
            raise RuntimeError("espeak-ng is not installed")
        return encode_frames(synthetic_pcm()), "synthetic speech-like signal"
    if source == "synthetic":
        return encode_frames(synthetic_pcm()), "synthetic speech-like signal"
    with wave.open(source) as w:
        if w.getframerate() != 48_000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{source}: need a 48 kHz mono 16-bit WAV")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    return encode_frames(pcm), source


# -- one call -------------------------------------------------------------------------------------


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
            try:
                plain = srtp.unprotect_rtp(data)
            except SrtpError:
                return
            self._on_echo(plain, now)
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

    def _on_echo(self, plain: bytes, now: float) -> None:
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
        header = 12 + 4 * (plain[0] & 0x0F)
        if plain[0] & 0x10 and len(plain) >= header + 4:
            header += 4 + 4 * int.from_bytes(plain[header + 2 : header + 4], "big")
        payload = plain[header:]
        frames, n = self.frames, len(self.frames)
        hits = [k for k in range(len(self.sent_at)) if frames[(self.frame_offset + k) % n] == payload]
        return hits[-1] if hits else 0  # the latest: an echo answers a recent frame

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


def _first_candidate(sdp: str, address: str, port: int) -> str:
    """The answer with the candidate at ``address:port`` moved before the other candidates."""
    lines = sdp.split("\r\n")
    mark = f" {address} {port} "
    chosen = [ln for ln in lines if ln.startswith("a=candidate") and mark in ln]
    others = [ln for ln in lines if not (ln.startswith("a=candidate") and mark in ln)]
    at = next((i for i, ln in enumerate(others) if ln.startswith("a=candidate")), len(others))
    return "\r\n".join(others[:at] + chosen[:1] + others[at:])


# -- the driver: sockets, one schedule, HTTP ------------------------------------------------------


class _CallProtocol(asyncio.DatagramProtocol):
    __slots__ = ("gen", "call", "transport")

    def __init__(self, gen: LoadGen, call: LoadClient) -> None:
        self.gen = gen
        self.call = call
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        call = self.call
        call.handle_datagram(data, (addr[0], addr[1]), time.monotonic())
        if call._transmits or not (128 <= data[0] <= 191):
            self.gen._drain(self)

    def error_received(self, exc: Exception) -> None:
        self.gen.counters["socket_errors"] = self.gen.counters.get("socket_errors", 0) + 1


@dataclass
class LoadConfig:
    url: str
    token: str | None = None
    data_channel: bool = False
    #: Realtime session configuration sent with the offer (multipart), e.g. {"turn_detection": None}.
    session: dict[str, Any] | None = None
    bind: str = "127.0.0.1"
    connect_timeout: float = 10.0
    late_threshold: float = 0.02
    #: Seconds an echo may take before its frame counts as lost.
    grace: float = 0.5
    seed: int | None = None
    #: Start sending audio as soon as a call is connected (off: idle media until set_media(True)).
    media_on_connect: bool = True


@dataclass
class WindowStats:
    """What happened to the frames sent in one window, across the calls alive for all of it."""

    start: float
    end: float
    calls: int
    sent: int = 0
    lost: int = 0
    late: int = 0
    glitched_calls: int = 0
    delays_ms: list[float] = field(default_factory=list)  # per call: median delay
    p99_delay_ms: list[float] = field(default_factory=list)  # per call
    max_late_ms: float = 0.0  # worst (delay - call's min delay) over the window
    sched_late_ms: float = 0.0  # worst lateness of the generator's own schedule

    @property
    def glitch_free(self) -> bool:
        return self.lost == 0 and self.late == 0


class LoadGen:
    """Drives many :class:`LoadClient` calls from one event loop (see the module docstring)."""

    def __init__(self, config: LoadConfig, frames: Sequence[bytes]) -> None:
        self.config = config
        self.frames = frames
        self.certificate = Certificate.generate()
        self.rng = random.Random(config.seed if config.seed is not None else secrets.randbits(64))
        self.calls: list[LoadClient] = []
        self.failed: list[LoadClient] = []
        self.counters: dict[str, int] = {}
        self._protocols: dict[int, _CallProtocol] = {}  # id(call) -> protocol
        self._buckets: list[list[_CallProtocol]] = [[] for _ in range(SLOTS_PER_FRAME)]
        self._timers: list[tuple[float, int, _CallProtocol]] = []
        self._deadline: dict[int, float] = {}
        self._connected: dict[int, asyncio.Future[None]] = {}
        self._index = 0
        self._t0 = 0.0
        self._slot = 0
        self._handle: asyncio.TimerHandle | None = None
        self._http: Any = None
        self.sched_late_max = 0.0  # since the last window reset
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        import aiohttp

        self.loop = asyncio.get_running_loop()
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), timeout=aiohttp.ClientTimeout(total=30)
        )
        self._t0 = time.monotonic()
        self._slot = 0
        self._arm()

    async def stop(self, hang_up: bool = True) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if hang_up and self._http is not None:
            await asyncio.gather(*(self._hang_up(c) for c in self.calls), return_exceptions=True)
        for proto in list(self._protocols.values()):
            if proto.transport is not None:
                proto.transport.close()
        self._protocols.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- calls ----------------------------------------------------------------------------------

    async def add_call(self) -> LoadClient:
        """Set up one call (POST, ICE, DTLS) and start its media; returns it connected, or with
        ``error`` set (then it is in :attr:`failed`)."""
        loop = asyncio.get_running_loop()
        index = self._index
        self._index += 1
        rng = random.Random(self.rng.getrandbits(64))
        call = LoadClient(self.certificate, time.monotonic(), rng, self.frames,
                          frame_offset=rng.randrange(len(self.frames)), late_threshold=self.config.late_threshold)
        proto = _CallProtocol(self, call)
        try:
            await loop.create_datagram_endpoint(lambda: proto, local_addr=(self.config.bind, 0))
        except OSError as exc:
            call.error = f"socket: {exc}"
            self.failed.append(call)
            return call
        assert proto.transport is not None
        local = proto.transport.get_extra_info("sockname")[:2]
        offer = call.offer_with_candidate((local[0], local[1]), data_channel=self.config.data_channel)
        call.timeline.post = time.monotonic()
        try:
            answer = await self._post(call, offer)
            call.answer(answer, time.monotonic())
        except Exception as exc:  # any HTTP or SDP failure ends this call only
            call.error = f"signaling: {type(exc).__name__}: {exc}"
            proto.transport.close()
            self.failed.append(call)
            return call
        key = id(call)
        self._protocols[key] = proto
        done = loop.create_future()
        self._connected[key] = done
        self._drain(proto)
        try:
            await asyncio.wait_for(done, self.config.connect_timeout)
        except TimeoutError:
            call.error = "connect timeout" + (f" ({call.closed_reason})" if call.closed_reason else "")
        finally:
            self._connected.pop(key, None)
        if call.error is not None:
            self._forget(proto)
            self.failed.append(call)
            await self._hang_up(call)
            return call
        if self.config.data_channel and call.channels is not None:
            with contextlib.suppress(Exception):
                call.open_channel(_EVENTS_CHANNEL, time.monotonic())
                self._drain(proto)
        self.calls.append(call)
        call.media_on = self.config.media_on_connect
        self._buckets[int((index * _GOLDEN) % 1.0 * SLOTS_PER_FRAME)].append(proto)
        return call

    async def ramp(self, count: int, rate: float) -> list[LoadClient]:
        """Add ``count`` calls at ``rate`` new calls per second (setups overlap)."""
        tasks = []
        interval = 1.0 / rate if rate > 0 else 0.0
        start = time.monotonic()
        for i in range(count):
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(self.add_call()))
        return list(await asyncio.gather(*tasks))

    def set_media(self, on: bool) -> None:
        """Pause or resume sending audio on every call (consent checks go on)."""
        for call in self.calls:
            call.media_on = on

    async def _post(self, call: LoadClient, offer: str) -> str:
        import aiohttp

        headers = {}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        url = self.config.url.rstrip("/") + "/v1/realtime/calls"
        if self.config.session is not None:
            form = aiohttp.FormData()
            form.add_field("sdp", offer, content_type="application/sdp")
            form.add_field("session", json.dumps(self.config.session), content_type="application/json")
            body: Any = form
        else:
            body = offer
            headers["Content-Type"] = "application/sdp"
        async with self._http.post(url, data=body, headers=headers) as resp:
            text = await resp.text()
            if resp.status not in (200, 201):
                raise RuntimeError(f"HTTP {resp.status}: {text[:200]}")
            location = resp.headers.get("Location")
            if location:
                call.url = location if location.startswith("http") else self.config.url.rstrip("/") + location
            return str(text)

    async def _hang_up(self, call: LoadClient) -> None:
        if call.url is None or self._http is None:
            return
        headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else {}
        with contextlib.suppress(Exception):
            async with self._http.delete(call.url, headers=headers) as resp:
                await resp.read()
        call.url = None

    async def hang_up_all(self) -> None:
        """End every call (DELETE) and close its socket."""
        calls, self.calls = self.calls, []
        await asyncio.gather(*(self._hang_up(c) for c in calls), return_exceptions=True)
        for call in calls:
            proto = self._protocols.get(id(call))
            if proto is not None:
                self._forget(proto)

    def _forget(self, proto: _CallProtocol) -> None:
        key = id(proto.call)
        self._protocols.pop(key, None)
        self._deadline.pop(key, None)
        for bucket in self._buckets:
            if proto in bucket:
                bucket.remove(proto)
        if proto.transport is not None:
            proto.transport.close()

    # -- the drain rule and the one timer -------------------------------------------------------

    def _drain(self, proto: _CallProtocol) -> None:
        call = proto.call
        transport = proto.transport
        if transport is not None:
            while (out := call.poll_transmit()) is not None:
                transport.sendto(out[0], out[1])
        key = id(call)
        if call.srtp is not None and call.timeline.keys is None:
            call.timeline.keys = time.monotonic()
        if call.srtp is not None and key in self._connected and not self._connected[key].done():
            self._connected[key].set_result(None)
        deadline = call.poll_timeout()
        if deadline is not None and self._deadline.get(key) != deadline and key in self._protocols:
            self._deadline[key] = deadline
            heapq.heappush(self._timers, (deadline, key, proto))

    def _arm(self) -> None:
        assert self.loop is not None
        at = self._t0 + self._slot * SLOT_SECONDS
        # loop.time() and time.monotonic() are both CLOCK_MONOTONIC here but may differ by an
        # offset; convert once per tick.
        self._handle = self.loop.call_at(self.loop.time() + (at - time.monotonic()), self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        due_slot = int((now - self._t0) / SLOT_SECONDS)
        late = now - (self._t0 + self._slot * SLOT_SECONDS)
        if late > self.sched_late_max:
            self.sched_late_max = late
        buckets = self._buckets
        while self._slot <= due_slot:
            for proto in buckets[self._slot % SLOTS_PER_FRAME]:
                call = proto.call
                if call.media_on and proto.transport is not None:
                    proto.transport.sendto(call.media_packet(time.monotonic()), call.remote)
            self._slot += 1
        timers = self._timers
        now = time.monotonic()
        while timers and timers[0][0] <= now:
            deadline, key, proto = heapq.heappop(timers)
            if self._deadline.get(key) != deadline:
                continue
            del self._deadline[key]
            proto.call.handle_timeout(now)
            self._drain(proto)
        self._arm()

    # -- measurement ----------------------------------------------------------------------------

    def mark(self) -> dict[int, int]:
        """Each live call's next frame index, to open a window (reset the schedule lateness too)."""
        self.sched_late_max = 0.0
        return {id(c): c.frames_sent for c in self.calls}

    def window(self, opened: dict[int, int], start: float, closed: dict[int, int] | None = None) -> WindowStats:
        """Stats of the frames sent between ``opened`` (a :meth:`mark`) and ``closed`` (a later
        mark, or now), for the calls alive at both. Call it ``grace`` seconds after ``closed``."""
        closed = closed if closed is not None else {id(c): c.frames_sent for c in self.calls}
        stats = WindowStats(start=start, end=time.monotonic(), calls=0, sched_late_ms=self.sched_late_max * 1000)
        for call in self.calls:
            key = id(call)
            if key not in opened or key not in closed:
                continue
            sent, lost, late, delays = call.window(opened[key], closed[key])
            stats.calls += 1
            stats.sent += sent
            stats.lost += lost
            stats.late += late
            if lost or late:
                stats.glitched_calls += 1
            if delays:
                delays.sort()
                stats.delays_ms.append(1000 * delays[len(delays) // 2])
                stats.p99_delay_ms.append(1000 * delays[min(len(delays) - 1, int(0.99 * len(delays)))])
                stats.max_late_ms = max(stats.max_late_ms, 1000 * (delays[-1] - delays[0]))
        return stats


# -- reporting ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def call_summary(call: LoadClient, first: int = 0, last: int | None = None) -> dict[str, Any]:
    """One call's numbers (times in ms)."""
    t = call.timeline

    def ms(x: float | None) -> float | None:
        return None if x is None else round(1000 * (x - t.post), 3)

    sent, lost, late, delays = call.window(first, call.frames_sent if last is None else last)
    delays.sort()
    return {
        "error": call.error,
        "setup_answer_ms": ms(t.answer),
        "setup_ice_ms": ms(t.ice),
        "setup_keys_ms": ms(t.keys),
        "setup_first_echo_ms": ms(t.first_echo),
        "setup_channel_ms": ms(t.channel_open),
        "sent": call.frames_sent,
        "received": call.echoes,
        "measured": sent,
        "lost": lost,
        "late": late,
        "delay_p50_ms": round(1000 * delays[len(delays) // 2], 3) if delays else None,
        "delay_p99_ms": round(1000 * delays[min(len(delays) - 1, int(0.99 * len(delays)))], 3) if delays else None,
        "delay_min_ms": round(1000 * call.min_delay, 3) if delays else None,
        "jitter_ms": round(1000 * call.jitter, 3),
        "max_jitter_ms": round(1000 * call.max_jitter, 3),
        "unmatched": call.unmatched,
        "duplicates": call.duplicates,
        "channel_messages": call.messages,
    }


SUMMARY_METRICS = (
    "setup_answer_ms",
    "setup_ice_ms",
    "setup_keys_ms",
    "setup_first_echo_ms",
    "setup_channel_ms",
    "lost",
    "late",
    "delay_p50_ms",
    "delay_p99_ms",
    "jitter_ms",
    "max_jitter_ms",
)


def across_calls(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """p50 / p90 / p99 / max across calls of each per-call metric."""
    out: dict[str, dict[str, float | None]] = {}
    for metric in SUMMARY_METRICS:
        values = [r[metric] for r in rows if r.get(metric) is not None]
        if not values:
            continue
        out[metric] = {
            "p50": percentile(values, 50),
            "p90": percentile(values, 90),
            "p99": percentile(values, 99),
            "max": max(values),
        }
    return out
