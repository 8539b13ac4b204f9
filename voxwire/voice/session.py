"""The voice layer of one call: Realtime events, turns, responses, playback and barge-in. Sans-IO.

Theory of operation
-------------------
A :class:`VoiceSession` sits between three things that all belong to one call:

* the **client**, speaking the OpenAI Realtime event protocol on the ``oai-events`` data channel
  (:meth:`on_client_event` in, :meth:`poll_server_event` out, JSON text);
* the **caller's audio** (:meth:`on_input_audio`, PCM at the agent's rate) which, with
  ``turn_detection: server_vad``, goes through a turn detector that decides when the user starts
  and stops speaking; with ``turn_detection: null`` it fills the input buffer until the client
  commits it;
* the **agent**, which answers turns. The session never runs the agent itself: it asks for a
  response with a :class:`StartResponse` command (:meth:`poll_command`) and hears back through
  :meth:`on_agent_output` / :meth:`on_agent_done`; the asyncio edge runs the agent's generator.

Output audio is queued on the call's :class:`~voxwire.media.pipeline.OutboundAudio` tagged with its
response id; the call reports every such frame that actually leaves (:meth:`on_frame_sent`), which is
what ``output_audio_buffer.started/stopped`` and truncation are based on: a truncated item keeps
exactly the audio the user heard (RTP frames sent), never what was merely generated.

**Barge-in.** When the user starts speaking while a response is generating or playing and
``interrupt_response`` is on (or the client sends ``response.cancel`` / ``output_audio_buffer.clear``):
every queued output frame is dropped at once (nothing more leaves after the current 20 ms tick),
the agent's generator is cancelled, the assistant item is truncated to the audio sent, and
``output_audio_buffer.cleared``, ``conversation.item.truncated`` and ``response.done`` (cancelled)
go to the client. The agent hears of it too, with a :class:`ResponseInterrupted` command for every
response cut short, generating or only still playing: an agent that keeps the conversation on a
model server (``realtime-ws``) truncates it there to the same audio. Input audio and interrupts are
never queued behind output.

Limits: the input buffer holds at most ``max_input_seconds`` (older audio is dropped and counted);
client events are bounded by :mod:`voxwire.realtime.events`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from voxwire.agent.base import AgentOutput, AudioOut, Message, Pcm, TextOut, Turn, UserTranscript
from voxwire.agent.turns import IdleTimeout, SpeechStarted, SpeechStopped, TurnCommitted, TurnEvent
from voxwire.media.pipeline import OutboundAudio, SentFrame
from voxwire.media.resample import EMPTY_PCM, Resampler
from voxwire.realtime.conversation import CancelReason, Conversation
from voxwire.realtime.events import (
    EventError,
    InputAudioBufferAppendEvent,
    InputAudioBufferClearEvent,
    InputAudioBufferCommitEvent,
    MessageItem,
    OutputAudioBufferClearEvent,
    ResponseCancelEvent,
    ResponseCreateEvent,
    ServerEvent,
    SessionUpdateEvent,
    parse_client_event,
    serialize_server_event,
)
from voxwire.realtime.session import VadParams, vad_params

if TYPE_CHECKING:
    from voxwire.agent.vad import VadBatch

#: The Realtime API's PCM input format: 16-bit mono at 24 kHz.
REALTIME_PCM_RATE = 24_000
#: OpenAI rejects committing less than 100 ms of audio.
MIN_COMMIT_MS = 100
FRAME_MS = 20


# -- the turn detector, as the voice session needs it (voxwire.agent.turns.TurnDetector) ----------


class TurnDetector(Protocol):
    def feed(self, pcm: Pcm) -> list[TurnEvent]: ...

    def poll_event(self) -> TurnEvent | None:
        """An event decided after feed() returned (a batched VAD), or None."""

    def commit(self) -> TurnCommitted | None:
        """The audio buffered since the last turn (client commit with VAD on)."""

    def clear(self) -> None: ...

    def start_idle_timer(self) -> None: ...


TurnDetectorFactory = Callable[[VadParams, int], TurnDetector]


def server_vad_detector(
    params: VadParams, sample_rate: int, *, batch: VadBatch | None = None
) -> TurnDetector:
    """The Silero-based detector with the session's ``server_vad`` parameters; with a ``batch``
    its windows are scored together with other sessions' (bind it with functools.partial)."""
    from voxwire.agent.turns import ServerVad
    from voxwire.agent.turns import TurnDetector as SileroTurnDetector

    return SileroTurnDetector(ServerVad(**dataclasses.asdict(params)), sample_rate, batch=batch)


