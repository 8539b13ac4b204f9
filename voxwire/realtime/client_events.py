"""Client events of the Realtime protocol (what a client sends): one model per ``type``, the
``response`` object of ``response.create``, and the :data:`CLIENT_EVENTS` table the parser picks
from (:func:`voxwire.realtime.events.parse_client_event`).
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from voxwire.realtime.items import Base64, Id, Index, Item, Millis, check_base64
from voxwire.realtime.session import (
    AudioFormat,
    FunctionTool,
    MaxOutputTokens,
    OutputModalities,
    PromptRef,
    SessionUpdate,
    ToolChoice,
    WireModel,
    check_modalities,
    check_tools,
)

MAX_CLIENT_EVENT_ID = 512  # client event ids are echoed, never stored: a looser bound than item ids

ClientEventId = Annotated[str, Field(max_length=MAX_CLIENT_EVENT_ID)]


class _ClientEvent(WireModel):
    event_id: ClientEventId | None = None


class SessionUpdateEvent(_ClientEvent):
    type: Literal["session.update"] = "session.update"
    session: SessionUpdate


class InputAudioBufferAppendEvent(_ClientEvent):
    type: Literal["input_audio_buffer.append"] = "input_audio_buffer.append"
    audio: Base64

    @field_validator("audio")
    @classmethod
    def _audio(cls, v: str) -> str:
        return check_base64(v)

    def audio_bytes(self) -> bytes:
        """The decoded audio, in the session's input format."""
        return base64.b64decode(self.audio)


class InputAudioBufferCommitEvent(_ClientEvent):
    type: Literal["input_audio_buffer.commit"] = "input_audio_buffer.commit"


class InputAudioBufferClearEvent(_ClientEvent):
    type: Literal["input_audio_buffer.clear"] = "input_audio_buffer.clear"


class ConversationItemCreateEvent(_ClientEvent):
    type: Literal["conversation.item.create"] = "conversation.item.create"
    item: Item
    previous_item_id: Id | None = None


class ConversationItemDeleteEvent(_ClientEvent):
    type: Literal["conversation.item.delete"] = "conversation.item.delete"
    item_id: Id


class ConversationItemRetrieveEvent(_ClientEvent):
    type: Literal["conversation.item.retrieve"] = "conversation.item.retrieve"
    item_id: Id


class ConversationItemTruncateEvent(_ClientEvent):
    type: Literal["conversation.item.truncate"] = "conversation.item.truncate"
    item_id: Id
    content_index: Index
    audio_end_ms: Millis


class ResponseAudioOutputParams(WireModel):
    format: AudioFormat | None = None
    voice: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class ResponseAudioParams(WireModel):
    output: ResponseAudioOutputParams | None = None


Metadata = Annotated[
    dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]], Field(max_length=16)
]


class ResponseCreateParams(WireModel):
    """The ``response`` object of ``response.create``: per-response overrides of the session."""

    conversation: Literal["auto", "none"] | None = None
    input: Annotated[list[Item], Field(max_length=256)] | None = None
    instructions: Annotated[str, Field(max_length=131_072)] | None = None
    output_modalities: OutputModalities | None = None
    max_output_tokens: MaxOutputTokens | None = None
    metadata: Metadata | None = None
    audio: ResponseAudioParams | None = None
    tools: Annotated[list[FunctionTool], Field(max_length=128)] | None = None
    tool_choice: ToolChoice | None = None
    prompt: PromptRef | None = None

    @field_validator("output_modalities")
    @classmethod
    def _modalities(cls, v: list[str] | None) -> list[str] | None:
        return check_modalities(v)

    @field_validator("tools", mode="before")
    @classmethod
    def _tools(cls, v: Any) -> Any:
        return check_tools(v)


class ResponseCreateEvent(_ClientEvent):
    type: Literal["response.create"] = "response.create"
    response: ResponseCreateParams | None = None


class ResponseCancelEvent(_ClientEvent):
    type: Literal["response.cancel"] = "response.cancel"
    response_id: Id | None = None


class OutputAudioBufferClearEvent(_ClientEvent):
    type: Literal["output_audio_buffer.clear"] = "output_audio_buffer.clear"


ClientEvent = (
    SessionUpdateEvent
    | InputAudioBufferAppendEvent
    | InputAudioBufferCommitEvent
    | InputAudioBufferClearEvent
    | ConversationItemCreateEvent
    | ConversationItemDeleteEvent
    | ConversationItemRetrieveEvent
    | ConversationItemTruncateEvent
    | ResponseCreateEvent
    | ResponseCancelEvent
    | OutputAudioBufferClearEvent
)

CLIENT_EVENTS: dict[str, type[_ClientEvent]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        SessionUpdateEvent,
        InputAudioBufferAppendEvent,
        InputAudioBufferCommitEvent,
        InputAudioBufferClearEvent,
        ConversationItemCreateEvent,
        ConversationItemDeleteEvent,
        ConversationItemRetrieveEvent,
        ConversationItemTruncateEvent,
        ResponseCreateEvent,
        ResponseCancelEvent,
        OutputAudioBufferClearEvent,
    )
}

#: Client events that concern audio buffers and go to the audio layer, not the conversation.
AUDIO_CLIENT_EVENTS = frozenset(
    {
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "output_audio_buffer.clear",
    }
)
