"""``realtime-ws``: a call bridged to a model server that speaks the OpenAI Realtime WebSocket protocol.

Theory of operation
-------------------
Each call gets one :class:`RealtimeBridgeSession` and, at most, one WebSocket to the model server
(``<url>?model=<model>``, ``Authorization: Bearer <key>``). The connection is opened as soon as the
session starts on a running loop (else at first use) and again by the next :meth:`respond` after
it drops; a failure to connect is an :class:`~voxwire.agent.base.AgentError` naming the server (its
host, never the key) and the HTTP status when there is one. The first event must be
``session.created``; the bridge then sends ``session.update``: ``turn_detection: null`` (the
gateway's own VAD decides turns and barge-in), PCM16 at 24 kHz both ways, audio output, and the
configured instructions and voice.

Two tasks per connection, the only code that touches the socket:

* the **writer** sends, in order, one outbox of audio and turn events (``input_audio_buffer.append``
  / ``.commit`` / ``.clear``, ``response.create``) and, ahead of it, a priority outbox of interrupts
  (``response.cancel``, ``conversation.item.truncate``): an interrupt never waits behind audio.
* the **reader** parses every server event (:func:`~voxwire.realtime.events.parse_server_event`;
  unknown or malformed events are counted and dropped) and routes it to the response it belongs
  to: ``response.created`` goes to the oldest ``response.create`` still waiting for its id (the
  server answers them in order), later events by ``response_id``, ``error`` by the client
  ``event_id`` it names (every event the bridge sends carries one), and an ``error`` naming no
  event to the response in progress. Each response has a bounded queue; a full queue makes the
  reader wait, which pushes back on the socket instead of growing memory.

:meth:`on_audio` (never blocks) resamples to 24 kHz when the agent runs at another rate and
batches ``batch_ms`` of audio per append. The outbox holds at most ``max_queued_seconds`` of audio
(while connecting, or if the socket stalls): past that the oldest is dropped and counted. The
server's input buffer is kept bounded too: once more than ``max_uncommitted_seconds`` went up
without a commit (a long silence), the bridge clears it and re-sends the last ``keep_seconds``.

:meth:`respond` commits the buffer (if the turn is new and at least 100 ms went up; when nothing
went up, for instance audio the client appended over the data channel, the turn's own audio is
uploaded first) and sends ``response.create`` with the turn's instructions. It yields ``AudioOut``
for each ``response.output_audio.delta`` and ``TextOut`` for each transcript (or text) delta, in
the server's order, until ``response.done``. An ``error`` for the response, or ``response.done``
with status ``failed``, raises ``AgentError(<the server's message>)``; the socket closing raises
``AgentError("the model server closed the connection ...")``.

Barge-in: when the gateway cancels the response (``CancelledError`` at an ``await``), the bridge
queues ``response.cancel`` for it and ``conversation.item.truncate`` of its audio item to what the
user can have heard: the audio produced, but no more than the real time elapsed since the first
audio delta (the gateway plays out in real time from there). When the response had no id yet, the
cancel follows its ``response.created``. Both are best effort: the server's answer is only logged.
The server's own ``input_audio_buffer.speech_started`` (if its VAD is on regardless) is logged.

Known limits: after a reconnection the model server starts a new conversation (earlier turns are
not replayed); user text items created by the client are not forwarded; a barge-in after the
response finished generating is only mapped upstream if the gateway calls :meth:`interrupted`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
from yarl import URL

from voxwire.agent.base import (
    DEFAULT_SAMPLE_RATE,
    AgentError,
    AgentOutput,
    AudioOut,
    CallContext,
    Pcm,
    TextOut,
    Turn,
)
from voxwire.media.resample import Resampler
from voxwire.realtime.events import (
    ClientEvent,
    ConversationItemTruncateEvent,
    ErrorEvent,
    EventError,
    InputAudioBufferClearEvent,
    InputAudioBufferCommitEvent,
    InputAudioBufferSpeechStartedEvent,
    ResponseCancelEvent,
    ResponseCreatedEvent,
    ResponseCreateEvent,
    ResponseCreateParams,
    ResponseDoneEvent,
    ResponseOutputAudioDeltaEvent,
    ResponseOutputAudioTranscriptDeltaEvent,
    ResponseOutputTextDeltaEvent,
    ServerEvent,
    SessionCreatedEvent,
    SessionUpdateEvent,
    parse_server_event,
    serialize_client_event,
)
from voxwire.realtime.session import AudioInput, AudioOutput, PcmFormat, SessionAudio, SessionUpdate

log = logging.getLogger(__name__)

#: The Realtime API's PCM format: 16-bit little-endian mono at 24 kHz (the only rate GA accepts).
SERVER_RATE = 24_000
#: OpenAI refuses to commit less than 100 ms of audio.
MIN_COMMIT_MS = 100
DEFAULT_MODEL = "gpt-realtime"
#: WebSocket pings, to notice a dead connection that never closed (seconds).
HEARTBEAT = 20.0
#: Largest server event accepted (bytes); deltas are small, ``response.done`` can be large.
MAX_SERVER_EVENT_BYTES = 16 * 1024 * 1024
#: Server events queued per response before the reader waits for the response to catch up.
MAX_RESPONSE_EVENTS = 256

ENV_URL = "VOXWIRE_REALTIME_URL"
ENV_API_KEY = "VOXWIRE_REALTIME_API_KEY"
ENV_MODEL = "VOXWIRE_REALTIME_MODEL"


class RealtimeConfigError(ValueError):
    """The bridge is configured wrongly (missing URL, bad scheme, impossible bounds)."""


@dataclass(frozen=True)
class RealtimeBridgeConfig:
    """How to reach the model server and how much to buffer. Validated at construction."""

    #: WebSocket endpoint, e.g. ``wss://api.openai.com/v1/realtime`` (``model`` is added).
    url: str
    #: Sent as ``Authorization: Bearer``; empty sends no header (local servers). Never logged.
    api_key: str = field(default="", repr=False)
    model: str = DEFAULT_MODEL
    #: Rate of the PCM the agent hears and speaks; anything but 24 kHz is resampled.
    sample_rate: int = DEFAULT_SAMPLE_RATE
    #: Session instructions sent with ``session.update`` (a turn's own instructions override them).
    instructions: str = ""
    voice: str | None = None
    #: Audio per ``input_audio_buffer.append``.
    batch_ms: int = 100
    #: Audio the outbox holds while the socket is connecting or stalled; older audio is dropped.
    max_queued_seconds: float = 5.0
    #: Audio sent without a commit before the bridge clears the server's buffer ...
    max_uncommitted_seconds: float = 60.0
    #: ... and re-sends this much of the most recent audio.
    keep_seconds: float = 15.0
    #: Connecting, the WebSocket handshake and ``session.created`` together (seconds).
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        try:
            url = URL(self.url)
        except (TypeError, ValueError) as exc:
            raise RealtimeConfigError(f"the Realtime URL {self.url!r} is not a URL") from exc
        if url.scheme not in ("ws", "wss", "http", "https") or not url.host:
            raise RealtimeConfigError(f"the Realtime URL must be ws:// or wss://, not {_safe(url)!r}")
        if not self.model:
            raise RealtimeConfigError("the Realtime model must not be empty")
        if not 8_000 <= self.sample_rate <= 48_000:
            raise RealtimeConfigError(f"sample_rate must be in 8000..48000, not {self.sample_rate}")
        if not 10 <= self.batch_ms <= 1_000:
            raise RealtimeConfigError(f"batch_ms must be in 10..1000, not {self.batch_ms}")
        if self.max_queued_seconds * 1000 < self.batch_ms:
            raise RealtimeConfigError("max_queued_seconds must hold at least one batch")
        if not 0 < self.keep_seconds < self.max_uncommitted_seconds:
            raise RealtimeConfigError("keep_seconds must be positive and below max_uncommitted_seconds")
        if self.connect_timeout <= 0:
            raise RealtimeConfigError("connect_timeout must be positive")

    @property
    def endpoint(self) -> URL:
        """The URL connected to: ``url`` with ``model`` added unless it names one."""
        url = URL(self.url)
        return url if "model" in url.query else url.update_query(model=self.model)


def _safe(url: URL) -> str:
    """A URL fit for logs and error messages: no query, no user info."""
    return str(url.with_query(None).with_user(None))


# ---------------------------------------------------------------------------------------------------
# One connection


class _Response:
    """One ``response.create`` in flight: its identity upstream and its queue of server events."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.event_ids = {f"{tag}_create"}
        self.response_id: str | None = None
        self.queue: asyncio.Queue[ServerEvent | None] = asyncio.Queue(MAX_RESPONSE_EVENTS)
        self.failure: AgentError | None = None
        self.abandoned = False
        self.done_seen = False
        #: Abandoned before ``response.created``: cancel it as soon as its id is known.
        self.cancel_when_created = False

    def fail(self, error: AgentError) -> None:
        if self.failure is None:
            self.failure = error
            if not self.queue.full():
                self.queue.put_nowait(None)

    async def next(self) -> ServerEvent:
        if self.queue.empty() and self.failure is not None:
            raise self.failure
        event = await self.queue.get()
        if event is None:
            assert self.failure is not None, "the end marker follows a failure"
            raise self.failure
        return event

    def abandon(self) -> None:
        self.abandoned = True
        while not self.queue.empty():  # also wakes a reader waiting on a full queue
            self.queue.get_nowait()