# -- commands to the asyncio edge ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartResponse:
    response_id: str
    turn: Turn


@dataclass(frozen=True, slots=True)
class CancelResponse:
    """Stop the response's generator (barge-in while it still runs)."""

    response_id: str


@dataclass(frozen=True, slots=True)
class ResponseInterrupted:
    """The response's playback was cut short after ``audio_end_ms`` of its audio left (what the
    user heard; 0 when none did), whether or not its generator still runs. Comes before the
    response's :class:`CancelResponse`, if any; the call hands it to the agent session's optional
    ``interrupted`` hook (:class:`~voxwire.agent.base.AgentSession`)."""

    response_id: str
    audio_end_ms: int


Command = StartResponse | CancelResponse | ResponseInterrupted


@dataclass(slots=True)
class _Response:
    id: str
    item_id: str | None = None
    generating: bool = True
    frames_sent: int = 0
    started_playing: bool = False


class VoiceSession:
    # One instance per call (slots: ~50 bytes less each).
    __slots__ = (
        "conversation",
        "outbound",
        "sample_rate",
        "_make_detector",
        "_detector",
        "_vad",
        "_input",
        "_input_samples",
        "_max_input",
        "_append_resampler",
        "_last_turn",
        "_responses",
        "_events",
        "_commands",
        "counters",
        "opened",
        "on_wake",
    )

    def __init__(
        self,
        conversation: Conversation,
        outbound: OutboundAudio,
        sample_rate: int,
        *,
        turn_detector: TurnDetectorFactory | None = None,
        max_input_seconds: float = 60.0,
    ) -> None:
        self.conversation = conversation
        self.outbound = outbound
        self.sample_rate = sample_rate
        self._make_detector = turn_detector
        self._detector: TurnDetector | None = None
        self._vad: VadParams | None = None
        self._input: list[Pcm] = []  # 20 ms chunks; a list: an empty deque costs 760 bytes a call
        self._input_samples = 0
        self._max_input = int(max_input_seconds * sample_rate)
        self._append_resampler: Resampler | None = None  # made by the first input_audio_buffer.append
        self._last_turn: Pcm = EMPTY_PCM  # shared and read-only until the first turn
        self._responses: dict[str, _Response] = {}
        self._events: list[str] = []
        self._commands: list[Command] = []
        self.counters: dict[str, int] = {}
        self.opened = False
        #: Called when turn events arrived outside :meth:`on_input_audio` (a batched VAD scored
        #: queued windows): the owner should pump this session's events and commands.
        self.on_wake: Callable[[], None] | None = None
        self._configure()

    # -- outputs --------------------------------------------------------------------------------

    def has_output(self) -> bool:
        """Whether a server event or a command waits to be polled."""
        return bool(self._events or self._commands)

    def poll_server_event(self) -> str | None:
        return self._events.pop(0) if self._events else None

    def poll_command(self) -> Command | None:
        return self._commands.pop(0) if self._commands else None

    # -- inputs ---------------------------------------------------------------------------------

    def open(self) -> None:
        """The client's event channel is open: greet it with ``session.created``."""
        if not self.opened:
            self.opened = True
            self._emit(self.conversation.created())

    def on_client_event(self, text: str | bytes) -> None:
        try:
            event = parse_client_event(text)
        except EventError as err:
            self._emit(self.conversation.error(err))
            return
        try:
            if isinstance(event, InputAudioBufferAppendEvent):
                pcm = np.frombuffer(event.audio_bytes(), dtype="<i2").astype(np.int16)
                if self.sample_rate != REALTIME_PCM_RATE:
                    if self._append_resampler is None:
                        self._append_resampler = Resampler(REALTIME_PCM_RATE, self.sample_rate)
                    pcm = self._append_resampler.process(pcm)
                self._take_input(pcm)
            elif isinstance(event, InputAudioBufferCommitEvent):
                self._commit_by_client()
            elif isinstance(event, InputAudioBufferClearEvent):
                self._clear_input()
                self._emit(self.conversation.input_audio_cleared())
            elif isinstance(event, OutputAudioBufferClearEvent):
                self._interrupt("client_cancelled", cancel=True)
            elif isinstance(event, ResponseCancelEvent):
                # Over WebRTC a response is still "active" for the user while its audio plays, even
                # after response.done: cancelling then stops the playback.
                target = event.response_id or next(iter(self._responses), None)
                if target is None or target not in self._responses:
                    raise EventError(
                        "response_cancel_not_active", "Cancellation failed: no active response found"
                    )
                self._interrupt("client_cancelled", cancel=True)
            elif isinstance(event, ResponseCreateEvent):
                self._start_response(event)
            else:
                self._emit(self.conversation.handle(event))
                if isinstance(event, SessionUpdateEvent):
                    self._configure()
        except EventError as err:
            err.event_id = event.event_id
            self._emit(self.conversation.error(err))

    def on_input_audio(self, pcm: Pcm) -> None:
        """The caller's audio, in order (from RTP)."""
        self._take_input(pcm)

    def on_agent_output(self, response_id: str, output: AgentOutput) -> None:
        response = self._responses.get(response_id)
        if response is None or not response.generating:
            self._count("agent_output_after_end")
            return
        if isinstance(output, UserTranscript):
            item = self._last_user_item()
            if item is not None:
                self._emit(self.conversation.input_transcript(item, output.text))
            return
        if response.item_id is None:
            response.item_id, events = self.conversation.add_assistant_message(response_id)
            self._emit(events)
        if isinstance(output, AudioOut):
            pcm = output.pcm
            self.outbound.play(pcm, response_id)
            self._emit(
                self.conversation.add_output_audio(
                    response_id, response.item_id, 1000 * len(pcm) / self.sample_rate
                )
            )
        elif isinstance(output, TextOut):
            self._emit(self.conversation.add_output_text(response_id, response.item_id, output.delta))

    def on_agent_done(self, response_id: str, error: str | None = None) -> None:
        response = self._responses.get(response_id)
        if response is None or not response.generating:
            return
        response.generating = False
        self.outbound.finish()
        if error:
            self._emit(self.conversation.error(EventError("agent_error", error)))
        self._emit(self.conversation.finish_response(response_id, "failed" if error else "completed"))
        self._maybe_stopped(response)

    def on_frame_sent(self, frame: SentFrame) -> None:
        """A frame of output audio left (the call reports those of responses)."""
        if frame.tag is None:
            return
        response = self._responses.get(frame.tag)
        if response is None:
            return
        response.frames_sent += 1
        if not response.started_playing:
            response.started_playing = True
            self._emit(self.conversation.output_audio_started(response.id))
        self._maybe_stopped(response)

    # -- internals ------------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _emit(self, events: list[ServerEvent]) -> None:
        if self.opened:
            self._events.extend(serialize_server_event(e) for e in events)

    def _configure(self) -> None:
        """(Re)build the turn detector from the session's ``turn_detection``."""
        vad = vad_params(self.conversation.settings)
        if vad == self._vad and (self._detector is not None or self._make_detector is None or vad is None):
            return
        self._vad = vad
        self._detector = self._make_detector(vad, self.sample_rate) if vad and self._make_detector else None
        if self._detector is not None and hasattr(self._detector, "on_events"):
            self._detector.on_events = functools.partial(self._late_turn_events, self._detector)

    def _late_turn_events(self, detector: TurnDetector) -> None:
        """Turn events from windows a batched VAD scored after :meth:`on_input_audio` returned."""
        if detector is not self._detector:
            return  # replaced by a session.update since
        while (event := detector.poll_event()) is not None:
            self._turn_event(event)
        if self.on_wake is not None:
            self.on_wake()

    def _take_input(self, pcm: Pcm) -> None:
        if self._detector is None:
            if not self.opened:
                return  # no event channel or sideband yet: nobody could commit this audio
            self._input.append(pcm)
            self._input_samples += len(pcm)
            while self._input_samples > self._max_input and self._input:
                dropped = self._input.pop(0)  # only past max_input_seconds
                self._input_samples -= len(dropped)
                self._count("input_dropped_frames")
            return
        for event in self._detector.feed(pcm):
            self._turn_event(event)

    def _turn_event(self, event: TurnEvent) -> None:
        try:
            self._on_turn_event(event)
        except EventError as err:
            # E.g. a turn committed while the last response is still generating (with
            # interrupt_response off): the client hears why, and RTP input never raises.
            self._emit(self.conversation.error(err))

    def _on_turn_event(self, event: TurnEvent) -> None:
        vad = self._vad
        assert vad is not None, "turn events without turn detection"
        if isinstance(event, SpeechStarted):
            _, events = self.conversation.speech_started(event.audio_start_ms)
            self._emit(events)
            if vad.interrupt_response:
                self._interrupt("turn_detected", cancel=True)
        elif isinstance(event, SpeechStopped):
            self._emit(self.conversation.speech_stopped(event.audio_end_ms))
        elif isinstance(event, TurnCommitted):
            self._commit(event.audio)
            if vad.create_response:
                self._start_response(None)
        elif isinstance(event, IdleTimeout):
            self._emit(self.conversation.idle_timeout(event.audio_start_ms, event.audio_end_ms))
            if vad.create_response:
                self._start_response(None)

    def _commit_by_client(self) -> None:
        if self._detector is not None:
            turn = self._detector.commit()
            audio = turn.audio if turn is not None else np.zeros(0, dtype=np.int16)
        else:
            audio = self._drain_input()
        if 1000 * len(audio) < MIN_COMMIT_MS * self.sample_rate:
            raise EventError(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least {MIN_COMMIT_MS}ms "
                f"of audio, but buffer only has {1000 * len(audio) / self.sample_rate:.2f}ms of audio.",
            )
        self._commit(audio)

    def _commit(self, audio: Pcm) -> None:
        self._last_turn = audio
        _, events = self.conversation.commit_input_audio()
        self._emit(events)

    def _drain_input(self) -> Pcm:
        audio = np.concatenate(self._input) if self._input else np.zeros(0, dtype=np.int16)
        self._clear_input()
        return audio

    def _clear_input(self) -> None:
        self._input.clear()
        self._input_samples = 0
        if self._detector is not None:
            self._detector.clear()

    def _last_user_item(self) -> str | None:
        for item in reversed(self.conversation.items):
            if isinstance(item, MessageItem) and item.role == "user":
                return item.id
        return None

    def _start_response(self, event: ResponseCreateEvent | None) -> None:
        params = event.response if event is not None else None
        response_id, events = self.conversation.create_response(params)
        self._emit(events)
        self._responses[response_id] = _Response(response_id)
        session = self.conversation.settings
        turn = Turn(
            audio=self._last_turn,
            sample_rate=self.sample_rate,
            item_id=self._last_user_item(),
            response_id=response_id,
            instructions=(params.instructions if params and params.instructions else session.instructions)
            or "",
            history=tuple(self._history()),
        )
        self._commands.append(StartResponse(response_id, turn))

    def _history(self) -> list[Message]:
        out = []
        for item in self.conversation.items:
            if isinstance(item, MessageItem) and item.role in ("user", "assistant", "system"):
                text = " ".join(t for part in item.content if (t := _text_of(part)))
                if text:
                    out.append(Message(item.role, text))
        return out

    def _interrupt(self, reason: CancelReason, *, cancel: bool) -> None:
        """Barge-in: silence now, cancel generation, truncate to what was heard."""
        if not self._responses:
            return
        self._count("interruptions")
        dropped = self.outbound.flush()
        for response in list(self._responses.values()):
            if response.started_playing or dropped:
                self._emit(self.conversation.output_audio_cleared(response.id))
            heard_ms = response.frames_sent * FRAME_MS
            if response.item_id is not None and response.started_playing:
                try:
                    self._emit(self.conversation.truncate_item(response.item_id, 0, heard_ms))
                except EventError:
                    self._count("truncate_refused")
            self._commands.append(ResponseInterrupted(response.id, heard_ms))
            if response.generating and cancel:
                response.generating = False
                self._commands.append(CancelResponse(response.id))
                self._emit(self.conversation.finish_response(response.id, "cancelled", reason))
            del self._responses[response.id]

    def _maybe_stopped(self, response: _Response) -> None:
        if not response.generating and not self.outbound.queued(response.id):
            if response.started_playing:
                self._emit(self.conversation.output_audio_stopped(response.id))
                if self._detector is not None:
                    self._detector.start_idle_timer()  # idle_timeout_ms counts from playback end
            del self._responses[response.id]


def _text_of(part: object) -> str:
    for attr in ("text", "transcript"):
        value = getattr(part, attr, None)
        if isinstance(value, str):
            return value
    return ""


__all__ = [
    "CancelResponse",
    "Command",
    "ResponseInterrupted",
    "SpeechStarted",
    "SpeechStopped",
    "StartResponse",
    "TurnCommitted",
    "TurnDetector",
    "VoiceSession",
]
