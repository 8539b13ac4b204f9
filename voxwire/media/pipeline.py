"""Audio between RTP and an agent, both directions, sans-IO.

Inbound: RTP Opus packets -> :class:`~voxwire.media.reorder.ReorderBuffer` (no prefetch delay; a gap
waits at most ``max_delay`` for the missing packet) -> Opus decode, in-band FEC for a single loss
when the next packet is there, PLC otherwise.

Outbound: agent PCM -> cut into 20 ms frames -> :class:`~voxwire.media.pacer.Pacer` (monotonic
schedule, never more than one frame ahead of real time; queued PCM is dropped cheaply on a flush)
-> Opus encode of the next frame only: ahead of its tick when the owner calls :meth:`prepare`
between ticks (then the tick only sends), else at the tick. An agent may also queue frames that are already Opus
(:meth:`OutboundAudio.play_encoded`, the ``passthrough`` agent): they share the pacer and go out
as they are.

libopus decodes to and encodes from 8, 12, 16, 24 and 48 kHz natively, with no added delay, so for
those agent rates no resampler sits on the path (soxr holds back ~26 ms at 48->24 kHz and releases
audio in bursts). Other rates (a 22.05 kHz TTS voice) go through a soxr stream to/from 48 kHz. The
RTP clock stays 48 kHz whatever the rate (RFC 7587 §4.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voxwire.agent.base import Pcm
from voxwire.media.complexity import ComplexityPolicy
from voxwire.media.opus import RESTRICTED_LOWDELAY, VOIP, OpusDecoder, OpusEncoder, OpusError
from voxwire.media.pacer import Pacer, PacerFull
from voxwire.media.reorder import Fec, Frame, Packet, ReorderBuffer
from voxwire.media.resample import Resampler

OPUS_RATE = 48_000
OPUS_NATIVE_RATES = frozenset({8_000, 12_000, 16_000, 24_000, 48_000})
FRAME_SECONDS = 0.02
#: Longest a live stream's frame waits for its tick before the grid moves to it (Pacer.pull_in):
#: none. It was 5 ms, to smooth small jitter; but the grid sat on the phase of the talkspurt's
#: first frame, so every later frame that came a little earlier than that one waited for a timer
#: (in the capacity bench, 23-73% of pass-through frames) and left up to 5 ms late. With 200
#: pass-through calls: echo delay p50 per call 3.2-5.1 -> 0.7 ms, timer wake-ups 720-870 -> 170 a
#: second, RFC 3550 jitter at the client unchanged (0.5-0.9 ms), server CPU within its run-to-run
#: noise (68-80% both ways). A response's frames are queued ahead and keep their grid (catch_up
#: only moves it for a live stream).
MAX_LIVE_WAIT = 0.0
#: How far into the next tick's slot a frame may arrive after the queue ran dry and still continue
#: its talkspurt (no marker, no skipped timestamp; Pacer's ``late_allowance``). Moved to each early
#: frame, a live stream's grid sits on its earliest arrivals, where it used to sit up to
#: MAX_LIVE_WAIT's former 5 ms later: this keeps the tolerance for a late frame at 25 ms.
LIVE_LATE_ALLOWANCE = 0.005
#: Longest run of lost packets concealed frame by frame (16 = 320 ms); longer gaps reset the stream.
MAX_CONCEALED = 16


def codec_rate(agent_rate: int) -> int:
    """The rate libopus runs at for an agent rate: the agent's own when Opus supports it."""
    return agent_rate if agent_rate in OPUS_NATIVE_RATES else OPUS_RATE


#: No audio: the empty remainder every call shares (read-only).
_NO_PCM = np.zeros(0, dtype=np.int16)
_NO_PCM.setflags(write=False)

#: Outbound Opus modes (:attr:`MediaConfig.opus_mode`) and the libopus application each one uses.
OPUS_MODES = {"voip": VOIP, "lowdelay": RESTRICTED_LOWDELAY}


