"""One WebSocket to the Realtime model server: the handshake, a reader and a writer, and the
routing of server events to the responses in flight.

Theory of operation
-------------------
:func:`open_connection` connects to ``<url>?model=<model>`` (``Authorization: Bearer <key>``) and
reads the first event, which must be ``session.created``, all within ``connect_timeout``; any
failure is an :class:`~voxwire.agent.base.AgentError` naming the server (its host, never the key)
and the HTTP status when there is one. :func:`session_update` is what the bridge sends first:
``turn_detection: null`` (the gateway's own VAD decides turns and barge-in), PCM16 at 24 kHz both
ways, audio output, and the configured instructions and voice.

Two tasks per connection, the only code that touches the socket:

* the **writer** sends what the call's :class:`~voxwire.agent.realtime_ws.outbox.Outbox` holds,
  interrupts first;
* the **reader** parses every server event (:func:`~voxwire.realtime.events.parse_server_event`;
  unknown or malformed events are counted and dropped) and routes it to the
  :class:`PendingResponse` it belongs to: ``response.created`` goes to the oldest
  ``response.create`` still waiting for its id (the server answers them in order), later events by
  ``response_id``, ``error`` by the client ``event_id`` it names (every event the bridge sends
  carries one), and an ``error`` naming no event to the response in progress. Each response has a
  bounded queue; a full queue makes the reader wait, which pushes back on the socket instead of
  growing memory. When the socket closes, every response in flight fails with
  ``AgentError("the model server closed the connection ...")``.

Barge-in upstream is :meth:`Connection.cancel` (``response.cancel``, once, and only while the
server is still generating; a response with no id yet is cancelled at its ``response.created``)
and :meth:`Connection.truncate` (``conversation.item.truncate`` of the response's audio item, once).
Both are best effort: the server's answer to them is only logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque

import aiohttp

from voxwire.agent.base import AgentError
from voxwire.agent.realtime_ws.config import (
    HEARTBEAT,
    MAX_RESPONSE_EVENTS,
    MAX_SERVER_EVENT_BYTES,
    SERVER_RATE,
    RealtimeBridgeConfig,
    safe_url,
)
from voxwire.agent.realtime_ws.outbox import Outbox
from voxwire.realtime.events import (
    ConversationItemTruncateEvent,
    ErrorEvent,
    EventError,
    InputAudioBufferSpeechStartedEvent,
    ResponseCancelEvent,
    ResponseCreatedEvent,
    ResponseDoneEvent,
    ResponseOutputAudioDeltaEvent,
    ServerEvent,
    SessionCreatedEvent,
    SessionUpdateEvent,
    parse_server_event,
)
from voxwire.realtime.session import AudioInput, AudioOutput, PcmFormat, SessionAudio, SessionUpdate

log = logging.getLogger(__name__)


class PendingResponse:
    """One ``response.create``: its identity upstream, its queue of server events, and what the
    user heard of it."""

    def __init__(self, tag: str, connection: Connection) -> None:
        self.tag = tag
        self.connection = connection
        self.event_ids = {f"{tag}_create"}
        self.response_id: str | None = None
        self.queue: asyncio.Queue[ServerEvent | None] = asyncio.Queue(MAX_RESPONSE_EVENTS)
        self.failure: AgentError | None = None
        self.abandoned = False
        #: ``response.done`` arrived: the server no longer generates it.
        self.done_seen = False
        #: The audio item of its latest ``response.output_audio.delta`` (item id, content index).
        self.item: tuple[str, int] | None = None
        #: Audio handed to the gateway (24 kHz samples), and when the first of it was (loop time).
        self.produced = 0
        self.first_audio_at: float | None = None
        self.cancel_requested = False
        self.truncated = False

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

    @property
    def produced_ms(self) -> int:
        return 1000 * self.produced // SERVER_RATE


class Connection:
    """The state of one WebSocket to the model server; see the module docstring."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        outbox: Outbox,
        counters: Counter[str],
        call_id: str,
    ) -> None:
        self.http = http
        self.ws = ws
        self.outbox = outbox
        self.counters = counters
        self.call_id = call_id
        self.closed = False
        self._live: list[PendingResponse] = []  # oldest first
        self._awaiting_created: deque[PendingResponse] = deque()
        self._by_response_id: dict[str, PendingResponse] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._shutdown: asyncio.Task[None] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._write()), loop.create_task(self._read())]

    def close(self) -> asyncio.Task[None]:
        """Stop the reader and writer and close the socket, once, in the background."""
        self.closed = True
        if self._shutdown is not None:
            return self._shutdown
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        task = asyncio.get_running_loop().create_task(self._close_socket())
        self._shutdown = task
        _background.add(task)
        task.add_done_callback(_background.discard)
        return task

    # -- responses --------------------------------------------------------------------------------

    def open_response(self, tag: str) -> PendingResponse:
        """A response whose ``response.create`` (event id ``<tag>_create``) is queued next."""
        response = PendingResponse(tag, self)
        self._live.append(response)
        self._awaiting_created.append(response)
        return response

    def forget(self, response: PendingResponse) -> None:
        """Its generator is leaving: route no more events to it (``cancel`` and ``truncate`` still
        work)."""
        response.abandon()
        if response in self._live:
            self._live.remove(response)

    def cancel(self, response: PendingResponse) -> bool:
        """Ask the server to stop generating ``response``, unless it already stopped or was asked
        to. True if a ``response.cancel`` is (or will be, at its ``response.created``) sent."""
        if self.closed or response.cancel_requested or response.done_seen:
            return False
        if response.response_id is None and response not in self._awaiting_created:
            return False  # refused: it will never be created
        response.cancel_requested = True
        if response.response_id is not None:
            self._send_cancel(response, response.response_id)
        return True

    def truncate(self, response: PendingResponse, audio_end_ms: int) -> bool:
        """Cut ``response``'s audio item upstream to ``audio_end_ms`` (no more than was produced),
        once. True if a ``conversation.item.truncate`` is sent."""
        if self.closed or response.truncated or response.item is None:
            return False
        response.truncated = True
        item_id, content_index = response.item
        self.outbox.send_first(
            ConversationItemTruncateEvent(
                event_id=f"{response.tag}_truncate",
                item_id=item_id,
                content_index=content_index,
                audio_end_ms=max(0, min(audio_end_ms, response.produced_ms)),
            )
        )
        return True

    def _send_cancel(self, response: PendingResponse, response_id: str) -> None:
        self.outbox.send_first(
            ResponseCancelEvent(event_id=f"{response.tag}_cancel", response_id=response_id)
        )

    def _owner_of_event(self, event_id: str) -> PendingResponse | None:
        for response in self._live:
            if event_id in response.event_ids:
                return response
        return None

    # -- tasks ------------------------------------------------------------------------------------

    async def _write(self) -> None:
        try:
            while not self.closed:
                while (text := self.outbox.pop()) is not None:
                    await self.ws.send_str(text)
                await self.outbox.wait()
        except (ConnectionError, aiohttp.ClientError) as exc:
            log.info("call %s: model server send failed: %s", self.call_id, exc)

    async def _read(self) -> None:
        ws = self.ws
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await self._on_server_text(msg.data)
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    break
                else:
                    self.counters["server_binary_messages"] += 1
        finally:
            detail = f"WebSocket close code {ws.close_code}" if ws.close_code else "connection lost"
            if self._shutdown is None:  # not closed by the bridge
                log.warning("call %s: the model server connection closed (%s)", self.call_id, detail)
            self.closed = True
            error = AgentError(f"the model server closed the connection ({detail})")
            for response in self._live:
                response.fail(error)
            self.close()

    async def _on_server_text(self, text: str) -> None:
        try:
            event = parse_server_event(text, max_bytes=MAX_SERVER_EVENT_BYTES)
        except EventError as err:
            self.counters["server_events_dropped"] += 1
            log.debug("call %s: dropped a server event: %s", self.call_id, err.message)
            return
        target: PendingResponse | None = None
        if isinstance(event, ErrorEvent):
            caused_by = event.error.event_id
            target = self._owner_of_event(caused_by) if caused_by else (self._live[0] if self._live else None)
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
            if target in self._awaiting_created and caused_by == f"{target.tag}_create":
                self._awaiting_created.remove(target)
        elif isinstance(event, ResponseCreatedEvent):
            if not self._awaiting_created:
                self.counters["unexpected_responses"] += 1
                log.warning("call %s: the model server started a response nobody asked for", self.call_id)
                return
            target = self._awaiting_created.popleft()
            target.response_id = event.response.id
            self._by_response_id[event.response.id] = target
            if target.cancel_requested:
                self._send_cancel(target, event.response.id)
        elif isinstance(event, ResponseDoneEvent):
            target = self._by_response_id.pop(event.response.id, None)
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
                target = self._by_response_id.get(response_id)
            if target is not None and isinstance(event, ResponseOutputAudioDeltaEvent):
                target.item = (event.item_id, event.content_index)
        if target is not None and not target.abandoned:
            await target.queue.put(event)

    async def _close_socket(self) -> None:
        try:
            await self.ws.close()
        finally:
            await self.http.close()