class _Upstream:
    """The state of one WebSocket to the model server."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http = http
        self.ws = ws
        self.closed = False
        self.live: list[_Response] = []  # oldest first
        self.awaiting_created: deque[_Response] = deque()
        self.by_response_id: dict[str, _Response] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.shutdown: asyncio.Task[None] | None = None

    def owner_of_event(self, event_id: str) -> _Response | None:
        for response in self.live:
            if event_id in response.event_ids:
                return response
        return None


# ---------------------------------------------------------------------------------------------------
# The agent


class RealtimeBridgeSession:
    """One call's bridge; see the module docstring."""

    def __init__(self, config: RealtimeBridgeConfig, ctx: CallContext) -> None:
        self.config = config
        self.call_id = ctx.call_id
        self.counters: dict[str, int] = {}
        self._upsampler = Resampler(config.sample_rate, SERVER_RATE)
        self._batch: list[Pcm] = []
        self._batch_samples = 0
        self._batch_limit = SERVER_RATE * config.batch_ms // 1000
        #: Ordered outbox: (text, samples of audio it carries; 0 for other events).
        self._outbox: deque[tuple[str, int]] = deque()
        self._outbox_samples = 0
        self._priority: deque[str] = deque()
        self._wake = asyncio.Event()
        self._uncommitted = 0  # samples sent or queued since the last commit or clear
        self._recent: deque[tuple[str, int]] = deque()  # the newest appends since the last commit
        self._recent_samples = 0
        self._last_turn_item: str | None = None
        self._last_turn_audio: Pcm | None = None
        self._seq = 0
        self._upstream: _Upstream | None = None
        self._connecting: asyncio.Task[_Upstream] | None = None
        self._shutdowns: list[asyncio.Task[None]] = []
        self._closed = False
        self._last_audio: tuple[str, int, float, float] | None = None  # item, content, ms, first at
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: connect at first use
        self._connect_soon()

    # -- AgentSession -----------------------------------------------------------------------------

    def on_audio(self, pcm: Pcm, now: float) -> None:
        if self._closed:
            return
        audio = pcm if self._upsampler.passthrough else self._upsampler.process(pcm)
        if len(audio):
            self._batch.append(audio)
            self._batch_samples += len(audio)
        if self._batch_samples >= self._batch_limit:
            self._flush_batch()

    async def respond(self, turn: Turn) -> AsyncIterator[AgentOutput]:
        upstream = await self._ready()
        self._last_audio = None
        self._seq += 1
        response = _Response(f"vw{self._seq}")
        self._flush_batch()
        if turn.item_id is None or turn.item_id != self._last_turn_item:
            self._last_turn_item = turn.item_id
            fresh_audio = turn.audio is not self._last_turn_audio  # the gateway reuses the array
            self._last_turn_audio = turn.audio
            if self._uncommitted * 1000 < MIN_COMMIT_MS * SERVER_RATE and fresh_audio and len(turn.audio):
                self._upload(turn.audio, turn.sample_rate)
            if self._uncommitted * 1000 >= MIN_COMMIT_MS * SERVER_RATE:
                commit_id = f"{response.tag}_commit"
                response.event_ids.add(commit_id)
                self._send(InputAudioBufferCommitEvent(event_id=commit_id))
                self._uncommitted = 0
                self._recent.clear()
                self._recent_samples = 0
        params = ResponseCreateParams(instructions=turn.instructions) if turn.instructions else None
        upstream.live.append(response)
        upstream.awaiting_created.append(response)
        self._send(ResponseCreateEvent(event_id=f"{response.tag}_create", response=params))

        downsampler = Resampler(SERVER_RATE, self.config.sample_rate)
        loop = asyncio.get_running_loop()
        item: tuple[str, int] | None = None
        produced = 0  # samples at 24 kHz
        first_audio_at: float | None = None
        finished = False
        try:
            while True:
                event = await response.next()
                if isinstance(event, ResponseOutputAudioDeltaEvent):
                    try:
                        raw = base64.b64decode(event.delta, validate=True)
                    except ValueError:
                        self._count("bad_audio_delta")
                        continue
                    pcm = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int16)
                    item = (event.item_id, event.content_index)
                    produced += len(pcm)
                    if first_audio_at is None:
                        first_audio_at = loop.time()
                    out = pcm if downsampler.passthrough else downsampler.process(pcm)
                    if len(out):
                        yield AudioOut(out)
                elif isinstance(
                    event, ResponseOutputAudioTranscriptDeltaEvent | ResponseOutputTextDeltaEvent
                ):
                    if event.delta:
                        yield TextOut(event.delta)
                elif isinstance(event, ErrorEvent):
                    raise AgentError(event.error.message)
                elif isinstance(event, ResponseDoneEvent):
                    status = event.response.status
                    if status == "failed":
                        finished = True
                        details = event.response.status_details
                        message = details.error.message if details and details.error else None
                        raise AgentError(message or "the model server reported the response as failed")
                    if status != "completed":
                        log.info(
                            "call %s: model response %s ended %s", self.call_id, event.response.id, status
                        )
                    tail = downsampler.flush()
                    if len(tail):
                        yield AudioOut(tail)
                    finished = True
                    if item is not None and first_audio_at is not None:
                        self._last_audio = (*item, 1000 * produced / SERVER_RATE, first_audio_at)
                    return
        finally:
            heard_ms = 0.0
            if first_audio_at is not None:
                heard_ms = min(1000 * produced / SERVER_RATE, 1000 * (loop.time() - first_audio_at))
            self._end_response(upstream, response, finished, item, heard_ms)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._outbox.clear()
        self._priority.clear()
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self._upstream is not None:
            self._shutdown(self._upstream)

    async def wait_closed(self) -> None:
        """Wait until every connection this session opened is closed (tests, orderly shutdown)."""
        if self._connecting is not None and not self._connecting.done():
            await asyncio.wait([self._connecting])
        for task in list(self._shutdowns):
            await task

    # -- extensions -------------------------------------------------------------------------------

    def interrupted(self, heard_ms: float) -> None:
        """The gateway stopped playing this session's last finished response after ``heard_ms`` of
        its audio (barge-in after generation ended): truncate the item upstream to match."""
        if self._last_audio is None or self._upstream is None or self._upstream.closed:
            return
        item_id, content_index, produced_ms, _ = self._last_audio
        self._last_audio = None
        self._seq += 1
        self._truncate(f"vw{self._seq}", item_id, content_index, min(heard_ms, produced_ms))
        self._wake.set()

    # -- outgoing ---------------------------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def _send(self, event: ClientEvent) -> None:
        self._outbox.append((serialize_client_event(event), 0))
        self._wake.set()

    def _send_first(self, event: ClientEvent) -> None:
        self._priority.append(serialize_client_event(event))
        self._wake.set()

    def _flush_batch(self) -> None:
        if not self._batch_samples:
            return
        pcm = self._batch[0] if len(self._batch) == 1 else np.concatenate(self._batch)
        self._batch.clear()
        self._batch_samples = 0
        self._append(pcm)

    def _upload(self, pcm: Pcm, rate: int) -> None:
        """A turn's own audio, when none of it went up through :meth:`on_audio`."""
        audio = pcm
        if rate != SERVER_RATE:
            resampler = Resampler(rate, SERVER_RATE)
            audio = np.concatenate((resampler.process(pcm), resampler.flush()))
        step = SERVER_RATE  # one second per append
        for start in range(0, len(audio), step):
            self._append(audio[start : start + step])

    def _append(self, pcm: Pcm) -> None:
        """Queue one ``input_audio_buffer.append`` (hand-built JSON: the hot path skips validation)."""
        data = base64.b64encode(np.ascontiguousarray(pcm, dtype="<i2").tobytes()).decode("ascii")
        text = '{"type":"input_audio_buffer.append","audio":"' + data + '"}'
        samples = len(pcm)
        self._outbox.append((text, samples))
        self._outbox_samples += samples
        self._uncommitted += samples
        self._recent.append((text, samples))
        self._recent_samples += samples
        keep = self.config.keep_seconds * SERVER_RATE
        while self._recent_samples - self._recent[0][1] >= keep:
            self._recent_samples -= self._recent.popleft()[1]
        limit = self.config.max_queued_seconds * SERVER_RATE
        while self._outbox_samples > limit:
            self._drop_oldest_audio()
        if self._uncommitted > self.config.max_uncommitted_seconds * SERVER_RATE:
            self._restart_buffer()
        self._wake.set()

    def _drop_oldest_audio(self) -> None:
        for index, (_, samples) in enumerate(self._outbox):
            if samples:
                del self._outbox[index]
                self._outbox_samples -= samples
                self._uncommitted = max(0, self._uncommitted - samples)
                self._count("input_audio_dropped_ms", 1000 * samples // SERVER_RATE)
                return
        raise AssertionError("outbox audio count without audio in the outbox")

    def _restart_buffer(self) -> None:
        """Too long without a commit: clear the server's buffer, re-send only the newest audio."""
        while self._outbox and self._outbox[-1][1]:  # unsent appends after the last other event
            self._outbox_samples -= self._outbox.pop()[1]
        self._outbox.append(
            (serialize_client_event(InputAudioBufferClearEvent(event_id=f"vw{self._seq}_clear")), 0)
        )
        self._outbox.extend(self._recent)
        resent = sum(samples for _, samples in self._recent)
        self._outbox_samples += resent
        self._uncommitted = resent
        self._count("input_buffer_restarts")

    def _truncate(self, tag: str, item_id: str, content_index: int, heard_ms: float) -> None:
        self._send_first(
            ConversationItemTruncateEvent(
                event_id=f"{tag}_truncate",
                item_id=item_id,
                content_index=content_index,
                audio_end_ms=int(heard_ms),
            )
        )

    def _end_response(
        self,
        upstream: _Upstream,
        response: _Response,
        finished: bool,
        item: tuple[str, int] | None,
        heard_ms: float,
    ) -> None:
        """The generator is leaving: forget the response; if it did not finish, cancel it upstream
        and truncate its audio to what can have been heard (best effort)."""
        response.abandon()
        if response in upstream.live:
            upstream.live.remove(response)
        if finished or upstream.closed or self._closed:
            return
        if response.response_id is None:
            response.cancel_when_created = response in upstream.awaiting_created
        elif not response.done_seen:
            self._send_first(
                ResponseCancelEvent(event_id=f"{response.tag}_cancel", response_id=response.response_id)
            )
        if item is not None:
            self._truncate(response.tag, item[0], item[1], heard_ms)
        log.info(
            "call %s: model response %s cancelled after %.0f ms heard", self.call_id, response.tag, heard_ms
        )

    # -- connection -------------------------------------------------------------------------------

    def _shutdown(self, upstream: _Upstream) -> None:
        """Stop the connection's tasks and close it, once, in the background."""
        upstream.closed = True
        if upstream.shutdown is not None:
            return
        for task in upstream.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        task = asyncio.get_running_loop().create_task(_close_upstream(upstream))
        upstream.shutdown = task
        _background.add(task)
        task.add_done_callback(_background.discard)
        self._shutdowns.append(task)
        task.add_done_callback(self._shutdowns.remove)

    def _connect_soon(self) -> asyncio.Task[_Upstream]:
        task = asyncio.get_running_loop().create_task(self._connect())
        task.add_done_callback(_retrieve)
        self._connecting = task
        return task

    async def _ready(self) -> _Upstream:
        """The live connection: the one being made, or a new one (an earlier failure that no
        response reported yet is reported now, once)."""
        if self._closed:
            raise AgentError("the call is closed")
        upstream = self._upstream
        if upstream is not None and not upstream.closed:
            return upstream
        task = self._connecting
        if task is None or (task.done() and (task.cancelled() or task.exception() is None)):
            task = self._connect_soon()
        try:
            return await asyncio.shield(task)  # a cancelled response leaves the attempt running
        finally:
            if task.done():
                self._connecting = None

    async def _connect(self) -> _Upstream:
        try:
            http, ws, created = await self._open()
        except AgentError as exc:
            if not self._closed:
                log.warning("call %s: %s", self.call_id, exc)
            raise
        if self._closed:
            await http.close()
            raise AgentError("the call is closed")
        upstream = _Upstream(http, ws)
        self._upstream = upstream
        # A new server session: interrupts and turn events queued for an earlier connection mean
        # nothing to it; queued audio is kept. The session configuration goes first.
        self._priority.clear()
        self._priority.append(serialize_client_event(self._session_update()))
        self._outbox = deque(entry for entry in self._outbox if entry[1])
        self._uncommitted = self._outbox_samples
        loop = asyncio.get_running_loop()
        upstream.tasks = [loop.create_task(self._write(upstream)), loop.create_task(self._read(upstream))]
        log.info(
            "call %s: connected to the model server at %s (session %s)",
            self.call_id,
            _safe(self.config.endpoint),
            created.session.id,
        )
        return upstream

    async def _open(
        self,
    ) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse, SessionCreatedEvent]:
        """Connect, upgrade and read ``session.created``, within ``connect_timeout``."""
        cfg = self.config
        where = _safe(cfg.endpoint)
        headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
        http = aiohttp.ClientSession()
        opened = False
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                ws = await http.ws_connect(
                    cfg.endpoint, headers=headers, heartbeat=HEARTBEAT, max_msg_size=MAX_SERVER_EVENT_BYTES
                )
                first = await ws.receive()
            try:
                created = parse_server_event(first.data) if first.type is aiohttp.WSMsgType.TEXT else None
            except EventError:
                created = None
            if isinstance(created, ErrorEvent):
                raise AgentError(f"the model server at {where} refused the session: {created.error.message}")
            if not isinstance(created, SessionCreatedEvent):
                raise AgentError(f"the model server at {where} did not start with session.created")
            opened = True
            return http, ws, created
        except aiohttp.WSServerHandshakeError as exc:
            what = "the API key" if exc.status in (401, 403) else "the WebSocket"
            raise AgentError(f"the model server at {where} refused {what} (HTTP {exc.status})") from None
        except TimeoutError:
            raise AgentError(
                f"the model server at {where} did not answer within {cfg.connect_timeout:g} s"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise AgentError(f"could not connect to the model server at {where}: {exc}") from None
        finally:
            if not opened:
                await http.close()

    def _session_update(self) -> SessionUpdateEvent:
        cfg = self.config
        output = (
            AudioOutput(format=PcmFormat(), voice=cfg.voice) if cfg.voice else AudioOutput(format=PcmFormat())
        )
        fields: dict[str, object] = {
            "type": "realtime",
            "output_modalities": ["audio"],
            "audio": SessionAudio(input=AudioInput(format=PcmFormat(), turn_detection=None), output=output),
        }
        if cfg.instructions:
            fields["instructions"] = cfg.instructions
        return SessionUpdateEvent(event_id="vw_session", session=SessionUpdate.model_validate(fields))

    async def _write(self, upstream: _Upstream) -> None:
        ws = upstream.ws
        try:
            while not upstream.closed:
                while self._priority or self._outbox:
                    if self._priority:
                        text = self._priority.popleft()
                    else:
                        text, samples = self._outbox.popleft()
                        self._outbox_samples -= samples
                    await ws.send_str(text)
                self._wake.clear()
                await self._wake.wait()
        except (ConnectionError, aiohttp.ClientError) as exc:
            log.info("call %s: model server send failed: %s", self.call_id, exc)

    async def _read(self, upstream: _Upstream) -> None:
        ws = upstream.ws
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await self._on_server_text(upstream, msg.data)
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    break
                else:
                    self._count("server_binary_messages")
        finally:
            upstream.closed = True
            detail = f"WebSocket close code {ws.close_code}" if ws.close_code else "connection lost"
            if not self._closed:
                log.warning("call %s: the model server connection closed (%s)", self.call_id, detail)
            error = AgentError(f"the model server closed the connection ({detail})")
            for response in upstream.live:
                response.fail(error)
            self._shutdown(upstream)

    async def _on_server_text(self, upstream: _Upstream, text: str) -> None:
        try:
            event = parse_server_event(text, max_bytes=MAX_SERVER_EVENT_BYTES)
        except EventError as err:
            self._count("server_events_dropped")
            log.debug("call %s: dropped a server event: %s", self.call_id, err.message)
            return
        target: _Response | None = None
        if isinstance(event, ErrorEvent):
            caused_by = event.error.event_id
            target = (
                upstream.owner_of_event(caused_by)
                if caused_by
                else (upstream.live[0] if upstream.live else None)
            )
            if target is None:
                best_effort = caused_by is not None and caused_by.endswith(("_cancel", "_truncate"))
                log.log(
                    logging.DEBUG if best_effort else logging.WARNING,
                    "call %s: model server error %s: %s",
                    self.call_id,
                    event.error.code,
                    event.error.message,
                )
                return
            if target in upstream.awaiting_created and caused_by == f"{target.tag}_create":
                upstream.awaiting_created.remove(target)
        elif isinstance(event, ResponseCreatedEvent):
            if not upstream.awaiting_created:
                self._count("unexpected_responses")
                log.warning("call %s: the model server started a response nobody asked for", self.call_id)
                return
            target = upstream.awaiting_created.popleft()
            target.response_id = event.response.id
            upstream.by_response_id[event.response.id] = target
            if target.cancel_when_created:
                self._send_first(
                    ResponseCancelEvent(event_id=f"{target.tag}_cancel", response_id=event.response.id)
                )
        elif isinstance(event, ResponseDoneEvent):
            target = upstream.by_response_id.pop(event.response.id, None)
            if target is not None:
                target.done_seen = True
        elif isinstance(event, InputAudioBufferSpeechStartedEvent):
            log.info(
                "call %s: the model server's VAD heard speech at %d ms (ignored: the gateway decides turns)",
                self.call_id,
                event.audio_start_ms,
            )
            return
        else:
            response_id = getattr(event, "response_id", None)
            if isinstance(response_id, str):
                target = upstream.by_response_id.get(response_id)
        if target is not None and not target.abandoned:
            await target.queue.put(event)


async def _close_upstream(upstream: _Upstream) -> None:
    try:
        await upstream.ws.close()
    finally:
        await upstream.http.close()


#: Cleanup tasks, referenced until they end (the loop itself keeps only weak references).
_background: set[asyncio.Task[None]] = set()


def _retrieve(task: asyncio.Task[_Upstream]) -> None:
    """Connection failures are reported by :meth:`RealtimeBridgeSession.respond`, not the loop."""
    if not task.cancelled():
        task.exception()


class RealtimeBridgeAgent:
    """The ``realtime-ws`` agent: every call bridged to a Realtime model server."""

    name = "realtime-ws"

    def __init__(
        self,
        url: str,
        api_key: str,
        model: str = DEFAULT_MODEL,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        **options: Any,
    ) -> None:
        """``options`` are the other fields of :class:`RealtimeBridgeConfig` (``instructions``,
        ``voice``, ``batch_ms``, ``max_queued_seconds``, ...)."""
        self.config = RealtimeBridgeConfig(url, api_key, model, sample_rate, **options)
        self.sample_rate = sample_rate

    def start(self, ctx: CallContext) -> RealtimeBridgeSession:
        return RealtimeBridgeSession(self.config, ctx)


def from_environment(environ: Mapping[str, str] | None = None) -> RealtimeBridgeAgent:
    """The agent configured by ``VOXWIRE_REALTIME_URL`` (required), ``VOXWIRE_REALTIME_API_KEY``
    and ``VOXWIRE_REALTIME_MODEL`` (default ``gpt-realtime``)."""
    env = os.environ if environ is None else environ
    url = env.get(ENV_URL, "").strip()
    if not url:
        raise RealtimeConfigError(
            f"{ENV_URL} is not set: the realtime-ws agent needs the WebSocket URL of a Realtime model "
            "server, e.g. wss://api.openai.com/v1/realtime"
        )
    return RealtimeBridgeAgent(
        url, env.get(ENV_API_KEY, "").strip(), env.get(ENV_MODEL, "").strip() or DEFAULT_MODEL
    )


__all__ = [
    "RealtimeBridgeAgent",
    "RealtimeBridgeConfig",
    "RealtimeBridgeSession",
    "RealtimeConfigError",
    "from_environment",
]
