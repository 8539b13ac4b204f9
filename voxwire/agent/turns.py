"""Turn detection with the OpenAI Realtime ``server_vad`` semantics, sans-IO: it counts samples.

Theory of operation
-------------------
The caller's audio arrives at the agent rate (24 kHz by default) through :meth:`TurnDetector.append`
and is kept in the *input audio buffer*. A copy is resampled to 16 kHz (libsoxr on float samples:
the result does not depend on how the audio was chunked, and soxr's few milliseconds of delay do not
shift the time line since its output is aligned with its input) and cut into 32 ms windows for the
Silero VAD (:mod:`voxwire.agent.vad`). Each window also yields eight 4 ms energy frames. Time is the count of
samples received since the detector was created (the start of the session's input audio), so every
timestamp is reproducible and no clock is read.

*The VAD decides, the energy places.* Silero's probability rises about one window after a voiced
onset (up to three after a soft fricative) and falls two to three windows after the end of speech
(its hangover: about 100 ms on average, up to 270 ms, on the corpus below). A turn starts at the
first window whose probability reaches ``threshold`` and ends at the first window that falls below
``threshold - 0.15`` (Silero's own hysteresis) once ``silence_duration_ms`` has passed without a
window back above ``threshold``. The boundary itself is then placed inside the VAD's uncertainty, at
most 4 windows (128 ms) back, on the 4 ms frame where the signal's energy crosses
``max(noise floor + 10 dB, loudest frame of the talkspurt - 35 dB)``; the noise floor is tracked
over non-speech windows. Measured with ``bench/agent.py --accuracy`` (108 espeak-ng utterances, 5
voices, two levels, white noise at -80..-50 dBFS; truth: 10 ms RMS more than 20 dB above the noise
floor): onsets within 32 ms of the truth for 100/108 (raw Silero 68/108), ends for 68/108 (raw
Silero 13/108); mean end error +17 ms against Silero's +97 ms. The ends outside 32 ms differ from
that truth on where a decaying tail stops: up to 115 ms earlier in very low noise, up to 170 ms
later in -50 dBFS noise. Since the silence is counted from the placed end, a turn is committed
about 80 ms sooner than with Silero's own boundaries, and no audio is lost: the committed turn
still runs ``silence_duration_ms`` past the placed end.

Event times follow OpenAI's published meaning (``input_audio_buffer.speech_started`` /
``speech_stopped``): both are milliseconds from the start of all audio written to the buffer in the
session, and they bound the audio the turn commits:

* ``SpeechStarted.audio_start_ms`` = speech onset - ``prefix_padding_ms`` (not before the start of
  the buffer): "the beginning of audio sent to the model, and thus includes the prefix_padding_ms".
* ``SpeechStopped.audio_end_ms`` = end of speech + ``silence_duration_ms``: "the end of audio sent
  to the model, and thus includes the min_silence_duration_ms". It is also the moment (in audio
  time) the decision is made; the decision is known at the end of the window that contains it.
* ``TurnCommitted.audio`` is exactly the samples in ``[audio_start_ms, audio_end_ms)`` at the input
  rate. Samples after ``audio_end_ms`` stay in the buffer for the next turn.

Bounds: while idle in ``server_vad`` mode the buffer keeps only the audio a next turn could need
(prefix padding plus the onset look-back). A turn that reaches ``max_turn_ms`` (60 s by default) is
committed as if speech had stopped there (``SpeechStopped``, ``TurnCommitted``) and, as the caller is
still talking, a new turn starts at once (``SpeechStarted`` at the same time). With ``turn_detection``
``None`` (the client commits with :meth:`commit`) nothing is detected and the VAD does not run; a
buffer that reaches ``max_turn_ms`` is committed the same way (a ``TurnCommitted`` event), the only
event that mode emits.

``idle_timeout_ms`` follows OpenAI too: the timer starts when the agent layer calls
:meth:`TurnDetector.start_idle_timer` (when the last response's audio has finished playing), counts
input audio, is cancelled by speech, and fires one :class:`IdleTimeout`. ``create_response`` and
``interrupt_response`` are carried for the agent layer, which acts on them.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
import soxr

from voxwire.agent.vad import ENERGY_FRAME, SILENT_DB, frame_db

if TYPE_CHECKING:
    from voxwire.agent.vad import VadBatch

__all__ = [
    "IdleTimeout",
    "ServerVad",
    "SpeechStarted",
    "SpeechStopped",
    "TurnCommitted",
    "TurnDetector",
    "TurnEvent",
    "VoiceActivityModel",
    "parse_turn_detection",
]

Pcm = npt.NDArray[np.int16]

VAD_RATE = 16000
WINDOW = 512  # samples at 16 kHz: 32 ms
FRAME = ENERGY_FRAME  # energy frame: 4 ms
FRAMES_PER_WINDOW = WINDOW // FRAME
#: How far (in windows) a boundary may be moved back from the VAD's decision.
LOOKBACK_WINDOWS = 4
#: Hysteresis: speech continues while the probability stays at or above threshold - this.
HYSTERESIS = 0.15
#: The energy threshold is this far above the noise floor ...
FLOOR_MARGIN_DB = 10.0
#: ... and at least this far below the loudest frame of the talkspurt.
PEAK_RANGE_DB = 35.0
#: Noise floor: follows drops at once, rises by this fraction of the gap per non-speech window.
FLOOR_RISE = 0.05
INITIAL_FLOOR_DB = -60.0


@dataclass(frozen=True)
class ServerVad:
    """``turn_detection: {"type": "server_vad", ...}``; the defaults are OpenAI's."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    idle_timeout_ms: int | None = None
    create_response: bool = True
    interrupt_response: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be within 0.0..1.0, not {self.threshold}")
        for name in ("prefix_padding_ms", "silence_duration_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
        t = self.idle_timeout_ms
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t <= 0):
            raise ValueError(f"idle_timeout_ms must be a positive integer or null, not {t!r}")
        for name in ("create_response", "interrupt_response"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a boolean, not {getattr(self, name)!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
            "idle_timeout_ms": self.idle_timeout_ms,
            "create_response": self.create_response,
            "interrupt_response": self.interrupt_response,
        }


def parse_turn_detection(obj: Any) -> ServerVad | None:
    """The ``turn_detection`` member of a session: ``None`` or ``server_vad`` (else ValueError)."""
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise ValueError(f"turn_detection must be an object or null, not {type(obj).__name__}")
    kind = obj.get("type")
    if kind != "server_vad":
        raise ValueError(f"turn_detection type {kind!r} is not supported (only 'server_vad' or null)")
    fields = {k: v for k, v in obj.items() if k != "type"}
    known = set(ServerVad.__dataclass_fields__)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown turn_detection field(s): {', '.join(unknown)}")
    if isinstance(fields.get("threshold"), int) and not isinstance(fields.get("threshold"), bool):
        fields["threshold"] = float(fields["threshold"])
    return ServerVad(**fields)


@dataclass(frozen=True)
class SpeechStarted:
    """``input_audio_buffer.speech_started``: onset minus the prefix padding."""

    audio_start_ms: int


@dataclass(frozen=True)
class SpeechStopped:
    """``input_audio_buffer.speech_stopped``: end of speech plus the silence duration."""

    audio_end_ms: int


@dataclass(frozen=True)
class TurnCommitted:
    """``input_audio_buffer.committed``: the turn's samples at the input rate, padding included."""

    audio: Pcm = field(repr=False, compare=False)
    audio_start_ms: int
    audio_end_ms: int


@dataclass(frozen=True)
class IdleTimeout:
    """``input_audio_buffer.timeout_triggered``: no speech for ``idle_timeout_ms`` after the timer."""

    audio_start_ms: int
    audio_end_ms: int


TurnEvent = SpeechStarted | SpeechStopped | TurnCommitted | IdleTimeout


class VoiceActivityModel(Protocol):
    """What the detector needs from a VAD: probabilities of 512-sample windows of 16 kHz PCM."""

    window_samples: int

    def process(self, pcm: Pcm) -> list[float]: ...

    def reset(self) -> None: ...


class _Buffer:
    """Samples of one stream indexed by their absolute position; the front can be dropped."""

    def __init__(self) -> None:
        self._chunks: deque[Pcm] = deque()
        self.start = 0  # absolute index of the first sample held
        self.end = 0  # absolute index one past the last sample received

    def append(self, pcm: Pcm) -> None:
        if len(pcm):
            self._chunks.append(pcm.copy())
            self.end += len(pcm)

    def drop_before(self, index: int) -> None:
        index = min(index, self.end)
        while self._chunks and self.start + len(self._chunks[0]) <= index:
            self.start += len(self._chunks.popleft())
        if self._chunks and self.start < index:
            self._chunks[0] = self._chunks[0][index - self.start :]
        self.start = max(self.start, index)

    def slice(self, a: int, b: int) -> Pcm:
        a, b = max(a, self.start), min(b, self.end)
        parts = []
        pos = self.start
        for chunk in self._chunks:
            lo, hi = max(a, pos), min(b, pos + len(chunk))
            if lo < hi:
                parts.append(chunk[lo - pos : hi - pos])
            pos += len(chunk)
            if pos >= b:
                break
        if not parts:
            return np.zeros(0, dtype=np.int16)
        return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)