@dataclass(frozen=True)
class MediaConfig:
    #: Longest wait for a missing packet before FEC/PLC fills the gap (seconds).
    reorder_delay: float = 0.04
    #: Opus target bitrate for outbound speech (bit/s).
    bitrate: int = 32_000
    #: Opus encoder complexity (0..10) while the process has room, and under load
    #: (:mod:`voxwire.media.complexity`).
    opus_complexity: int = 5
    opus_complexity_under_load: int = 1
    #: How outbound speech is coded (:data:`OPUS_MODES`): ``voip``, libopus's speech modes (SILK and
    #: hybrid) with in-band FEC against the client's losses; or ``lowdelay``, CELT only: about a
    #: third of the encoding CPU and 4 ms less delay (2.5 ms lookahead instead of 6.5), but no
    #: in-band FEC, so a lost assistant packet is concealed by the client, not recovered.
    opus_mode: str = "voip"
    #: Most outbound audio queued ahead of the pacer (seconds); newer audio is dropped beyond.
    max_queued: float = 30.0
    #: Most audio queued from a live stream outside responses (echo, pass-through), seconds. A
    #: stream that fell behind (the process stalled, the sender burst) drops its oldest frames down
    #: to this, so a stall costs a skip instead of adding its length to every later frame's delay.
    max_stream_backlog: float = 0.06

    def __post_init__(self) -> None:
        if not 0.0 <= self.reorder_delay <= 0.2:
            raise ValueError(f"reorder_delay {self.reorder_delay} outside 0..0.2 s")
        if not 6_000 <= self.bitrate <= 510_000:
            raise ValueError(f"bitrate {self.bitrate} outside 6000..510000")
        if not 0.1 <= self.max_queued <= 600.0:
            raise ValueError(f"max_queued {self.max_queued} outside 0.1..600 s")
        self.complexity_policy()  # validates both complexities
        if self.opus_mode not in OPUS_MODES:
            raise ValueError(f"opus_mode {self.opus_mode!r} is not one of {', '.join(OPUS_MODES)}")
        if not FRAME_SECONDS <= self.max_stream_backlog <= self.max_queued:
            raise ValueError(f"max_stream_backlog {self.max_stream_backlog} outside {FRAME_SECONDS}..max_queued s")

    def complexity_policy(self) -> ComplexityPolicy:
        """A fresh encoder complexity policy with these complexities."""
        return ComplexityPolicy(self.opus_complexity, self.opus_complexity_under_load)


class InboundAudio:
    """Opus RTP in, agent-rate PCM out."""

    # One instance per call (slots: ~50 bytes less each).
    __slots__ = ("reorder", "_rate", "_decoder", "frame_samples", "resampler", "decode_errors")

    def __init__(self, agent_rate: int, config: MediaConfig) -> None:
        rate = codec_rate(agent_rate)
        # A gap of more than MAX_CONCEALED packets (an outage, a relay restart) restarts the stream
        # instead of concealing every lost frame: the agent would hear -- and echo -- seconds of PLC.
        self.reorder = ReorderBuffer(max_delay=config.reorder_delay, max_jump=MAX_CONCEALED)
        self._rate = rate
        self._decoder: OpusDecoder | None = None
        self.frame_samples = round(rate * FRAME_SECONDS)
        self.resampler = Resampler(rate, agent_rate)
        self.decode_errors = 0

    @property
    def decoder(self) -> OpusDecoder:
        """Made on first use (~24 KB of libopus state and buffers): a call whose audio is never
        decoded (idle, or a pass-through agent) never pays for it."""
        if self._decoder is None:
            self._decoder = OpusDecoder(self._rate, 1)
        return self._decoder

    def push(self, seq: int, payload: bytes, now: float) -> None:
        self.reorder.push(seq, payload, now)

    def poll_timeout(self) -> float | None:
        return self.reorder.poll_timeout()

    def handle_timeout(self, now: float) -> None:
        self.reorder.handle_timeout(now)

    def pop_pcm(self) -> Pcm | None:
        """Everything decodable now, resampled to the agent's rate, or None."""
        pop = self.reorder.pop
        if (frame := pop()) is None:
            return None
        first = self._decode(frame)
        if (frame := pop()) is None:  # the common case: one packet in, one frame out
            pcm = np.frombuffer(first, dtype=np.int16)
        else:
            chunks = [first]
            while frame is not None:
                chunks.append(self._decode(frame))
                frame = pop()
            pcm = np.frombuffer(b"".join(chunks), dtype=np.int16)
        if not self.resampler.passthrough:
            pcm = self.resampler.process(pcm)
        return pcm if len(pcm) else None

    def _decode(self, frame: Frame) -> bytes:
        n = self.frame_samples
        try:
            if isinstance(frame, Packet):
                return self.decoder.decode(frame.payload)
            if isinstance(frame, Fec):
                return self.decoder.decode_fec(frame.next_payload, n)
            return self.decoder.conceal(n)  # Lost
        except OpusError:
            self.decode_errors += 1
            return self.decoder.conceal(n)


