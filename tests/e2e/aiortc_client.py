"""aiortc as an independent WebRTC client for end-to-end tests (test-only).

Theory of operation
-------------------
`run_aiortc_call` plays one call against any server with voxwire's signaling API
(``POST {base}/v1/realtime/calls`` with an SDP offer -> ``201``, ``Location`` and the SDP answer;
``DELETE {Location}`` -> ``204``):

1. an `RTCPeerConnection` with ``iceServers=[]`` (otherwise aiortc asks a public STUN server) gets an
   audio track that plays the given int16 mono 48 kHz signal in real time, 20 ms per frame, then
   silence (or the signal again, with ``loop_audio=True``); optionally a data channel;
2. ``setLocalDescription`` gathers the candidates (aiortc does it there, so ``localDescription``
   is a complete offer; no trickle), with 127.0.0.1 added (see below);
3. the offer is POSTed, the answer applied, and the received audio track is recorded;
4. once ``connectionState`` is ``connected`` the call is held for ``duration`` seconds, then the call
   is DELETEd and the peer connection closed.

Timelines. ``CallResult.sent`` holds exactly the samples the track emitted, starting with the first
frame aiortc pulled (just after DTLS connected). ``CallResult.received`` is on the same timeline:
``received[i]`` is what was heard ``i / 48000`` s after the first sent sample (zeros before the
first received frame, received frames concatenated from there; aiortc conceals no loss, so a lost
packet shortens the recording by one frame). `best_correlation(sent, received)` therefore reports the
mouth-to-ear delay of the round trip as its lag (including aiortc's 4-packet jitter prefetch).

Timings (``CallResult.timings``, seconds after the POST was sent; ``gather`` is the duration of
``setLocalDescription`` before it): ``answer`` (answer body received), ``ice_connected``
(``iceConnectionState`` reached ``completed``: aiortc has no ``connected`` ICE state),
``dtls_connected`` (``connectionState`` ``connected``), ``first_audio`` (first received frame),
``first_voice`` (first received frame louder than -40 dBFS), ``datachannel_open`` (the main data
channel), ``datachannel_open:LABEL`` (every data channel). A key is missing when its event never
happened.

Loopback. aioice's ``get_host_addresses`` skips 127.0.0.1, so inside a network namespace that has
only ``lo`` aiortc would offer no candidate at all. `loopback_candidates()` installs (once) a wrapper
around ``aioice.ice.get_host_addresses`` that appends 127.0.0.1 while a context variable is set, and
sets it for the ``with`` block. Gathering runs inside ``setLocalDescription``, whose tasks inherit the
context, so only peer connections gathered inside the block are affected; everything else in the
process keeps aioice's behaviour. No private attribute is touched; the cost is that the wrapper
depends on aioice looking the function up as a module global at call time (true in aioice 0.9-0.13).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import aioice.ice
import av
import numpy as np
import soxr
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
CALLS_PATH = "/v1/realtime/calls"
VOICE_RMS = 32768 * 10 ** (-40 / 20)  # -40 dBFS: louder than Opus-decoded silence

__all__ = [
    "CallResult",
    "CallSetupError",
    "best_correlation",
    "loopback_candidates",
    "run_aiortc_call",
    "speech_signal",
    "synthetic_speech",
]


# --- loopback candidates -----------------------------------------------------------------------

_WITH_LOOPBACK: contextvars.ContextVar[bool] = contextvars.ContextVar("aiortc_loopback", default=False)


def _install_loopback_wrapper() -> None:
    current = aioice.ice.get_host_addresses
    if getattr(current, "_voxwire_loopback", False):
        return
    original = current

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
        if _WITH_LOOPBACK.get() and use_ipv4 and "127.0.0.1" not in addresses:
            addresses.append("127.0.0.1")
        return addresses

    get_host_addresses._voxwire_loopback = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = get_host_addresses


@contextlib.contextmanager
def loopback_candidates() -> Iterator[None]:
    """Make aiortc gather a 127.0.0.1 host candidate for peer connections gathered in this block."""
    _install_loopback_wrapper()
    token = _WITH_LOOPBACK.set(True)
    try:
        yield
    finally:
        _WITH_LOOPBACK.reset(token)


# --- test signals ------------------------------------------------------------------------------


def synthetic_speech(seconds: float, rate: int = RATE, seed: int = 1) -> np.ndarray:
    """A speech-like int16 signal: irregular voiced syllables with their own pitch glide and vowel.

    Each syllable is a harmonic series (f0 gliding within 90-250 Hz, harmonics below 4 kHz, where
    Opus keeps the waveform) shaped by two random formants, under a Hann envelope; gaps between
    syllables are random. The randomness (from ``seed``) gives the signal a single clear
    cross-correlation peak and makes signals with different seeds unrelated.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    signal = np.zeros(n)
    pos = int(rng.uniform(0.05, 0.2) * rate)
    while pos < n:
        length = min(int(rng.uniform(0.08, 0.3) * rate), n - pos)
        f0 = np.linspace(*rng.uniform(90, 250, size=2), length)
        phase = 2 * np.pi * np.cumsum(f0) / rate
        f1, f2 = rng.uniform(250, 900), rng.uniform(900, 2800)
        f_mean = float(f0.mean())
        syllable = np.zeros(length)
        for k in range(1, int(4000 / f0.max()) + 1):
            fk = k * f_mean
            amp = 0.1 + np.exp(-(((fk - f1) / 150) ** 2)) + 0.6 * np.exp(-(((fk - f2) / 250) ** 2))
            syllable += amp / np.sqrt(k) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
        signal[pos : pos + length] = rng.uniform(0.3, 1.0) * np.hanning(length) * syllable
        pos += length + int(rng.uniform(0.03, 0.25) * rate)
    return (signal / np.max(np.abs(signal)) * 0.5 * 32767).astype(np.int16)