class TurnDetector:
    """Input audio buffer plus turn detection for one session (see the module docstring).

    Drive it with :meth:`append`, drain :meth:`poll_event`; :meth:`commit` and :meth:`clear` are the
    client's ``input_audio_buffer.commit`` / ``clear``. ``config`` ``None`` is ``turn_detection:
    null``. ``vad`` replaces the Silero model (tests); one is created per detector otherwise.

    With a ``batch`` (:class:`~voxwire.agent.vad.VadBatch`), windows are scored when the batch
    runs instead of inside :meth:`append`: their events are queued then, and ``on_events`` is
    called so the owner can drain them. Decisions and their times are the same either way, since
    they only depend on the samples.
    """

    def __init__(
        self,
        config: ServerVad | None = ServerVad(),
        sample_rate: int = 24000,
        *,
        max_turn_ms: int = 60_000,
        vad: VoiceActivityModel | None = None,
        batch: VadBatch | None = None,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, not {sample_rate}")
        if max_turn_ms < 1000:
            raise ValueError(f"max_turn_ms must be at least 1000, not {max_turn_ms}")
        self.sample_rate = sample_rate
        self.max_turn_ms = max_turn_ms
        self._vad = vad
        self._batch = batch
        #: Called after windows scored by the batch queued events (drain them with poll_event).
        self.on_events: Callable[[], None] | None = None
        self._epoch = 0  # bumped when the VAD path restarts: windows scored after that are stale
        if vad is not None and vad.window_samples != WINDOW:
            raise ValueError(f"the VAD must use {WINDOW}-sample windows at 16 kHz")
        self._buffer = _Buffer()
        self._events: deque[TurnEvent] = deque()
        self._config: ServerVad | None = None
        self._idle_from: int | None = None  # input sample where the idle timer started
        self._turn_start = 0  # input sample where the current talkspurt's audio begins
        self._end_frame: int | None = None  # placed end of speech while counting the silence
        self._floor_db = INITIAL_FLOOR_DB
        self._start_vad_path()
        self.configure(config)

    # -- configuration ----------------------------------------------------------------------------

    @property
    def config(self) -> ServerVad | None:
        return self._config

    def configure(self, config: ServerVad | None) -> None:
        """Apply a new ``turn_detection`` (``session.update``).

        New ``server_vad`` parameters apply from the next window, a talkspurt in progress goes on.
        Switching between ``server_vad`` and null drops a talkspurt in progress without events and
        keeps the buffered audio (in ``server_vad`` mode only its tail survives, as when idle).
        """
        if config is not None and self._vad is None:
            from voxwire.agent.vad import SileroVad

            self._vad = SileroVad(VAD_RATE)
        was = self._config
        self._config = config
        if (was is None) != (config is None):
            if config is not None:
                self._start_vad_path()
            self._speaking = False
            self._end_frame = None
        if config is None or config.idle_timeout_ms is None:
            self._idle_from = None

    def _start_vad_path(self) -> None:
        """(Re)start resampling and windowing at the current end of the input."""
        self._origin = self._buffer.end  # input sample where VAD time 0 lies
        self._epoch += 1
        if self._batch is not None and self._vad is not None:
            self._batch.discard(self._vad)  # type: ignore[arg-type]
        # float32 in and out: libsoxr dithers integer output (randomly), float output is exact and
        # independent of how the input is chunked, so the VAD's decisions are too.
        self._resampler: soxr.ResampleStream | None = None
        if self.sample_rate != VAD_RATE:
            quality = "LQ" if self.sample_rate > VAD_RATE else "MQ"
            self._resampler = soxr.ResampleStream(
                self.sample_rate, VAD_RATE, 1, dtype="float32", quality=quality
            )
        self._pending16 = np.zeros(0, dtype=np.int16)
        self._windows = 0  # windows processed since the origin
        self._frame_db: deque[float] = deque(maxlen=FRAMES_PER_WINDOW * (LOOKBACK_WINDOWS + 2))
        self._speaking = False
        self._end_frame = None
        self._onset_frame = 0
        self._prev_end_frame = 0
        self._level_db = SILENT_DB
        if self._vad is not None:
            self._vad.reset()

    # -- time -------------------------------------------------------------------------------------

    def _frame_to_sample(self, frame: int) -> int:
        """Input sample index of the start of 4 ms energy frame ``frame`` (counted from the origin)."""
        return self._origin + (frame * FRAME * self.sample_rate + VAD_RATE // 2) // VAD_RATE

    def _ms(self, sample: int) -> int:
        return sample * 1000 // self.sample_rate

    def _samples(self, ms: int) -> int:
        return ms * self.sample_rate // 1000

    @property
    def input_ms(self) -> int:
        """Milliseconds of input audio received in the session."""
        return self._ms(self._buffer.end)

    @property
    def speaking(self) -> bool:
        return self._speaking

    # -- input ------------------------------------------------------------------------------------

    def append(self, pcm: Pcm) -> None:
        """The caller's next samples (mono int16 at ``sample_rate``), in order."""
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise TypeError(f"input audio must be 1-D int16 PCM, not {pcm.dtype} {pcm.shape}")
        self._buffer.append(pcm)
        if self._config is None:
            if self._buffer.end - self._buffer.start >= self._samples(self.max_turn_ms):
                self._emit_commit(self._buffer.start, self._buffer.end)
            return
        self._feed_vad(pcm)
        if not self._speaking:
            # Keep what the next turn may need: prefix padding before the earliest onset we could
            # still place (LOOKBACK_WINDOWS before the next window), plus slack to trim rarely.
            keep = self._samples(self._config.prefix_padding_ms + 32 * (LOOKBACK_WINDOWS + 1))
            frontier = self._frame_to_sample(self._windows * FRAMES_PER_WINDOW)
            if frontier - self._buffer.start > 2 * keep:
                self._buffer.drop_before(frontier - keep)

    def _feed_vad(self, pcm: Pcm) -> None:
        if self._resampler is None:
            pcm16 = pcm
        else:
            y = self._resampler.resample_chunk(pcm.astype(np.float32) * (1.0 / 32768.0))
            y *= 32768.0
            # rint and clip as bare ufuncs, in place: np.clip's Python wrapper cost more than the math
            np.rint(y, out=y)
            np.minimum(np.maximum(y, -32768.0, out=y), 32767.0, out=y)
            pcm16 = y.astype(np.int16)
        if len(self._pending16):
            pcm16 = np.concatenate([self._pending16, pcm16])
        n = len(pcm16) - len(pcm16) % WINDOW
        for i in range(0, n, WINDOW):
            self._on_window(pcm16[i : i + WINDOW])
        self._pending16 = pcm16[n:].copy()

    def _on_window(self, window: Pcm) -> None:
        assert self._vad is not None
        if self._batch is None:
            (prob,) = self._vad.process(window)
            (db,) = frame_db(window.astype(np.float32).reshape(1, WINDOW) * (1.0 / 32768.0))
            self._decide(db, prob)
        else:  # the batch measures the levels too, for all its windows at once
            self._batch.submit(self._vad, window, functools.partial(self._scored, self._epoch))  # type: ignore[arg-type]

    def _scored(self, epoch: int, prob: float, db: list[float]) -> None:
        if epoch != self._epoch or self._config is None:
            return  # the VAD path restarted (session.update) after this window was queued
        self._decide(db, prob)
        if self._events and self.on_events is not None:
            self.on_events()

    def _decide(self, db: list[float], prob: float) -> None:
        """One window: its speech probability and its eight 4 ms frames' levels (dBFS)."""
        assert self._config is not None
        # Eight values: Python's max and sort beat numpy's per-call overhead from here on.
        self._frame_db.extend(db)
        k = self._windows
        self._windows += 1
        first = k * FRAMES_PER_WINDOW  # frame index of this window's first frame
        cfg = self._config
        if not self._speaking:
            if prob >= cfg.threshold:
                self._level_db = max(db)
                self._start_talkspurt(self._place_onset(first))
            else:
                ordered = sorted(db)
                half = FRAMES_PER_WINDOW // 2
                median = (ordered[half - 1] + ordered[half]) / 2  # np.median of an even count
                if median < self._floor_db:
                    self._floor_db = median
                else:
                    self._floor_db += FLOOR_RISE * (median - self._floor_db)
                self._check_idle(self._frame_to_sample(first + FRAMES_PER_WINDOW))
            return
        self._level_db = max(self._level_db, max(db))
        if prob >= cfg.threshold:
            self._end_frame = None
        elif prob < max(cfg.threshold - HYSTERESIS, 0.01) and self._end_frame is None:
            self._end_frame = self._place_end(first)
        window_end = self._frame_to_sample(first + FRAMES_PER_WINDOW)
        if self._end_frame is not None:
            end = self._frame_to_sample(self._end_frame) + self._samples(cfg.silence_duration_ms)
            if end <= window_end:
                self._stop_talkspurt(end)
                return
        cut = self._turn_start + self._samples(self.max_turn_ms)
        if cut <= window_end:
            self._stop_talkspurt(cut)
            self._start_talkspurt(first + FRAMES_PER_WINDOW, at=cut)

    # -- boundaries ---------------------------------------------------------------------------------

    def _energy_threshold(self) -> float:
        return max(self._floor_db + FLOOR_MARGIN_DB, self._level_db - PEAK_RANGE_DB)

    def _db(self, frame: int) -> float:
        """Energy of a frame still in the look-back history (older frames count as silent)."""
        total = self._windows * FRAMES_PER_WINDOW
        age = total - frame
        if age <= 0 or age > len(self._frame_db):
            return SILENT_DB
        return self._frame_db[len(self._frame_db) - age]

    def _place_onset(self, first: int) -> int:
        """Frame where the talkspurt whose VAD onset is the window at ``first`` begins."""
        t = self._energy_threshold()
        lo = max(first - LOOKBACK_WINDOWS * FRAMES_PER_WINDOW, self._prev_end_frame, 0)
        i = first
        while i < first + FRAMES_PER_WINDOW and self._db(i) < t:
            i += 1
        if i == first + FRAMES_PER_WINDOW:  # nothing loud in the window: trust the VAD
            return first
        while i > lo and self._db(i - 1) >= t:
            i -= 1
        return i

    def _place_end(self, first: int) -> int:
        """Frame one past the end of speech, given that the window at ``first`` was not speech."""
        t = self._energy_threshold()
        lo = max(first - LOOKBACK_WINDOWS * FRAMES_PER_WINDOW, self._onset_frame + 1)
        i = first
        while i < first + FRAMES_PER_WINDOW and self._db(i) >= t:
            i += 1
        if i > first:
            return i
        while i > lo and self._db(i - 1) < t:
            i -= 1
        return i

    # -- state changes ------------------------------------------------------------------------------

    def _start_talkspurt(self, onset_frame: int, at: int | None = None) -> None:
        """Speech from ``onset_frame``; its audio starts ``prefix_padding_ms`` earlier, or ``at``
        (a turn cut at ``max_turn_ms`` goes on from the cut)."""
        assert self._config is not None
        self._speaking = True
        self._end_frame = None
        self._idle_from = None
        self._onset_frame = onset_frame
        if at is None:
            pad = self._samples(self._config.prefix_padding_ms)
            at = self._frame_to_sample(onset_frame) - pad
        self._turn_start = max(self._buffer.start, at)
        self._events.append(SpeechStarted(self._ms(self._turn_start)))

    def _stop_talkspurt(self, end: int) -> None:
        self._speaking = False
        self._prev_end_frame = self._end_frame if self._end_frame is not None else self._onset_frame
        self._end_frame = None
        self._level_db = SILENT_DB
        self._events.append(SpeechStopped(self._ms(end)))
        self._emit_commit(self._turn_start, end)

    def _emit_commit(self, start: int, end: int) -> None:
        audio = self._buffer.slice(start, end)
        self._buffer.drop_before(end)
        self._events.append(TurnCommitted(audio, self._ms(start), self._ms(end)))

    def _check_idle(self, now: int) -> None:
        cfg = self._config
        if self._idle_from is None or cfg is None or cfg.idle_timeout_ms is None:
            return
        deadline = self._idle_from + self._samples(cfg.idle_timeout_ms)
        if now >= deadline:
            self._events.append(IdleTimeout(self._ms(self._idle_from), self._ms(deadline)))
            self._idle_from = None

    # -- client and agent-layer actions -------------------------------------------------------------

    def poll_event(self) -> TurnEvent | None:
        return self._events.popleft() if self._events else None

    def feed(self, pcm: Pcm) -> list[TurnEvent]:
        """:meth:`append`, then every event it produced (and any still queued), in order."""
        self.append(pcm)
        events = list(self._events)
        self._events.clear()
        return events

    def commit(self) -> TurnCommitted | None:
        """``input_audio_buffer.commit``: the buffered audio as a turn, or None if there is none.

        In ``server_vad`` mode during speech this is the talkspurt so far (with its padding); while
        idle it is the last ``prefix_padding_ms`` of audio, all the buffer keeps then. With
        ``turn_detection`` null it is everything since the last commit or clear.
        """
        end = self._buffer.end
        if self._config is None:
            start = self._buffer.start
        elif self._speaking:
            start = self._turn_start
            self._speaking = False
            self._end_frame = None
            self._prev_end_frame = self._windows * FRAMES_PER_WINDOW
        else:
            start = max(self._buffer.start, end - self._samples(self._config.prefix_padding_ms))
        if end <= start:
            return None
        audio = self._buffer.slice(start, end)
        self._buffer.drop_before(end)
        return TurnCommitted(audio, self._ms(start), self._ms(end))

    def clear(self) -> None:
        """``input_audio_buffer.clear``: drop the buffered audio; a talkspurt ends without events."""
        self._buffer.drop_before(self._buffer.end)
        if self._speaking:
            self._speaking = False
            self._end_frame = None
            self._prev_end_frame = self._windows * FRAMES_PER_WINDOW

    def start_idle_timer(self) -> None:
        """The last response's audio finished playing: start ``idle_timeout_ms`` from here."""
        if self._config is not None and self._config.idle_timeout_ms is not None and not self._speaking:
            self._idle_from = self._buffer.end