# Not frozen: made once per packet, and a frozen dataclass costs 1.4 us to create against 0.4 us
# (object.__setattr__ per field). Treat it as immutable.
@dataclass(slots=True)
class SentFrame:
    """One encoded frame whose tick has come."""

    payload: bytes
    timestamp: int  # RTP timestamp (32-bit)
    marker: bool
    #: Whose audio it is: a response id, or None for audio played outside responses.
    tag: str | None


class OutboundAudio:
    """Agent-rate PCM in, paced Opus frames out.

    Audio is queued with a tag (the response it belongs to), so the voice layer can tell when a
    response's audio starts and stops playing and how much of it was actually sent (truncation on
    barge-in). When the tag changes, the previous tag's last partial frame is padded with silence
    and queued, so no frame mixes two responses.
    """

    def __init__(
        self,
        agent_rate: int,
        config: MediaConfig,
        initial_timestamp: int,
        complexity: ComplexityPolicy | None = None,
    ) -> None:
        rate = codec_rate(agent_rate)
        self.resampler = Resampler(agent_rate, rate)
        self._rate = rate
        self._bitrate = config.bitrate
        self._application = OPUS_MODES[config.opus_mode]
        #: Shared by every call of a transceiver; read before each encoded frame.
        self.complexity = complexity or config.complexity_policy()
        self._encoder: OpusEncoder | None = None
        self._encoder_complexity = -1
        self.frame_samples = round(rate * FRAME_SECONDS)
        # A queued frame is 20 ms of PCM (encoded at its tick) or an already encoded Opus payload.
        self.pacer: Pacer[tuple[Pcm | bytes, str | None]] = Pacer(
            initial_timestamp=initial_timestamp,
            capacity=round(config.max_queued / FRAME_SECONDS),
            late_allowance=LIVE_LATE_ALLOWANCE,
        )
        self._partial = _NO_PCM
        self._partial_tag: str | None = None
        self._pending: dict[str | None, int] = {}  # frames queued per tag
        self._max_stream_frames = max(1, round(config.max_stream_backlog / FRAME_SECONDS))
        self.overflow_frames = 0

    @property
    def encoder(self) -> OpusEncoder:
        """Made on first use (~48 KB of libopus state and buffers): a call that never sends PCM
        (idle, or a pass-through agent) never pays for it."""
        if self._encoder is None:
            self._encoder_complexity = self.complexity.complexity
            self._encoder = OpusEncoder(self._rate, 1, application=self._application, bitrate=self._bitrate,
                                        complexity=self._encoder_complexity, inband_fec=self._application == VOIP)
        return self._encoder

    def _encode(self, pcm: Pcm) -> bytes:
        encoder = self.encoder
        wanted = self.complexity.complexity
        if wanted != self._encoder_complexity:
            encoder.complexity = self._encoder_complexity = wanted
        return encoder.encode(pcm, self.frame_samples)

    def start(self, now: float) -> None:
        self.pacer.start(now)

    def play(self, pcm: Pcm, tag: str | None = None) -> None:
        """Queue agent audio; whole 20 ms frames go to the pacer, the remainder waits."""
        if tag != self._partial_tag:
            self.finish()
            self._partial_tag = tag
        audio = pcm if self.resampler.passthrough else self.resampler.process(pcm)
        if len(self._partial):
            audio = np.concatenate((self._partial, audio))
        n = self.frame_samples
        whole = len(audio) - len(audio) % n
        for start in range(0, whole, n):
            self._push(audio[start : start + n], tag)
        # Whole frames only (the streaming echo's case): no copy of an empty remainder.
        self._partial = audio[whole:].copy() if whole < len(audio) else _NO_PCM

    def play_encoded(self, payload: bytes, tag: str | None = None) -> None:
        """Queue one Opus payload of 20 ms as it is (no transcoding); it keeps its place in the
        queue behind the PCM frames before it."""
        if tag != self._partial_tag:
            self.finish()
            self._partial_tag = tag
        self._push(payload, tag)

    def release_now(self, frame: Pcm | bytes, now: float) -> SentFrame | None:
        """One 20 ms frame of a live stream (no tag) that may leave at once -- an Opus payload, or
        PCM at the agent's rate, which is then encoded -- stamped, when nothing waits before it and
        its tick has come (:meth:`Pacer.release_now`); else ``None``, and :meth:`play_encoded` or
        :meth:`play` queues it. The echo's and the pass-through's common case, without the queue."""
        if self._partial_tag is not None:
            return None  # a response's last partial frame goes first
        is_pcm = not isinstance(frame, bytes)
        if is_pcm and (len(frame) != self.frame_samples or len(self._partial) or not self.resampler.passthrough):
            return None  # not one whole frame as it is: play() frames it
        paced = self.pacer.release_now((frame, None), now, MAX_LIVE_WAIT)
        if paced is None:
            return None
        payload = frame if isinstance(frame, bytes) else self._encode(frame)
        return SentFrame(payload, paced.timestamp & 0xFFFFFFFF, paced.marker, None)

    def finish(self) -> None:
        """Queue the last partial frame of the current tag, padded with silence."""
        if len(self._partial):
            frame = np.zeros(self.frame_samples, dtype=np.int16)
            frame[: len(self._partial)] = self._partial
            self._push(frame, self._partial_tag)
            self._partial = _NO_PCM

    def _push(self, frame: Pcm | bytes, tag: str | None) -> None:
        if tag is None and self._pending.get(None, 0) >= self._max_stream_frames:
            self._trim_stream()
        try:
            self.pacer.push((frame, tag))
        except PacerFull:
            self.overflow_frames += 1
            return
        self._pending[tag] = self._pending.get(tag, 0) + 1

    def _trim_stream(self) -> None:
        """Drop the oldest streamed frames down to the backlog limit (never a response's audio)."""
        pacer, pending = self.pacer, self._pending
        while pending[None] >= self._max_stream_frames and (head := pacer.peek()) is not None and head[1] is None:
            pacer.drop_oldest()
            pending[None] -= 1

    @property
    def stream_trimmed(self) -> int:
        """Streamed frames dropped to keep a live stream's delay bounded."""
        return self.pacer.counters.trimmed

    def queued(self, tag: str | None) -> bool:
        """Whether audio of ``tag`` still waits to be sent."""
        return (self._partial_tag == tag and len(self._partial) > 0) or self._pending.get(tag, 0) > 0

    def flush(self) -> int:
        """Drop everything queued (barge-in). Returns the number of frames dropped."""
        self._partial = _NO_PCM
        self._pending.clear()
        self.resampler.reset()  # else the interrupted response's tail starts the next one
        return self.pacer.clear()

    def poll_timeout(self) -> float | None:
        return self.pacer.poll_timeout()

    def catch_up(self, now: float) -> bool:
        """A live stream's frame (queued outside any response) waiting for a tick more than
        :data:`MAX_LIVE_WAIT` away moves the grid so that it leaves now; True if it did.
        A response's frames keep the grid: they are queued ahead and paced."""
        head = self.pacer.peek()
        return head is not None and head[1] is None and self.pacer.pull_in(now, MAX_LIVE_WAIT)

    def needs_encoding(self) -> bool:
        """Whether the frame the next tick sends is still PCM (:meth:`prepare` would encode it)."""
        head = self.pacer.peek()
        return head is not None and not isinstance(head[0], bytes)

    def prepare(self) -> bool:
        """Encode the frame the next tick sends, now instead of at its tick; True if it did.

        Only the next frame: a flush (barge-in) then wastes one encoded frame at most, and a
        complexity change reaches the stream within a frame."""
        head = self.pacer.peek()
        if head is None or isinstance(head[0], bytes):
            return False
        self.pacer.replace_head((self._encode(head[0]), head[1]))
        return True

    def due(self, now: float) -> list[SentFrame]:
        """Encode the frames due at ``now``. A live stream's frames queued behind them leave too
        (:meth:`catch_up`): a backlog left by a stall drains at once instead of delaying every
        later frame of the stream by its length, one tick per arrival, for good."""
        out = []
        while True:
            released = self.pacer.handle_timeout(now)
            for f in released:
                frame, tag = f.frame
                self._pending[tag] -= 1
                payload = frame if isinstance(frame, bytes) else self._encode(frame)
                out.append(SentFrame(payload, f.timestamp & 0xFFFFFFFF, f.marker, tag))
            if not released or not self.catch_up(now):  # each turn takes a frame: it ends
                return out