def speech_signal(text: str, rate: int = RATE) -> np.ndarray | None:
    """espeak-ng speaking ``text`` as int16 mono at ``rate``, or None when espeak-ng is missing."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(
            [espeak, "-v", "en-us", "-s", "150", "-w", str(path), text],
            check=True,
            capture_output=True,
            timeout=30,
        )
        with wave.open(str(path), "rb") as wav:
            assert wav.getsampwidth() == 2 and wav.getnchannels() == 1, "espeak-ng writes s16 mono"
            source_rate = wav.getframerate()
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    if source_rate != rate:
        pcm = soxr.resample(pcm, source_rate, rate)
    return np.asarray(pcm, dtype=np.int16)


# --- cross-correlation ---------------------------------------------------------------------------


ENVELOPE_RATE = 1000  # Hz: 1 ms lag resolution
ENVELOPE_BANDS = (80, 300, 600, 1000, 1600, 2500, 4000, 8000)  # Hz, band edges


def _band_envelopes(x: np.ndarray, rate: int) -> np.ndarray:
    """Amplitude envelopes (bands x time, at ENVELOPE_RATE) of x split into ENVELOPE_BANDS.

    Bands are cut with an ideal (FFT-mask) filter over the whole signal; each envelope is the mean
    absolute value over 1 ms blocks, smoothed over 5 ms.
    """
    block = rate // ENVELOPE_RATE
    n = len(x) // block
    nfft = 1 << int(np.ceil(np.log2(max(n * block, 2))))  # a power of two keeps the FFT fast
    spectrum = np.fft.rfft(x[: n * block], nfft)
    freqs = np.fft.rfftfreq(nfft, 1 / rate)
    envelopes = np.empty((len(ENVELOPE_BANDS) - 1, n))
    for b, (lo, hi) in enumerate(itertools.pairwise(ENVELOPE_BANDS)):
        band = np.fft.irfft(np.where((freqs >= lo) & (freqs < hi), spectrum, 0), nfft)[: n * block]
        env = np.abs(band).reshape(n, block).mean(axis=1)
        envelopes[b] = np.convolve(env, np.ones(5) / 5, mode="same")
    return envelopes


def best_correlation(
    sent: np.ndarray,
    received: np.ndarray,
    rate: int = RATE,
    *,
    max_lag: float | None = None,
    envelope: bool = True,
) -> tuple[float, float]:
    """Peak normalized cross-correlation of ``received`` against ``sent``, and its lag in seconds.

    The value at each lag is the Pearson correlation between ``sent`` and the same-length window of
    ``received`` (zero-padded at both ends), so it lies in [-1, 1] and ignores level and offset.
    A positive lag means ``received`` is late. By default both signals are first reduced to
    amplitude envelopes in seven bands from 80 Hz to 8 kHz (1 kHz envelope rate; each band weighted
    by the inverse of its level in ``sent``, bands nearly empty in ``sent`` dropped), and the
    correlation runs over bands and time jointly: this ignores phase changes from the codec,
    tolerates a few milliseconds of drift or a lost frame, and still tells one utterance from
    another (different espeak-ng sentences score about 0.2, an Opus echo about 0.99). ``envelope=False`` correlates the
    raw waveforms instead (sample resolution, but sensitive to codec phase and to gaps).
    ``max_lag`` (seconds) limits the search to ``|lag| <= max_lag``. Empty or silent input gives
    ``(0.0, 0.0)``.
    """
    x = np.asarray(sent, dtype=np.float64).reshape(1, -1)
    y = np.asarray(received, dtype=np.float64).reshape(1, -1)
    r = rate
    if envelope:
        r = ENVELOPE_RATE
        x, y = _band_envelopes(x[0], rate), _band_envelopes(y[0], rate)
        # Equalize the bands by their level in `sent`; bands where `sent` has next to nothing
        # (envelope 26 dB below its strongest band) carry no information about it and are dropped.
        level = x.std(axis=1, keepdims=True)
        weights = np.where(level >= 0.05 * level.max(), 1.0 / np.maximum(level, 1e-12), 0.0)
        x, y = x * weights, y * weights
    n = x.shape[1]
    if n == 0 or y.shape[1] == 0:
        return 0.0, 0.0
    x = x - x.mean(axis=1, keepdims=True)
    ex = float(np.sum(x * x))
    if ex <= 1e-12:
        return 0.0, 0.0
    pad = np.zeros((y.shape[0], n - 1))
    ypad = np.concatenate([pad, y, pad], axis=1)
    count = ypad.shape[1] - n + 1  # lags -(n-1) .. len(y)-1
    nfft = 1 << int(np.ceil(np.log2(ypad.shape[1] + n)))
    cross = np.fft.irfft(np.fft.rfft(ypad, nfft) * np.conj(np.fft.rfft(x, nfft)), nfft)
    cross = cross[:, :count].sum(axis=0)
    zero = np.zeros((ypad.shape[0], 1))
    s1 = np.concatenate([zero, np.cumsum(ypad, axis=1)], axis=1)
    s2 = np.concatenate([zero, np.cumsum(ypad * ypad, axis=1)], axis=1)
    wsum = s1[:, n:] - s1[:, :-n]
    # windowed sum of squared deviations from each band's window mean, summed over bands
    var = np.maximum((s2[:, n:] - s2[:, :-n] - wsum * wsum / n).sum(axis=0), 0.0)
    if var.max() <= 0.0:
        return 0.0, 0.0  # `received` is constant (silent) everywhere
    ok = var > 1e-6 * var.max()
    ncc = np.zeros(count)
    ncc[ok] = cross[ok] / np.sqrt(ex * var[ok])
    lags = np.arange(count) - (n - 1)
    if max_lag is not None:
        ncc[np.abs(lags) > max_lag * r] = -np.inf
    best = int(np.argmax(ncc))
    if not np.isfinite(ncc[best]):
        return 0.0, 0.0
    return float(ncc[best]), float(lags[best] / r)


# --- media ---------------------------------------------------------------------------------------


class PlaybackTrack(MediaStreamTrack):
    """Plays int16 mono 48 kHz audio in real time as 20 ms s16 frames, then silence (or loops).

    Pacing: frame k is released at ``start + k * 20 ms`` on the event loop's monotonic clock,
    ``start`` being the moment aiortc first asks for a frame.
    """

    kind = "audio"

    def __init__(self, audio: np.ndarray, *, loop: bool = False) -> None:
        super().__init__()
        self._audio = np.asarray(audio, dtype=np.int16).reshape(-1)
        self._loop = loop and len(self._audio) > 0
        self._pts = 0
        self.start: float | None = None
        self.chunks: list[np.ndarray] = []

    def _next_samples(self) -> np.ndarray:
        if self._loop:
            idx = (self._pts + np.arange(FRAME_SAMPLES)) % len(self._audio)
            return self._audio[idx]
        out = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        part = self._audio[self._pts : self._pts + FRAME_SAMPLES]
        out[: len(part)] = part
        return out

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = asyncio.get_running_loop().time()
        if self.start is None:
            self.start = now
        else:
            delay = self.start + self._pts / RATE - now
            if delay > 0:
                await asyncio.sleep(delay)
        samples = self._next_samples()
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = Fraction(1, RATE)
        self._pts += FRAME_SAMPLES
        self.chunks.append(samples)
        return frame

    def sent(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.int16)


class _Recorder:
    """Consumes a received audio track into mono 48 kHz float chunks, noting arrival times."""

    def __init__(self, track: MediaStreamTrack, on_frame: Callable[[float, float], None]) -> None:
        self.track = track
        self.chunks: list[np.ndarray] = []
        self.first_arrival: float | None = None
        self._on_frame = on_frame  # (arrival time, rms) for the timings
        self._resampler: soxr.ResampleStream | None = None
        self.task = asyncio.ensure_future(self._run())

    def _to_mono48k(self, frame: av.AudioFrame) -> np.ndarray:
        data = frame.to_ndarray().astype(np.float64)
        channels = len(frame.layout.channels)
        if frame.format.is_planar:
            mono = data.reshape(channels, -1).mean(axis=0)
        else:
            mono = data.reshape(-1, channels).mean(axis=1)
        if frame.format.name != "s16":
            mono = mono * 32768  # float formats are in [-1, 1]
        if frame.sample_rate != RATE:
            if self._resampler is None:
                self._resampler = soxr.ResampleStream(frame.sample_rate, RATE, 1, dtype="float64")
            mono = self._resampler.resample_chunk(mono)
        return mono

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                frame = await self.track.recv()
            except MediaStreamError:
                return
            now = loop.time()
            if self.first_arrival is None:
                self.first_arrival = now
            mono = self._to_mono48k(frame)
            self.chunks.append(mono)
            if len(mono):
                self._on_frame(now, float(np.sqrt(np.mean(mono * mono))))

    def received_since(self, origin: float | None) -> np.ndarray:
        """The recording on a timeline starting at ``origin`` (loop time), as int16."""
        audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0)
        if self.first_arrival is not None:
            if origin is None:
                origin = self.first_arrival
            offset = int(round((self.first_arrival - origin) * RATE))
            audio = np.concatenate([np.zeros(offset), audio]) if offset >= 0 else audio[-offset:]
        return np.clip(np.round(audio), -32768, 32767).astype(np.int16)


# --- the call ------------------------------------------------------------------------------------


class CallSetupError(RuntimeError):
    """The server did not answer the offer with 201 and an SDP answer."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"POST {CALLS_PATH} returned {status}: {body[:500]}")
        self.status = status
        self.body = body


