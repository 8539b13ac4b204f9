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

Layout: :class:`Conversation` is the public surface and owns the session and the input-audio turn;
it composes the item list (:mod:`~voxwire.realtime.item_list`) and the responses in progress
(:mod:`~voxwire.realtime.responses`). Ids and the shared types are in :mod:`~voxwire.realtime.common`.
"""

from __future__ import annotations

from voxwire.realtime.client_events import (
    AUDIO_CLIENT_EVENTS,
    ClientEvent,
    ConversationItemCreateEvent,
    ConversationItemDeleteEvent,
    ConversationItemRetrieveEvent,
    ConversationItemTruncateEvent,
    ResponseCancelEvent,
    ResponseCreateEvent,
    ResponseCreateParams,
    SessionUpdateEvent,
)
from voxwire.realtime.common import (
    CancelReason,
    ConversationError,
    FinalStatus,
    IdFactory,
    counter_ids,
    random_ids,
)
from voxwire.realtime.events import EventError
from voxwire.realtime.item_list import ItemList
from voxwire.realtime.items import InputAudio, Item, MessageItem, OutputAudio
from voxwire.realtime.responses import Responses
from voxwire.realtime.server_events import (
    ConversationItemAddedEvent,
    ConversationItemDeletedEvent,
    ConversationItemDoneEvent,
    ConversationItemRetrievedEvent,
    ConversationItemTruncatedEvent,
    InputAudioBufferClearedEvent,
    InputAudioBufferCommittedEvent,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    InputAudioBufferTimeoutTriggeredEvent,
    InputAudioTranscriptionCompletedEvent,
    OutputAudioBufferClearedEvent,
    OutputAudioBufferStartedEvent,
    OutputAudioBufferStoppedEvent,
    ServerEvent,
    SessionCreatedEvent,
    SessionUpdatedEvent,
)
from voxwire.realtime.session import Session, apply_update, session_template


class Conversation:
    """One call's conversation state; see the module docstring."""

    # One instance per call (slots: ~50 bytes less each).
    __slots__ = (
        "_ids",
        "_settings",
        "_own",
        "_session_id",
        "_expires_at",
        "conversation_id",
        "_items",
        "_responses",
        "_pending_user_item",
    )

    def __init__(
        self,
        ids: IdFactory,
        *,
        model: str,
        voice: str = "alloy",
        instructions: str = "",
        expires_at: int | None = None,
        defaults: tuple[str, ...] = (),
        max_items: int = 1024,
        max_responses: int = 8,
    ) -> None:
        assert max_items >= 2, "a conversation must hold at least a question and an answer"
        self._ids = ids
        # The session starts as the shared template; its own copy, with this conversation's id and
        # expiry, is made when something reads it whole (session.created) or updates it. A call
        # whose client never opens the events channel never pays for the copy (~1.2 KB).
        self._settings = session_template(model, voice, instructions, defaults)
        self._own = False  # whether _settings is this conversation's copy yet
        self._session_id = ids("sess")
        self._expires_at = expires_at
        self.conversation_id = ids("conv")
        self._items = ItemList(ids, max_items)
        self._responses = Responses(ids, self._items, self.conversation_id, max_responses)
        self._pending_user_item: str | None = None

    # -- views --------------------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The effective session, this conversation's own."""
        if not self._own:
            self._settings = self._settings.model_copy(update={"id": self._session_id, "expires_at": self._expires_at})
            self._own = True
        return self._settings

    @property
    def settings(self) -> Session:
        """The effective configuration, without making the session's own copy: its ``id`` and
        ``expires_at`` may be the shared template's placeholders (read :attr:`session` for those)."""
        return self._settings

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(self._items)

    @property
    def active_response_id(self) -> str | None:
        """The response writing to the conversation, if any."""
        return self._responses.active_id

    def response_params(self, response_id: str) -> ResponseCreateParams | None:
        return self._responses.params(response_id)

    def item(self, item_id: str) -> Item | None:
        return self._items.get(item_id)

    # -- client events ------------------------------------------------------------------------------

    def created(self) -> list[ServerEvent]:
        """The first event of every session."""
        return [SessionCreatedEvent(event_id=self._ids("event"), session=self.session)]

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
        current = self.session
        new = apply_update(current, event.session)
        if new.voice != current.voice and self._responses.assistant_audio:
            raise EventError(
                "invalid_value",
                "Cannot update a conversation's voice if assistant audio is present.",
                param="session.audio.output.voice",
            )
        if new.model != current.model and self._responses.any_created:
            raise EventError(
                "invalid_value",
                "Cannot change the model once a response has been created.",
                param="session.model",
            )
        self._settings = new  # apply_update copied the conversation's own session: still its own
        return [SessionUpdatedEvent(event_id=self._ids("event"), session=new)]

    # -- items --------------------------------------------------------------------------------------

    def create_item(self, item: Item, previous_item_id: str | None = None) -> list[ServerEvent]:
        """``conversation.item.create``: insert a completed item; audio bytes are not kept."""
        if item.id is not None and self._items.get(item.id) is not None:
            raise EventError("invalid_value", f"Item with id '{item.id}' already exists.", param="item.id")
        if previous_item_id is None:
            index = len(self._items)
        elif previous_item_id == "root":
            index = 0
        else:
            index = self._items.index(previous_item_id, "previous_item_id") + 1
        stored = _strip_audio(item).model_copy(
            update={
                "id": item.id or self._ids("item"),
                "object": "realtime.item",
                "status": item.status or "completed",
            }
        )
        evicted, previous = self._items.insert(stored, index, self._responses.busy_items())
        return [
            *evicted,
            ConversationItemAddedEvent(event_id=self._ids("event"), item=stored, previous_item_id=previous),
            ConversationItemDoneEvent(event_id=self._ids("event"), item=stored, previous_item_id=previous),
        ]

    def delete_item(self, item_id: str) -> list[ServerEvent]:
        index = self._items.index(item_id)
        if item_id in self._responses.busy_items():
            raise EventError(
                "invalid_value", f"Item '{item_id}' belongs to a response in progress.", param="item_id"
            )
        self._items.delete(index)
        return [ConversationItemDeletedEvent(event_id=self._ids("event"), item_id=item_id)]

    def retrieve_item(self, item_id: str) -> list[ServerEvent]:
        item = self._items[self._items.index(item_id)]
        return [ConversationItemRetrievedEvent(event_id=self._ids("event"), item=item)]

    def truncate_item(self, item_id: str, content_index: int, audio_end_ms: int) -> list[ServerEvent]:
        """Cut an assistant message's audio to what the user heard, dropping its transcript."""
        index = self._items.index(item_id)
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
        have = self._items.audio_ms(item_id)
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
        self._items.set_audio_ms(item_id, float(audio_end_ms))
        self._responses.truncated(item_id, truncated, audio_end_ms)  # a barge-in cuts the live response
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
        evicted, previous = self._items.insert(item, len(self._items), self._responses.busy_items())
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
            event_id=self._ids("event"),
            audio_start_ms=audio_start_ms,
            audio_end_ms=audio_end_ms,
            item_id=item_id,
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

    # -- responses (see voxwire.realtime.responses) -------------------------------------------------

    def create_response(self, params: ResponseCreateParams | None = None) -> tuple[str, list[ServerEvent]]:
        """``response.create`` (from the client, or from VAD with ``create_response``)."""
        return self._responses.create(params, self._settings)

    def add_assistant_message(self, response_id: str) -> tuple[str, list[ServerEvent]]:
        """Open an assistant message in the response: audio with transcript, or text, following the
        response's output modalities."""
        return self._responses.add_assistant_message(response_id)

    def add_output_audio(
        self, response_id: str, item_id: str, duration_ms: float, delta: str | None = None
    ) -> list[ServerEvent]:
        """Account for assistant audio produced (WebRTC carries it over RTP: no event). With ``delta``
        (base64, for WebSocket transports) a ``response.output_audio.delta`` is emitted."""
        return self._responses.add_output_audio(response_id, item_id, duration_ms, delta)

    def add_output_text(self, response_id: str, item_id: str, delta: str) -> list[ServerEvent]:
        """Transcript of the assistant audio (or the text, for text responses), incrementally."""
        return self._responses.add_output_text(response_id, item_id, delta)

    def finish_response(
        self, response_id: str, status: FinalStatus = "completed", reason: CancelReason | None = None
    ) -> list[ServerEvent]:
        """Close every open output item and the response (``response.done``)."""
        return self._responses.finish(response_id, status, reason)

    def cancel_response(
        self, response_id: str | None = None, reason: CancelReason = "client_cancelled"
    ) -> list[ServerEvent]:
        """``response.cancel``: finish the given (default: the conversation's) response as cancelled.
        Raises :class:`EventError` ``response_cancel_not_active`` when there is nothing to cancel."""
        return self._responses.cancel(response_id, reason)

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
