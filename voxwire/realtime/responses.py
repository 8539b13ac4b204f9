"""The responses of one conversation while they are in progress: from ``response.created`` through
output items, content parts and deltas to ``response.done`` (the event order is in
:mod:`voxwire.realtime.conversation`). At most one response writes to the conversation at a time
(:attr:`Responses.active_id`); out-of-band ones (``conversation: "none"``) add no items. The public
operations are :class:`~voxwire.realtime.conversation.Conversation`'s, which documents them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from voxwire.realtime.client_events import ResponseCreateParams
from voxwire.realtime.common import CancelReason, ConversationError, FinalStatus, IdFactory
from voxwire.realtime.events import EventError
from voxwire.realtime.item_list import ItemList
from voxwire.realtime.items import Item, MessageItem, OutputAudio, OutputText
from voxwire.realtime.server_events import (
    ContentPartInfo,
    ConversationItemAddedEvent,
    ConversationItemDoneEvent,
    Response,
    ResponseAudio,
    ResponseAudioOutput,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
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
)
from voxwire.realtime.session import Session


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


class Responses:
    """The responses in progress and what they have produced so far."""

    # One instance per call (slots: ~50 bytes less each).
    __slots__ = (
        "_ids",
        "_items",
        "_conversation_id",
        "_max_responses",
        "_states",
        "active_id",
        "any_created",
        "assistant_audio",
    )

    def __init__(self, ids: IdFactory, items: ItemList, conversation_id: str, max_responses: int) -> None:
        self._ids = ids
        self._items = items
        self._conversation_id = conversation_id
        self._max_responses = max_responses
        self._states: dict[str, _ResponseState] = {}
        self.active_id: str | None = None  # the response writing to the conversation
        self.any_created = False  # once true, the model cannot change
        self.assistant_audio = False  # once true, the voice cannot change

    def params(self, response_id: str) -> ResponseCreateParams | None:
        return self._state(response_id, "response_params").params

    def busy_items(self) -> set[str | None]:
        """Ids of the items that responses in progress are writing (never evicted or deleted)."""
        return {o.item.id for st in self._states.values() for o in st.outputs}

    def truncated(self, item_id: str, item: MessageItem, audio_end_ms: int) -> None:
        """A barge-in truncated ``item``: the live output writing it goes on from the cut."""
        for st in self._states.values():
            for out in st.outputs:
                if out.item.id == item_id:
                    out.item, out.text, out.audio_ms = item, "", float(audio_end_ms)

    def _state(self, response_id: str, op: str) -> _ResponseState:
        st = self._states.get(response_id)
        if st is None:
            raise ConversationError(f"{op}: response {response_id} is not in progress")
        return st

    def create(self, params: ResponseCreateParams | None, session: Session) -> tuple[str, list[ServerEvent]]:
        in_conversation = params is None or params.conversation != "none"
        if in_conversation and self.active_id is not None:
            raise EventError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.active_id}. "
                "Wait until the response is finished before creating a new one.",
            )
        if len(self._states) >= self._max_responses:
            raise EventError(
                "too_many_active_responses",
                f"At most {self._max_responses} responses may be in progress at once.",
            )
        voice = params.audio.output.voice if params and params.audio and params.audio.output else None
        fmt = params.audio.output.format if params and params.audio and params.audio.output else None
        response = Response(
            id=self._ids("resp"),
            status="in_progress",
            status_details=None,
            output=[],
            conversation_id=self._conversation_id if in_conversation else None,
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
        self._states[response.id] = _ResponseState(response, params, in_conversation)
        self.any_created = True
        if in_conversation:
            self.active_id = response.id
        return response.id, [ResponseCreatedEvent(event_id=self._ids("event"), response=response)]

    def add_assistant_message(self, response_id: str) -> tuple[str, list[ServerEvent]]:
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
            evicted, previous = self._items.insert(item, len(self._items), self.busy_items())
            self._items.set_audio_ms(item.id, 0.0)
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
        st, index, out = self._output(response_id, item_id, "add_output_audio")
        out.audio_ms += duration_ms
        self.assistant_audio = True
        if out.in_conversation:
            self._items.set_audio_ms(item_id, out.audio_ms)
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

    def finish(
        self, response_id: str, status: FinalStatus = "completed", reason: CancelReason | None = None
    ) -> list[ServerEvent]:
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
            if out.in_conversation and self._items.get(out.item.id) is not None:
                position = self._items.index(out.item.id)
                self._items[position] = done
                events.append(
                    ConversationItemDoneEvent(
                        event_id=self._ids("event"),
                        item=done,
                        previous_item_id=self._items.previous_id(position),
                    )
                )
            final_items.append(done)
        details = None if status == "completed" else ResponseStatusDetails(type=status, reason=reason)
        response = st.response.model_copy(
            update={"status": status, "status_details": details, "output": final_items}
        )
        del self._states[response_id]
        if self.active_id == response_id:
            self.active_id = None
        events.append(ResponseDoneEvent(event_id=self._ids("event"), response=response))
        return events

    def cancel(
        self, response_id: str | None = None, reason: CancelReason = "client_cancelled"
    ) -> list[ServerEvent]:
        target = response_id if response_id is not None else self.active_id
        if target is None or target not in self._states:
            raise EventError(
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                param="response_id" if response_id is not None else None,
            )
        return self.finish(target, "cancelled", reason)
