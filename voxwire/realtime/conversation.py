"""A sans-IO Realtime conversation: the session configuration, the item list and the response
lifecycle of one call, driven by validated client events and by the audio/agent layer.

Theory of operation
-------------------
:class:`Conversation` holds state and returns the server events each step produces, in order, as
model objects; it never does I/O, never reads a clock and never draws random numbers: every id
(``event_``, ``item_``, ``resp_``, ``sess_``, ``conv_``) comes from the injected :data:`IdFactory`.

Two kinds of input:

* :meth:`Conversation.handle` takes a parsed client event that needs no audio (``session.update``,
  ``conversation.item.*``, ``response.create``/``response.cancel``). A client mistake becomes an
  ``error`` server event carrying the client's ``event_id``; the conversation is unchanged by it.
  Audio events (``input_audio_buffer.*``, ``output_audio_buffer.clear``) belong to the audio layer,
  which calls the methods below instead; passing one to ``handle`` is a :class:`ConversationError`.
* The audio/agent layer calls typed methods: :meth:`speech_started`, :meth:`commit_input_audio`,
  :meth:`create_response`, :meth:`add_assistant_message`, :meth:`add_output_audio`,
  :meth:`add_output_text`, :meth:`finish_response`, :meth:`cancel_response`, :meth:`truncate_item`,
  :meth:`output_audio_started` ... Misusing them (an unknown or finished response) raises
  :class:`ConversationError`, naming the response, its state and the operation.

Response lifecycle: ``response.created`` (status ``in_progress``) -> per output item
``response.output_item.added``, ``conversation.item.added``, ``response.content_part.added`` ->
deltas -> on finish, per item ``response.output_audio.done`` (audio), the transcript/text ``done``,
``response.content_part.done``, ``response.output_item.done``, ``conversation.item.done`` ->
``response.done`` with the final status. A cancelled response goes through the same ``done`` events
with status ``cancelled`` and reason ``client_cancelled`` or ``turn_detected``. At most one response
writes to the conversation at a time; out-of-band responses (``conversation: "none"``) add no items.

Memory bounds (ours): stored items never keep audio bytes (the audio layer owns audio; retrieved
items carry transcripts only); past ``max_items`` the oldest idle item is evicted and the client is
told with ``conversation.item.deleted``.

Rules taken from OpenAI's GA reference: ``previous_item_id`` ``"root"`` inserts at the start and an
unknown id is an error; only assistant messages can be truncated, and not past the audio they have;
truncating removes the transcript; the voice cannot change once assistant audio exists; the model
cannot change once a response exists (we allow choosing it before, so a client can pick an agent);
``response.cancel`` with nothing in progress is the error ``response_cancel_not_active``.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from voxwire.realtime.events import (
    AUDIO_CLIENT_EVENTS,
    ClientEvent,
    ContentPartInfo,
    ConversationItemAddedEvent,
    ConversationItemCreateEvent,
    ConversationItemDeletedEvent,
    ConversationItemDeleteEvent,
    ConversationItemDoneEvent,
    ConversationItemRetrievedEvent,
    ConversationItemRetrieveEvent,
    ConversationItemTruncatedEvent,
    ConversationItemTruncateEvent,
    EventError,
    InputAudio,
    InputAudioBufferClearedEvent,
    InputAudioBufferCommittedEvent,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    InputAudioBufferTimeoutTriggeredEvent,
    InputAudioTranscriptionCompletedEvent,
    Item,
    MessageItem,
    OutputAudio,
    OutputAudioBufferClearedEvent,
    OutputAudioBufferStartedEvent,
    OutputAudioBufferStoppedEvent,
    OutputText,
    Response,
    ResponseAudio,
    ResponseAudioOutput,
    ResponseCancelEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseCreateEvent,
    ResponseCreateParams,
    ResponseDoneEvent,
    ResponseOutputAudioDeltaEvent,
    ResponseOutputAudioDoneEvent,
    ResponseOutputAudioTranscriptDeltaEvent,
    ResponseOutputAudioTranscriptDoneEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputTextDeltaEvent,
    ResponseOutputTextDoneEvent,
    ResponseStatusDetails,
    ServerEvent,
    SessionCreatedEvent,
    SessionUpdatedEvent,
    SessionUpdateEvent,
)
from voxwire.realtime.session import Session, apply_update, default_session

IdFactory = Callable[[str], str]
"""Makes a fresh id for a prefix (``event``, ``item``, ``resp``, ``sess``, ``conv``)."""

FinalStatus = Literal["completed", "cancelled", "failed", "incomplete"]
CancelReason = Literal["client_cancelled", "turn_detected"]

_ALPHABET = string.digits + string.ascii_letters


def counter_ids() -> IdFactory:
    """Deterministic ids for tests: ``event_1``, ``item_2``, ... (one counter for all prefixes)."""
    count = 0

    def make(prefix: str) -> str:
        nonlocal count
        count += 1
        return f"{prefix}_{count}"

    return make


def random_ids(randbytes: Callable[[int], bytes]) -> IdFactory:
    """OpenAI-looking ids (prefix, underscore, 21 base62 characters, ~125 random bits) drawn from
    ``randbytes`` (for example ``secrets.token_bytes``)."""

    def make(prefix: str) -> str:
        n = int.from_bytes(randbytes(16), "big")
        chars = []
        for _ in range(21):
            n, r = divmod(n, 62)
            chars.append(_ALPHABET[r])
        return prefix + "_" + "".join(chars)

    return make


class ConversationError(Exception):
    """The audio/agent layer misused the conversation (a local bug, never a client's fault)."""


@dataclass
class _Output:
    item: MessageItem
    in_conversation: bool
    text: str = ""
    audio_ms: float = 0.0


@dataclass
class _ResponseState:
    response: Response
    params: ResponseCreateParams | None
    in_conversation: bool
    outputs: list[_Output] = field(default_factory=list)


def _previous(items: list[Item], index: int) -> str | None:
    return items[index - 1].id if index > 0 else None


class Conversation:
    """One call's conversation state; see the module docstring."""

    def __init__(
        self,
        ids: IdFactory,
        *,
        model: str,
        voice: str = "alloy",
        instructions: str = "",
        expires_at: int | None = None,
        max_items: int = 1024,
        max_responses: int = 8,
    ) -> None:
        assert max_items >= 2, "a conversation must hold at least a question and an answer"
        self._ids = ids
        self._session = default_session(
            ids("sess"), model=model, voice=voice, instructions=instructions, expires_at=expires_at
        )
        self.conversation_id = ids("conv")
        self._items: list[Item] = []
        self._max_items = max_items
        self._max_responses = max_responses
        self._responses: dict[str, _ResponseState] = {}
        self._conversation_response: str | None = None
        self._any_response = False
        self._assistant_audio = False
        self._pending_user_item: str | None = None
        self._audio_ms: dict[
            str, float
        ] = {}  # assistant item id -> audio produced (or kept after truncation)

    # -- views --------------------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        return self._session

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(self._items)

    @property
    def active_response_id(self) -> str | None:
        """The response writing to the conversation, if any."""
        return self._conversation_response

    def response_params(self, response_id: str) -> ResponseCreateParams | None:
        return self._state(response_id, "response_params").params

    def item(self, item_id: str) -> Item | None:
        for it in self._items:
            if it.id == item_id:
                return it
        return None

    # -- client events ------------------------------------------------------------------------------

    def created(self) -> list[ServerEvent]:
        """The first event of every session."""
        return [SessionCreatedEvent(event_id=self._ids("event"), session=self._session)]

    def error(self, err: EventError) -> list[ServerEvent]:
        """The ``error`` event for a refused client event (parse errors included)."""
        return [err.to_event(self._ids("event"))]

    def handle(self, event: ClientEvent) -> list[ServerEvent]:
        """Apply one non-audio client event; a client mistake yields one ``error`` event."""
        if event.type in AUDIO_CLIENT_EVENTS:
            raise ConversationError(f"{event.type} belongs to the audio layer, not Conversation.handle")
        try:
            if isinstance(event, SessionUpdateEvent):
                return self._session_update(event)
            if isinstance(event, ConversationItemCreateEvent):
                return self.create_item(event.item, event.previous_item_id)
            if isinstance(event, ConversationItemDeleteEvent):
                return self.delete_item(event.item_id)
            if isinstance(event, ConversationItemRetrieveEvent):
                return self.retrieve_item(event.item_id)
            if isinstance(event, ConversationItemTruncateEvent):
                return self.truncate_item(event.item_id, event.content_index, event.audio_end_ms)
            if isinstance(event, ResponseCreateEvent):
                return self.create_response(event.response)[1]
            if isinstance(event, ResponseCancelEvent):
                return self.cancel_response(event.response_id, "client_cancelled")
        except EventError as err:
            err.event_id = event.event_id
            return self.error(err)
        raise AssertionError(f"unhandled client event type {event.type}")

    def _session_update(self, event: SessionUpdateEvent) -> list[ServerEvent]:
        new = apply_update(self._session, event.session)
        if new.voice != self._session.voice and self._assistant_audio:
            raise EventError(
                "invalid_value",
                "Cannot update a conversation's voice if assistant audio is present.",
                param="session.audio.output.voice",
            )
        if new.model != self._session.model and self._any_response:
            raise EventError(
                "invalid_value",
                "Cannot change the model once a response has been created.",
                param="session.model",
            )
        self._session = new
        return [SessionUpdatedEvent(event_id=self._ids("event"), session=new)]

    # -- items --------------------------------------------------------------------------------------

    def _index(self, item_id: str, param: str = "item_id") -> int:
        for i, it in enumerate(self._items):
            if it.id == item_id:
                return i
        raise EventError("invalid_value", f"Item with item_id '{item_id}' not found.", param=param)

    def _insert(self, item: Item, index: int) -> tuple[list[ServerEvent], str | None]:
        """Insert, evicting the oldest idle items past the bound; returns evictions and previous id."""
        self._items.insert(index, item)
        evicted: list[ServerEvent] = []
        busy = {o.item.id for st in self._responses.values() for o in st.outputs}
        i = 0
        while len(self._items) > self._max_items and i < len(self._items):
            victim = self._items[i]
            if victim is item or victim.id in busy:
                i += 1
                continue
            del self._items[i]
            assert victim.id is not None, "stored items always have ids"
            self._audio_ms.pop(victim.id, None)
            evicted.append(ConversationItemDeletedEvent(event_id=self._ids("event"), item_id=victim.id))
        return evicted, _previous(self._items, self._items.index(item))

    def create_item(self, item: Item, previous_item_id: str | None = None) -> list[ServerEvent]:
        """``conversation.item.create``: insert a completed item; audio bytes are not kept."""
        if item.id is not None and self.item(item.id) is not None:
            raise EventError("invalid_value", f"Item with id '{item.id}' already exists.", param="item.id")
        if previous_item_id is None:
            index = len(self._items)
        elif previous_item_id == "root":
            index = 0
        else:
            index = self._index(previous_item_id, "previous_item_id") + 1
        stored = _strip_audio(item).model_copy(
            update={
                "id": item.id or self._ids("item"),
                "object": "realtime.item",
                "status": item.status or "completed",
            }
        )
        evicted, previous = self._insert(stored, index)
        return [
            *evicted,
            ConversationItemAddedEvent(event_id=self._ids("event"), item=stored, previous_item_id=previous),
            ConversationItemDoneEvent(event_id=self._ids("event"), item=stored, previous_item_id=previous),
        ]

    def delete_item(self, item_id: str) -> list[ServerEvent]:
        index = self._index(item_id)
        if any(o.item.id == item_id for st in self._responses.values() for o in st.outputs):
            raise EventError(
                "invalid_value", f"Item '{item_id}' belongs to a response in progress.", param="item_id"
            )
        del self._items[index]
        self._audio_ms.pop(item_id, None)
        return [ConversationItemDeletedEvent(event_id=self._ids("event"), item_id=item_id)]

    def retrieve_item(self, item_id: str) -> list[ServerEvent]:
        item = self._items[self._index(item_id)]
        return [ConversationItemRetrievedEvent(event_id=self._ids("event"), item=item)]

    def truncate_item(self, item_id: str, content_index: int, audio_end_ms: int) -> list[ServerEvent]:
        """Cut an assistant message's audio to what the user heard, dropping its transcript."""
        index = self._index(item_id)
        item = self._items[index]
        if not (isinstance(item, MessageItem) and item.role == "assistant"):
            raise EventError(
                "invalid_value", "Only assistant message items can be truncated.", param="item_id"
            )
        if content_index >= len(item.content) or not isinstance(item.content[content_index], OutputAudio):
            raise EventError(
                "invalid_value",
                f"Content part {content_index} of item '{item_id}' is not audio.",
                param="content_index",
            )
        have = self._audio_ms.get(item_id, 0.0)
        if audio_end_ms > have:
            raise EventError(
                "invalid_value",
                f"audio_end_ms {audio_end_ms} is longer than the item's audio ({int(have)} ms).",
                param="audio_end_ms",
            )
        content = list(item.content)
        content[content_index] = OutputAudio(transcript="")
        truncated = item.model_copy(update={"content": content})
        self._items[index] = truncated
        self._audio_ms[item_id] = float(audio_end_ms)
        for st in self._responses.values():  # a barge-in truncates the item of the live response
            for out in st.outputs:
                if out.item.id == item_id:
                    out.item, out.text, out.audio_ms = truncated, "", float(audio_end_ms)
        return [
            ConversationItemTruncatedEvent(
                event_id=self._ids("event"),
                item_id=item_id,
                content_index=content_index,
                audio_end_ms=audio_end_ms,
            )
        ]

    # -- input audio (called by the audio layer) ----------------------------------------------------

    def speech_started(self, audio_start_ms: int) -> tuple[str, list[ServerEvent]]:
        """VAD heard speech: reserve the id of the user item the turn will become."""
        item_id = self._pending_user_item or self._ids("item")
        self._pending_user_item = item_id
        return item_id, [
            InputAudioBufferSpeechStartedEvent(
                event_id=self._ids("event"), audio_start_ms=audio_start_ms, item_id=item_id
            )
        ]

    def speech_stopped(self, audio_end_ms: int) -> list[ServerEvent]:
        if self._pending_user_item is None:
            raise ConversationError("speech_stopped without speech_started")
        return [
            InputAudioBufferSpeechStoppedEvent(
                event_id=self._ids("event"), audio_end_ms=audio_end_ms, item_id=self._pending_user_item
            )
        ]

    def commit_input_audio(self) -> tuple[str, list[ServerEvent]]:
        """The input buffer became a user message (VAD end of turn, or the client's commit)."""
        item_id = self._pending_user_item or self._ids("item")
        self._pending_user_item = None
        item = MessageItem(
            id=item_id,
            object="realtime.item",
            status="completed",
            role="user",
            content=[InputAudio(transcript=None)],
        )
        evicted, previous = self._insert(item, len(self._items))
        return item_id, [
            InputAudioBufferCommittedEvent(
                event_id=self._ids("event"), item_id=item_id, previous_item_id=previous
            ),
            *evicted,
            ConversationItemAddedEvent(event_id=self._ids("event"), item=item, previous_item_id=previous),
            ConversationItemDoneEvent(event_id=self._ids("event"), item=item, previous_item_id=previous),
        ]

    def idle_timeout(self, audio_start_ms: int, audio_end_ms: int) -> list[ServerEvent]:
        """``idle_timeout_ms`` passed without speech after the assistant finished: the buffer's
        silence becomes a user item (``input_audio_buffer.timeout_triggered`` then the commit)."""
        item_id = self._pending_user_item or self._ids("item")
        self._pending_user_item = item_id
        event = InputAudioBufferTimeoutTriggeredEvent(
            event_id=self._ids("event"), audio_start_ms=audio_start_ms, audio_end_ms=audio_end_ms, item_id=item_id
        )
        return [event, *self.commit_input_audio()[1]]

    def input_audio_cleared(self) -> list[ServerEvent]:
        self._pending_user_item = None
        return [InputAudioBufferClearedEvent(event_id=self._ids("event"))]

    def input_transcript(self, item_id: str, transcript: str) -> list[ServerEvent]:
        """The transcript of a committed user audio item; stored on the item and announced."""
        for index, item in enumerate(self._items):
            if item.id == item_id and isinstance(item, MessageItem):
                content = [
                    InputAudio(transcript=transcript) if isinstance(p, InputAudio) else p
                    for p in item.content
                ]
                self._items[index] = item.model_copy(update={"content": content})
        return [
            InputAudioTranscriptionCompletedEvent(
                event_id=self._ids("event"), item_id=item_id, content_index=0, transcript=transcript
            )
        ]

    # -- responses ----------------------------------------------------------------------------------

    def _state(self, response_id: str, op: str) -> _ResponseState:
        st = self._responses.get(response_id)
        if st is None:
            raise ConversationError(f"{op}: response {response_id} is not in progress")
        return st

    def create_response(self, params: ResponseCreateParams | None = None) -> tuple[str, list[ServerEvent]]:
        """``response.create`` (from the client, or from VAD with ``create_response``)."""
        in_conversation = params is None or params.conversation != "none"
        if in_conversation and self._conversation_response is not None:
            raise EventError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self._conversation_response}. "
                "Wait until the response is finished before creating a new one.",
            )
        if len(self._responses) >= self._max_responses:
            raise EventError(
                "too_many_active_responses",
                f"At most {self._max_responses} responses may be in progress at once.",
            )
        session = self._session
        voice = params.audio.output.voice if params and params.audio and params.audio.output else None
        fmt = params.audio.output.format if params and params.audio and params.audio.output else None
        response = Response(
            id=self._ids("resp"),
            status="in_progress",
            status_details=None,
            output=[],
            conversation_id=self.conversation_id if in_conversation else None,
            output_modalities=(
                params.output_modalities if params and params.output_modalities else session.output_modalities
            ),
            max_output_tokens=(
                params.max_output_tokens if params and params.max_output_tokens else session.max_output_tokens
            ),
            audio=ResponseAudio(
                output=ResponseAudioOutput(
                    format=fmt or session.audio_output.format, voice=voice or session.voice
                )
            ),
            metadata=params.metadata if params else None,
            usage=None,
        )
        assert response.id is not None
        self._responses[response.id] = _ResponseState(response, params, in_conversation)
        self._any_response = True
        if in_conversation:
            self._conversation_response = response.id
        return response.id, [ResponseCreatedEvent(event_id=self._ids("event"), response=response)]

    def add_assistant_message(self, response_id: str) -> tuple[str, list[ServerEvent]]:
        """Open an assistant message in the response: audio with transcript, or text, following the
        response's output modalities."""
        st = self._state(response_id, "add_assistant_message")
        audio = st.response.output_modalities != ["text"]
        part = OutputAudio(transcript="") if audio else OutputText(text="")
        item = MessageItem(
            id=self._ids("item"),
            object="realtime.item",
            status="in_progress",
            role="assistant",
            content=[part],
        )
        assert item.id is not None
        output_index = len(st.outputs)
        st.outputs.append(_Output(item, st.in_conversation))
        events: list[ServerEvent] = [
            ResponseOutputItemAddedEvent(
                event_id=self._ids("event"), response_id=response_id, output_index=output_index, item=item
            )
        ]
        if st.in_conversation:
            evicted, previous = self._insert(item, len(self._items))
            self._audio_ms[item.id] = 0.0
            events += [
                *evicted,
                ConversationItemAddedEvent(event_id=self._ids("event"), item=item, previous_item_id=previous),
            ]
        events.append(
            ResponseContentPartAddedEvent(
                event_id=self._ids("event"),
                response_id=response_id,
                item_id=item.id,
                output_index=output_index,
                content_index=0,
                part=ContentPartInfo(type="audio", transcript="")
                if audio
                else ContentPartInfo(type="text", text=""),
            )
        )
        return item.id, events

    def _output(self, response_id: str, item_id: str, op: str) -> tuple[_ResponseState, int, _Output]:
        st = self._state(response_id, op)
        for index, out in enumerate(st.outputs):
            if out.item.id == item_id:
                return st, index, out
        raise ConversationError(f"{op}: item {item_id} is not an output of response {response_id}")

    def add_output_audio(
        self, response_id: str, item_id: str, duration_ms: float, delta: str | None = None
    ) -> list[ServerEvent]:
        """Account for assistant audio produced (WebRTC carries it over RTP: no event). With ``delta``
        (base64, for WebSocket transports) a ``response.output_audio.delta`` is emitted."""
        st, index, out = self._output(response_id, item_id, "add_output_audio")
        out.audio_ms += duration_ms
        self._assistant_audio = True
        if out.in_conversation:
            self._audio_ms[item_id] = out.audio_ms
        if delta is None:
            return []
        return [
            ResponseOutputAudioDeltaEvent(
                event_id=self._ids("event"),
                response_id=response_id,
                item_id=item_id,
                output_index=index,
                content_index=0,
                delta=delta,
            )
        ]

    def add_output_text(self, response_id: str, item_id: str, delta: str) -> list[ServerEvent]:
        """Transcript of the assistant audio (or the text, for text responses), incrementally."""
        st, index, out = self._output(response_id, item_id, "add_output_text")
        out.text += delta
        kind = (
            ResponseOutputAudioTranscriptDeltaEvent
            if isinstance(out.item.content[0], OutputAudio)
            else ResponseOutputTextDeltaEvent
        )
        return [
            kind(
                event_id=self._ids("event"),
                response_id=response_id,
                item_id=item_id,
                output_index=index,
                content_index=0,
                delta=delta,
            )
        ]

    def finish_response(
        self, response_id: str, status: FinalStatus = "completed", reason: CancelReason | None = None
    ) -> list[ServerEvent]:
        """Close every open output item and the response (``response.done``)."""
        st = self._state(response_id, "finish_response")
        events: list[ServerEvent] = []
        item_status: Literal["completed", "incomplete"] = (
            "completed" if status == "completed" else "incomplete"
        )
        final_items: list[Item] = []
        for index, out in enumerate(st.outputs):
            assert out.item.id is not None
            ids: dict[str, Any] = {
                "response_id": response_id,
                "item_id": out.item.id,
                "output_index": index,
                "content_index": 0,
            }
            if isinstance(out.item.content[0], OutputAudio):
                part_info = ContentPartInfo(type="audio", transcript=out.text)
                done = MessageItem(
                    id=out.item.id,
                    object="realtime.item",
                    status=item_status,
                    role="assistant",
                    content=[OutputAudio(transcript=out.text)],
                )
                events += [
                    ResponseOutputAudioDoneEvent(event_id=self._ids("event"), **ids),
                    ResponseOutputAudioTranscriptDoneEvent(
                        event_id=self._ids("event"), transcript=out.text, **ids
                    ),
                ]
            else:
                part_info = ContentPartInfo(type="text", text=out.text)
                done = MessageItem(
                    id=out.item.id,
                    object="realtime.item",
                    status=item_status,
                    role="assistant",
                    content=[OutputText(text=out.text)],
                )
                events.append(ResponseOutputTextDoneEvent(event_id=self._ids("event"), text=out.text, **ids))
            events += [
                ResponseContentPartDoneEvent(event_id=self._ids("event"), part=part_info, **ids),
                ResponseOutputItemDoneEvent(
                    event_id=self._ids("event"), response_id=response_id, output_index=index, item=done
                ),
            ]
            if out.in_conversation and self.item(out.item.id) is not None:
                position = self._index(out.item.id)
                self._items[position] = done
                events.append(
                    ConversationItemDoneEvent(
                        event_id=self._ids("event"),
                        item=done,
                        previous_item_id=_previous(self._items, position),
                    )
                )
            final_items.append(done)
        details = None if status == "completed" else ResponseStatusDetails(type=status, reason=reason)
        response = st.response.model_copy(
            update={"status": status, "status_details": details, "output": final_items}
        )
        del self._responses[response_id]
        if self._conversation_response == response_id:
            self._conversation_response = None
        events.append(ResponseDoneEvent(event_id=self._ids("event"), response=response))
        return events

    def cancel_response(
        self, response_id: str | None = None, reason: CancelReason = "client_cancelled"
    ) -> list[ServerEvent]:
        """``response.cancel``: finish the given (default: the conversation's) response as cancelled.
        Raises :class:`EventError` ``response_cancel_not_active`` when there is nothing to cancel."""
        target = response_id if response_id is not None else self._conversation_response
        if target is None or target not in self._responses:
            raise EventError(
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                param="response_id" if response_id is not None else None,
            )
        return self.finish_response(target, "cancelled", reason)

    # -- output audio buffer (WebRTC: the server plays the audio) -----------------------------------

    def output_audio_started(self, response_id: str) -> list[ServerEvent]:
        return [OutputAudioBufferStartedEvent(event_id=self._ids("event"), response_id=response_id)]

    def output_audio_stopped(self, response_id: str) -> list[ServerEvent]:
        return [OutputAudioBufferStoppedEvent(event_id=self._ids("event"), response_id=response_id)]

    def output_audio_cleared(self, response_id: str) -> list[ServerEvent]:
        return [OutputAudioBufferClearedEvent(event_id=self._ids("event"), response_id=response_id)]


def _strip_audio(item: Item) -> Item:
    if not isinstance(item, MessageItem):
        return item
    content = [
        p.model_copy(update={"audio": None}) if isinstance(p, InputAudio | OutputAudio) else p
        for p in item.content
    ]
    return item.model_copy(update={"content": content})


__all__ = [
    "CancelReason",
    "Conversation",
    "ConversationError",
    "FinalStatus",
    "IdFactory",
    "counter_ids",
    "random_ids",
]
