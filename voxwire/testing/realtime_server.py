"""A local Realtime model server for tests: OpenAI's WebSocket protocol (GA events), a fake model.

Theory of operation
-------------------
``GET /v1/realtime?model=...`` upgrades to a WebSocket after checking ``Authorization: Bearer
<key>`` (or the browser form, the ``openai-insecure-api-key.<key>`` subprotocol); anything else is
a 401 with an OpenAI-shaped error body and no upgrade. Each connection is one session with its own
:class:`~voxwire.realtime.conversation.Conversation`, which builds every server event, so the
events have exactly the GA names, shapes and order the gateway itself produces:

* on connect ``session.created``; ``session.update`` -> ``session.updated``;
* ``input_audio_buffer.append`` fills the input buffer (PCM16, 24 kHz); ``commit`` ->
  ``input_audio_buffer.committed``, ``conversation.item.added``, ``conversation.item.done``
  (less than 100 ms is the error ``input_audio_buffer_commit_empty``); ``clear`` -> ``cleared``;
* ``response.create`` -> ``response.created``, ``response.output_item.added``,
  ``conversation.item.added``, ``response.content_part.added``, then ``response.output_audio.delta``
  chunks (``chunk_ms`` each; by default the last committed input played back, or a configured
  tone) interleaved with ``response.output_audio_transcript.delta`` words, then the ``done`` events
  and ``response.done``;
* ``response.cancel`` stops the stream: the ``done`` events and ``response.done`` with status
  ``cancelled`` (reason ``client_cancelled``); with nothing in progress it is the error
  ``response_cancel_not_active``;
* ``conversation.item.truncate`` -> ``conversation.item.truncated`` (or an error past the audio);
* every client event is validated by :func:`~voxwire.realtime.events.parse_client_event`; a bad
  one gets an ``error`` event and the session stays open.

Turn detection starts OFF (``turn_detection: null``), unlike OpenAI's default, so a client that
never enables it gets no surprises; a session that sets ``server_vad`` gets a plain energy gate
(not a model): ``speech_started`` / ``speech_stopped``, a commit, and with ``create_response`` a
response; ``interrupt_response`` cancels the one in progress (reason ``turn_detected``).

Test hooks, all on :class:`RealtimeTestServer`: :meth:`~RealtimeTestServer.fail_next_response`,
:meth:`~RealtimeTestServer.drop_next_response`, ``paced`` (deltas in real time rather than as fast
as the socket takes them), ``tone_hz`` / ``transcript``, :meth:`~RealtimeTestServer.inject`, and
the record of events received and sent with :meth:`~RealtimeTestServer.until` to wait on it
(woken by each event, no polling).

Ours, not OpenAI's: the ``model`` query parameter is required (400 without it); the input buffer
holds at most ``MAX_BUFFER_SECONDS``; ``output_audio_buffer.clear`` is refused (WebRTC/SIP only).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from aiohttp import WSMsgType, web

from voxwire.realtime.conversation import CancelReason, Conversation, counter_ids
from voxwire.realtime.events import (
    ClientEvent,
    ErrorDetail,
    ErrorEvent,
    EventError,
    InputAudioBufferAppendEvent,
    InputAudioBufferClearEvent,
    InputAudioBufferCommitEvent,
    OutputAudioBufferClearEvent,
    ResponseCancelEvent,
    ResponseCreateEvent,
    ResponseCreateParams,
    ResponseDoneEvent,
    ResponseStatusDetails,
    ResponseStatusError,
    ServerEvent,
    SessionUpdateEvent,
    parse_client_event,
    serialize_server_event,
)
from voxwire.realtime.session import AudioInput, SessionAudio, SessionUpdate, VadParams, vad_params

RATE = 24_000
MIN_COMMIT_MS = 100
#: OpenAI accepts client events up to 15 MiB (one append's audio).
MAX_CLIENT_EVENT_BYTES = 15 * 1024 * 1024
#: Ours: the input buffer's bound (appends past it are refused with an error).
MAX_BUFFER_SECONDS = 300
#: Ours: how many events of each direction the record keeps.
MAX_RECORDED = 100_000
VAD_FRAME = RATE // 50  # 20 ms
DEFAULT_MODEL = "gpt-realtime"


def tone(hz: float, seconds: float, amplitude: int = 8000) -> bytes:
    """A sine tone as PCM16 little-endian at 24 kHz."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