@dataclass
class CallResult:
    received: np.ndarray  # int16 mono 48 kHz, on the timeline of `sent`
    sent: np.ndarray  # int16 mono 48 kHz, exactly what the track emitted
    timings: dict[str, float]  # seconds after the POST; see the module docstring
    answer_sdp: str
    delete_status: int
    connection_state_history: list[tuple[float, str]]  # (seconds after POST, connectionState)
    ice_state_history: list[tuple[float, str]] = field(default_factory=list)
    offer_sdp: str = ""
    location: str = ""
    data_channel_messages: list[str | bytes] = field(default_factory=list)
    #: every data channel's received messages, by label (the main channel's are the list above)
    channel_messages: dict[str, list[str | bytes]] = field(default_factory=dict)

    @property
    def connected(self) -> bool:
        return "dtls_connected" in self.timings


async def run_aiortc_call(
    base_url: str,
    *,
    audio: np.ndarray,
    duration: float,
    token: str | None = None,
    data_channel: bool = False,
    data_channel_send: Sequence[str | bytes] = (),
    channel_label: str = "voxwire",
    extra_channels: Mapping[str, Sequence[str | bytes]] | None = None,
    until: Callable[[dict[str, list[str | bytes]]], bool] | None = None,
    loop_audio: bool = False,
    connect_timeout: float = 10.0,
    offer_transform: Callable[[str], str] | None = None,
) -> CallResult:
    """Place one call with aiortc; see the module docstring.

    ``audio`` is int16 mono 48 kHz. ``duration`` counts from DTLS connected; if the call does not
    connect within ``connect_timeout`` it is DELETEd and closed anyway, and the result says so
    (``connected`` is False). ``token`` is sent as ``Authorization: Bearer``. With ``data_channel``
    the offer also carries an application m-section with a channel labelled ``channel_label``; the
    messages of ``data_channel_send`` are sent when it opens, and every message received is kept.
    ``extra_channels`` (label -> messages sent when it opens) adds more channels to the offer (it
    implies ``data_channel``). ``until``, given the messages received so far by label, ends the hold
    before ``duration`` once it returns True.
    ``offer_transform`` may rewrite the offer SDP before it is POSTed. A non-201 POST raises
    `CallSetupError` (after closing the peer connection).
    """
    loop = asyncio.get_running_loop()
    post_url = base_url.rstrip("/") + CALLS_PATH
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timings: dict[str, float] = {}
    conn_history: list[tuple[float, str]] = []
    ice_history: list[tuple[float, str]] = []
    messages: list[str | bytes] = []
    by_label: dict[str, list[str | bytes]] = {}
    done = asyncio.Event()
    t_post: float | None = None
    connected = asyncio.Event()
    recorders: list[_Recorder] = []

    def since_post(now: float | None = None) -> float:
        return (loop.time() if now is None else now) - (t_post if t_post is not None else loop.time())

    def mark(key: str, now: float | None = None) -> None:
        if t_post is not None and key not in timings:
            timings[key] = since_post(now)

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    player = PlaybackTrack(audio, loop=loop_audio)
    pc.addTrack(player)

    @pc.on("connectionstatechange")
    def _on_connection_state() -> None:
        conn_history.append((since_post(), pc.connectionState))
        if pc.connectionState == "connected":
            mark("dtls_connected")
            connected.set()
        elif pc.connectionState in ("failed", "closed"):
            connected.set()

    @pc.on("iceconnectionstatechange")
    def _on_ice_state() -> None:
        ice_history.append((since_post(), pc.iceConnectionState))
        if pc.iceConnectionState in ("connected", "completed"):
            mark("ice_connected")

    def on_frame(now: float, rms: float) -> None:
        mark("first_audio", now)
        if rms > VOICE_RMS:
            mark("first_voice", now)

    @pc.on("track")
    def _on_track(track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            recorders.append(_Recorder(track, on_frame))

    def add_channel(label: str, send: Sequence[str | bytes], inbox: list[str | bytes], main: bool) -> None:
        channel = pc.createDataChannel(label)
        by_label[label] = inbox

        @channel.on("open")
        def _on_open() -> None:
            if main:
                mark("datachannel_open")
            mark(f"datachannel_open:{label}")
            for message in send:
                channel.send(message)

        @channel.on("message")
        def _on_message(message: str | bytes) -> None:
            inbox.append(message)
            if until is not None and until(by_label):
                done.set()

    if data_channel or extra_channels:
        add_channel(channel_label, data_channel_send, messages, True)
        for label, send in (extra_channels or {}).items():
            add_channel(label, send, [], False)

    delete_status = -1
    answer_sdp = ""
    location = ""
    offer_sdp = ""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            t_gather = loop.time()
            with loopback_candidates():
                await pc.setLocalDescription(await pc.createOffer())
            gather = loop.time() - t_gather
            offer_sdp = pc.localDescription.sdp
            if offer_transform is not None:
                offer_sdp = offer_transform(offer_sdp)

            t_post = loop.time()
            timings["gather"] = gather
            async with http.post(
                post_url, data=offer_sdp.encode(), headers={**headers, "Content-Type": "application/sdp"}
            ) as resp:
                body = await resp.text()
                mark("answer")
                if resp.status != 201 or "Location" not in resp.headers:
                    raise CallSetupError(resp.status, body)
                location = urljoin(post_url, resp.headers["Location"])
            answer_sdp = body
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

            try:
                await asyncio.wait_for(connected.wait(), connect_timeout)
            except TimeoutError:
                pass
            if pc.connectionState == "connected":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), duration)

            async with http.delete(location, headers=headers) as resp:
                await resp.read()
                delete_status = resp.status
    finally:
        await pc.close()
        for recorder in recorders:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(recorder.task, 2.0)

    received = recorders[0].received_since(player.start) if recorders else np.zeros(0, dtype=np.int16)
    return CallResult(
        received=received,
        sent=player.sent(),
        timings=timings,
        answer_sdp=answer_sdp,
        delete_status=delete_status,
        connection_state_history=conn_history,
        ice_state_history=ice_history,
        offer_sdp=offer_sdp,
        location=location,
        data_channel_messages=messages,
        channel_messages=by_label,
    )
