"""The ``realtime-ws`` agent session: a call's turns and barge-ins mapped onto one model server
connection at a time.

Theory of operation
-------------------
:meth:`RealtimeBridgeSession.respond` commits the input buffer (if the turn is new and at least
100 ms went up; when nothing went up, for instance audio the client appended over the data
channel, the turn's own audio is uploaded first) and sends ``response.create`` with the turn's
instructions. It yields ``AudioOut`` for each ``response.output_audio.delta`` and ``TextOut`` for
each transcript (or text) delta, in the server's order, until ``response.done``. An ``error`` for
the response, or ``response.done`` with status ``failed``, raises ``AgentError(<the server's
message>)``.

Barge-in reaches the model server by two paths, whichever comes first, each sending at most one
``response.cancel`` (only while the server still generates) and one ``conversation.item.truncate``:

* :meth:`~RealtimeBridgeSession.interrupted` (the gateway's hook, with the exact audio the user
  heard): for the response answering ``Turn.response_id``, generating or only still playing out;
* the generator cancelled (``CancelledError`` at an ``await``) without that hook: the truncation
  is then an estimate, the audio produced but no more than the real time elapsed since the first
  audio delta (the gateway plays out in real time from there).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Mapping
from typing import Any

import numpy as np

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
from voxwire.agent.realtime_ws.config import (
    DEFAULT_MODEL,
    ENV_API_KEY,
    ENV_MODEL,
    ENV_URL,
    SERVER_RATE,
    RealtimeBridgeConfig,
    RealtimeConfigError,
    safe_url,
)
from voxwire.agent.realtime_ws.connection import Connection, PendingResponse, open_connection, session_update
from voxwire.agent.realtime_ws.outbox import Outbox
from voxwire.media.resample import Resampler
from voxwire.realtime.events import (
    ErrorEvent,
    ResponseCreateEvent,
    ResponseCreateParams,
    ResponseDoneEvent,
    ResponseOutputAudioDeltaEvent,
    ResponseOutputAudioTranscriptDeltaEvent,
    ResponseOutputTextDeltaEvent,
)

log = logging.getLogger(__name__)

#: Responses remembered for :meth:`RealtimeBridgeSession.interrupted` (the newest; the gateway
#: plays one at a time, so only the last one or two can still be playing).
MAX_REMEMBERED_RESPONSES = 8


class RealtimeBridgeSession:
    """One call's bridge; see the module docstring."""

    def __init__(self, config: RealtimeBridgeConfig, ctx: CallContext) -> None:
        self.config = config
        self.call_id = ctx.call_id
        self.counters: Counter[str] = Counter()
        self._outbox = Outbox(config, self.counters)
        self._last_turn_item: str | None = None
        self._last_turn_audio: Pcm | None = None
        self._seq = 0
        self._connection: Connection | None = None
        self._connecting: asyncio.Task[Connection] | None = None
        self._shutdowns: list[asyncio.Task[None]] = []
        self._closed = False
        #: The gateway's response id -> the response upstream, newest last.
        self._responses: OrderedDict[str, PendingResponse] = OrderedDict()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: connect at first use
        self._connect_soon()

    # -- AgentSession -----------------------------------------------------------------------------

    def on_audio(self, pcm: Pcm, now: float) -> None:
        if not self._closed:
            self._outbox.add_audio(pcm)

    async def respond(self, turn: Turn) -> AsyncIterator[AgentOutput]:
        connection = await self._ready()
        self._seq += 1
        response = connection.open_response(f"vw{self._seq}")
        if turn.response_id is not None:
            self._remember(turn.response_id, response)
        self._commit_turn(turn, response)
        params = ResponseCreateParams(instructions=turn.instructions) if turn.instructions else None
        self._outbox.send(ResponseCreateEvent(event_id=f"{response.tag}_create", response=params))

        downsampler = Resampler(SERVER_RATE, self.config.sample_rate)
        loop = asyncio.get_running_loop()
        finished = False
        try:
            while True:
                event = await response.next()
                if isinstance(event, ResponseOutputAudioDeltaEvent):
                    try:
                        raw = base64.b64decode(event.delta, validate=True)
                    except ValueError:
                        self.counters["bad_audio_delta"] += 1
                        continue
                    pcm = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int16)
                    response.produced += len(pcm)
                    if response.first_audio_at is None:
                        response.first_audio_at = loop.time()
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
                    finished = True
                    status = event.response.status
                    if status == "failed":
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
                    return
        finally:
            connection.forget(response)
            if not finished:
                heard_ms = 0
                if response.first_audio_at is not None:
                    elapsed_ms = int(1000 * (loop.time() - response.first_audio_at))
                    heard_ms = min(response.produced_ms, elapsed_ms)
                self._cut_short(response, heard_ms, "cancelled")

    def interrupted(self, response_id: str, audio_end_ms: int) -> None:
        """The gateway cut the playback of its response ``response_id`` short after ``audio_end_ms``
        (:class:`~voxwire.agent.base.AgentSession`): cancel it upstream if the server still
        generates it, and truncate its item to the audio heard."""
        response = self._responses.pop(response_id, None)
        if response is not None:
            self._cut_short(response, audio_end_ms, "interrupted")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._outbox.clear()
        self._responses.clear()
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self._connection is not None:
            self._close_connection(self._connection)

    async def wait_closed(self) -> None:
        """Wait until every connection this session opened is closed (tests, orderly shutdown)."""
        if self._connecting is not None and not self._connecting.done():
            await asyncio.wait([self._connecting])
        for task in list(self._shutdowns):
            await task

    # -- turns and barge-in -----------------------------------------------------------------------

    def _commit_turn(self, turn: Turn, response: PendingResponse) -> None:
        """Commit the input buffer for a new turn, uploading the turn's own audio if none went up."""
        outbox = self._outbox
        outbox.flush_batch()
        if turn.item_id is not None and turn.item_id == self._last_turn_item:
            return  # another response to the same turn
        self._last_turn_item = turn.item_id
        fresh_audio = turn.audio is not self._last_turn_audio  # the gateway reuses the array
        self._last_turn_audio = turn.audio
        if not outbox.committable and fresh_audio and len(turn.audio):
            outbox.upload(turn.audio, turn.sample_rate)
        if outbox.committable:
            commit_id = f"{response.tag}_commit"
            response.event_ids.add(commit_id)
            outbox.commit(commit_id)

    def _remember(self, response_id: str, response: PendingResponse) -> None:
        self._responses[response_id] = response
        while len(self._responses) > MAX_REMEMBERED_RESPONSES:
            self._responses.popitem(last=False)

    def _cut_short(self, response: PendingResponse, heard_ms: int, how: str) -> None:
        """Barge-in upstream, best effort: nothing if the connection is gone (the next one is a new
        server session that never saw this response)."""
        connection = response.connection
        if self._closed or connection.closed:
            return
        cancelled = connection.cancel(response)
        truncated = connection.truncate(response, heard_ms)
        if cancelled or truncated:
            log.info(
                "call %s: model response %s %s after %d ms heard%s",
                self.call_id,
                response.tag,
                how,
                min(heard_ms, response.produced_ms),
                "" if cancelled else " (generation had ended)",
            )

    # -- connection -------------------------------------------------------------------------------

    def _close_connection(self, connection: Connection) -> None:
        task = connection.close()
        if task not in self._shutdowns:
            self._shutdowns.append(task)
            task.add_done_callback(self._shutdowns.remove)

    def _connect_soon(self) -> asyncio.Task[Connection]:
        task = asyncio.get_running_loop().create_task(self._connect())
        task.add_done_callback(_retrieve)
        self._connecting = task
        return task

    async def _ready(self) -> Connection:
        """The live connection: the one being made, or a new one (an earlier failure that no
        response reported yet is reported now, once)."""
        if self._closed:
            raise AgentError("the call is closed")
        connection = self._connection
        if connection is not None and not connection.closed:
            return connection
        task = self._connecting
        if task is None or (task.done() and (task.cancelled() or task.exception() is None)):
            task = self._connect_soon()
        try:
            return await asyncio.shield(task)  # a cancelled response leaves the attempt running
        finally:
            if task.done():
                self._connecting = None

    async def _connect(self) -> Connection:
        try:
            connection, created = await open_connection(
                self.config, self._outbox, self.counters, self.call_id
            )
        except AgentError as exc:
            if not self._closed:
                log.warning("call %s: %s", self.call_id, exc)
            raise
        if self._closed:
            await connection.close()
            raise AgentError("the call is closed")
        self._connection = connection
        self._outbox.new_connection(session_update(self.config))
        connection.start()
        log.info(
            "call %s: connected to the model server at %s (session %s)",
            self.call_id,
            safe_url(self.config.endpoint),
            created.session.id,
        )
        return connection


def _retrieve(task: asyncio.Task[Connection]) -> None:
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