@dataclass
class RealtimeTestServer:
    """A running server; see the module docstring. Mutate the knobs between responses."""

    api_key: str
    #: Audio of each response: None plays back the last committed input (a 440 Hz tone if none).
    tone_hz: float | None = None
    tone_seconds: float = 1.0
    #: Transcript of each response; None says how much audio it heard.
    transcript: str | None = None
    #: Duration of each ``response.output_audio.delta``.
    chunk_ms: int = 100
    #: Stream deltas in real time (one ``chunk_ms`` apart) rather than as fast as possible.
    paced: bool = False
    url: str = ""
    #: Every client event received (all connections), and every server event sent, in order.
    received: deque[ClientEvent] = field(default_factory=lambda: deque(maxlen=MAX_RECORDED))
    sent: deque[ServerEvent] = field(default_factory=lambda: deque(maxlen=MAX_RECORDED))
    #: The audio of each commit, as PCM16 bytes.
    committed: list[bytes] = field(default_factory=list)
    connections: int = 0
    rejected: int = 0
    _failures: deque[tuple[str, str]] = field(default_factory=deque)
    _drops: deque[int] = field(default_factory=deque)  # audio deltas before each cut
    _sessions: list[_ServerSession] = field(default_factory=list)
    _waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    # -- hooks ------------------------------------------------------------------------------------

    def fail_next_response(
        self, message: str = "The server had an error.", code: str = "server_error"
    ) -> None:
        """The next response fails: ``response.created``, an ``error`` event, ``response.done`` failed."""
        self._failures.append((message, code))

    def drop_next_response(self, after_deltas: int = 1) -> None:
        """The next response's connection is cut (TCP abort, no close frame) after ``after_deltas``
        audio deltas."""
        self._drops.append(after_deltas)

    async def inject(self, event: ServerEvent) -> None:
        """Send an arbitrary server event on every open connection."""
        for session in list(self._sessions):
            await session.send([event])

    def types(self) -> list[str]:
        """Types of the client events received, in order."""
        return [e.type for e in self.received]

    def of_type(self, kind: str) -> list[ClientEvent]:
        return [e for e in self.received if e.type == kind]

    def sent_of_type(self, kind: str) -> list[ServerEvent]:
        return [e for e in self.sent if e.type == kind]

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds, re-checked whenever an event is received or sent."""
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            self._waiters = [w for w in self._waiters if w[1] is not future]

    async def close(self) -> None:
        for session in list(self._sessions):
            await session.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- internals --------------------------------------------------------------------------------

    def _changed(self) -> None:
        for predicate, future in self._waiters:
            if not future.done() and predicate():
                future.set_result(None)

    def _record_received(self, event: ClientEvent) -> None:
        self.received.append(event)
        self._changed()

    def _record_sent(self, event: ServerEvent) -> None:
        self.sent.append(event)
        self._changed()

    def _authorized(self, request: web.Request) -> bool:
        offered = request.headers.get("Authorization", "")
        token = offered[7:] if offered.startswith("Bearer ") else None
        if token is None:
            for proto in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
                proto = proto.strip()
                if proto.startswith("openai-insecure-api-key."):
                    token = proto[len("openai-insecure-api-key.") :]
        return token is not None and hmac.compare_digest(token.encode(), self.api_key.encode())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            self.rejected += 1
            return _error_response(
                401,
                "invalid_api_key",
                "Incorrect API key provided. You can find your API key in your settings.",
            )
        model = request.query.get("model")
        if not model:
            return _error_response(400, "missing_required_parameter", "Missing required parameter: 'model'.")
        ws = web.WebSocketResponse(protocols=("realtime",), max_msg_size=MAX_CLIENT_EVENT_BYTES)
        await ws.prepare(request)
        self.connections += 1
        session = _ServerSession(self, ws, request, model)
        self._sessions.append(session)
        try:
            await session.run()
        finally:
            self._sessions.remove(session)
            await session.shutdown()
        return ws


def _error_response(status: int, code: str, message: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code, "param": None}}
    return web.json_response(body, status=status)


class _ServerSession:
    """One WebSocket connection: a conversation, an input buffer, at most one streaming response."""

    def __init__(
        self, server: RealtimeTestServer, ws: web.WebSocketResponse, request: web.Request, model: str
    ):
        self.server = server
        self.ws = ws
        self.request = request
        self.conversation = Conversation(counter_ids(), model=model)
        # Turn detection starts off here (see the module docstring): applied before session.created.
        off = SessionUpdate(type="realtime", audio=SessionAudio(input=AudioInput(turn_detection=None)))
        self.conversation.handle(SessionUpdateEvent(session=off))
        self.buffer: list[bytes] = []
        self.buffer_bytes = 0
        self.last_input = b""
        self.streams: dict[str, asyncio.Task[None]] = {}
        # Energy-gate VAD state (only when the session turns server_vad on).
        self.vad: VadParams | None = None
        self.audio_samples = 0  # all audio ever appended, for audio_start_ms / audio_end_ms
        self.vad_rest = np.zeros(0, dtype=np.int16)
        self.speaking = False
        self.silence_samples = 0

    async def send(self, events: list[ServerEvent]) -> None:
        for event in events:
            if self.ws.closed:
                return
            await self.ws.send_str(serialize_server_event(event))
            self.server._record_sent(event)

    async def run(self) -> None:
        await self.send(self.conversation.created())
        async for msg in self.ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            try:
                event = parse_client_event(msg.data, max_bytes=MAX_CLIENT_EVENT_BYTES)
            except EventError as err:
                await self.send(self.conversation.error(err))
                continue
            self.server._record_received(event)
            try:
                await self.dispatch(event)
            except EventError as err:
                err.event_id = event.event_id
                await self.send(self.conversation.error(err))

    async def dispatch(self, event: ClientEvent) -> None:
        conv = self.conversation
        if isinstance(event, InputAudioBufferAppendEvent):
            audio = event.audio_bytes()
            if self.buffer_bytes + len(audio) > MAX_BUFFER_SECONDS * RATE * 2:
                raise EventError(
                    "input_audio_buffer_full", f"The input audio buffer holds at most {MAX_BUFFER_SECONDS} s."
                )
            self.buffer.append(audio)
            self.buffer_bytes += len(audio)
            if self.vad is not None:
                await self.detect(np.frombuffer(audio[: len(audio) // 2 * 2], dtype="<i2"))
            else:
                self.audio_samples += len(audio) // 2
        elif isinstance(event, InputAudioBufferCommitEvent):
            await self.commit()
        elif isinstance(event, InputAudioBufferClearEvent):
            self.buffer, self.buffer_bytes = [], 0
            await self.send(conv.input_audio_cleared())
        elif isinstance(event, ResponseCreateEvent):
            await self.start_response(event.response)
        elif isinstance(event, ResponseCancelEvent):
            await self.cancel(event.response_id, "client_cancelled")
        elif isinstance(event, OutputAudioBufferClearEvent):
            raise EventError(
                "invalid_value", "output_audio_buffer.clear is only supported on WebRTC and SIP connections."
            )
        else:  # session.update and conversation.item.*: the conversation answers
            await self.send(conv.handle(event))
            if isinstance(event, SessionUpdateEvent):
                self.vad = vad_params(conv.session)

    async def commit(self) -> None:
        audio = b"".join(self.buffer)
        ms = 1000 * len(audio) / 2 / RATE
        if ms < MIN_COMMIT_MS:
            raise EventError(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least {MIN_COMMIT_MS}ms "
                f"of audio, but buffer only has {ms:.2f}ms of audio.",
            )
        self.buffer, self.buffer_bytes = [], 0
        self.last_input = audio
        self.server.committed.append(audio)
        await self.send(self.conversation.commit_input_audio()[1])

    async def detect(self, pcm: np.ndarray) -> None:
        """The energy gate: 20 ms frames above ``threshold`` x 0.1 of full scale RMS are speech."""
        vad = self.vad
        assert vad is not None, "detect() only runs with server_vad on"
        samples = np.concatenate((self.vad_rest, pcm))
        whole = len(samples) - len(samples) % VAD_FRAME
        self.vad_rest = samples[whole:]
        for start in range(0, whole, VAD_FRAME):
            frame = samples[start : start + VAD_FRAME].astype(np.float64)
            loud = float(np.sqrt(np.mean(frame * frame))) >= vad.threshold * 0.1 * 32768
            at_ms = 1000 * self.audio_samples // RATE
            self.audio_samples += VAD_FRAME
            if loud and not self.speaking:
                self.speaking, self.silence_samples = True, 0
                _, events = self.conversation.speech_started(max(0, at_ms - vad.prefix_padding_ms))
                await self.send(events)
                active = self.conversation.active_response_id
                if vad.interrupt_response and active in self.streams:
                    await self.cancel(active, "turn_detected")
            elif self.speaking and loud:
                self.silence_samples = 0
            elif self.speaking:
                self.silence_samples += VAD_FRAME
                if 1000 * self.silence_samples >= vad.silence_duration_ms * RATE:
                    self.speaking = False
                    end_ms = at_ms + 20 - 1000 * self.silence_samples // RATE
                    await self.send(self.conversation.speech_stopped(end_ms))
                    await self.commit()
                    if vad.create_response:
                        await self.start_response(None)

    async def start_response(self, params: ResponseCreateParams | None) -> None:
        response_id, events = self.conversation.create_response(params)
        await self.send(events)
        task = asyncio.get_running_loop().create_task(self.stream(response_id))
        self.streams[response_id] = task
        task.add_done_callback(lambda _: self.streams.pop(response_id, None))

    async def cancel(self, response_id: str | None, reason: CancelReason) -> None:
        target = response_id or self.conversation.active_response_id
        task = self.streams.pop(target, None) if target else None
        if task is not None:
            task.cancel()
        await self.send(self.conversation.cancel_response(target, reason))

    def reply_audio(self) -> bytes:
        server = self.server
        if server.tone_hz is not None:
            return tone(server.tone_hz, server.tone_seconds)
        return self.last_input or tone(440, 0.5)

    async def stream(self, response_id: str) -> None:
        server, conv = self.server, self.conversation
        if server._failures:
            message, code = server._failures.popleft()
            error = ErrorEvent(
                event_id=f"event_fail_{response_id}",
                error=ErrorDetail(type="server_error", code=code, message=message, param=None, event_id=None),
            )
            await self.send([error])
            *events, done = conv.finish_response(response_id, "failed")
            assert isinstance(done, ResponseDoneEvent), "finish_response ends with response.done"
            details = ResponseStatusDetails(
                type="failed", error=ResponseStatusError(type="server_error", code=code, message=message)
            )
            failed = done.response.model_copy(update={"status_details": details})
            await self.send([*events, done.model_copy(update={"response": failed})])
            return
        drop = server._drops.popleft() if server._drops else None
        item_id, events = conv.add_assistant_message(response_id)
        await self.send(events)
        audio = self.reply_audio()
        seconds = len(audio) / 2 / RATE
        text = (
            server.transcript if server.transcript is not None else f"I heard {seconds:.1f} seconds of audio."
        )
        words = re.findall(r"\S+\s*", text)
        chunk = 2 * RATE * server.chunk_ms // 1000
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, offset in enumerate(range(0, len(audio), chunk)):
            if drop is not None and index >= drop:
                transport = self.request.transport
                if transport is not None:
                    transport.abort()
                return
            if index < len(words):
                await self.send(conv.add_output_text(response_id, item_id, words[index]))
            piece = audio[offset : offset + chunk]
            delta = base64.b64encode(piece).decode()
            await self.send(conv.add_output_audio(response_id, item_id, 1000 * len(piece) / 2 / RATE, delta))
            if server.paced:
                await asyncio.sleep(max(0.0, start + (index + 1) * server.chunk_ms / 1000 - loop.time()))
            else:
                await asyncio.sleep(0)
        for word in words[len(range(0, len(audio), chunk)) :]:
            await self.send(conv.add_output_text(response_id, item_id, word))
        self.streams.pop(response_id, None)
        await self.send(conv.finish_response(response_id, "completed"))

    async def shutdown(self) -> None:
        for task in list(self.streams.values()):
            task.cancel()
        for task in list(self.streams.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.streams.clear()
        if not self.ws.closed:
            await self.ws.close()


async def start_realtime_server(
    port: int = 0, api_key: str = "sk-test-realtime-0123456789", host: str = "127.0.0.1"
) -> RealtimeTestServer:
    """Start a :class:`RealtimeTestServer` on ``host:port`` (0: any free port); ``url`` is its
    WebSocket endpoint without the ``model`` parameter."""
    server = RealtimeTestServer(api_key=api_key)
    app = web.Application()
    app.router.add_get("/v1/realtime", server._handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server._runner = runner
    bound = runner.addresses[0][1]
    server.url = f"ws://{host}:{bound}/v1/realtime"
    return server


__all__ = ["RealtimeTestServer", "start_realtime_server", "tone"]