#: Cleanup tasks, referenced until they end (the loop itself keeps only weak references).
_background: set[asyncio.Task[None]] = set()


async def open_connection(
    config: RealtimeBridgeConfig, outbox: Outbox, counters: Counter[str], call_id: str
) -> tuple[Connection, SessionCreatedEvent]:
    """Connect, upgrade and read ``session.created``, within ``connect_timeout``. The connection's
    tasks are not started yet."""
    where = safe_url(config.endpoint)
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    http = aiohttp.ClientSession()
    opened = False
    try:
        async with asyncio.timeout(config.connect_timeout):
            ws = await http.ws_connect(
                config.endpoint, headers=headers, heartbeat=HEARTBEAT, max_msg_size=MAX_SERVER_EVENT_BYTES
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
        return Connection(http, ws, outbox, counters, call_id), created
    except aiohttp.WSServerHandshakeError as exc:
        what = "the API key" if exc.status in (401, 403) else "the WebSocket"
        raise AgentError(f"the model server at {where} refused {what} (HTTP {exc.status})") from None
    except TimeoutError:
        raise AgentError(
            f"the model server at {where} did not answer within {config.connect_timeout:g} s"
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise AgentError(f"could not connect to the model server at {where}: {exc}") from None
    finally:
        if not opened:
            await http.close()


def session_update(config: RealtimeBridgeConfig) -> SessionUpdateEvent:
    """The bridge's session configuration, sent first on every connection."""
    output = (
        AudioOutput(format=PcmFormat(), voice=config.voice)
        if config.voice
        else AudioOutput(format=PcmFormat())
    )
    fields: dict[str, object] = {
        "type": "realtime",
        "output_modalities": ["audio"],
        "audio": SessionAudio(input=AudioInput(format=PcmFormat(), turn_detection=None), output=output),
    }
    if config.instructions:
        fields["instructions"] = config.instructions
    return SessionUpdateEvent(event_id="vw_session", session=SessionUpdate.model_validate(fields))
