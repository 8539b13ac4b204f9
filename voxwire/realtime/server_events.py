"""Server events of the Realtime protocol (what the server sends): one model per ``type``, the
``realtime.response`` resource, and the :data:`SERVER_EVENTS` table used to read events from an
upstream Realtime server (:func:`voxwire.realtime.events.parse_server_event`).
"""

from __future__ import annotations

from typing import Any, Literal

from voxwire.realtime.items import Index, Item, Millis
from voxwire.realtime.session import AudioFormat, MaxOutputTokens, OutputModalities, Session, WireModel


class _ServerEvent(WireModel):
    event_id: str


class ErrorDetail(WireModel):
    _keep_null = frozenset({"code", "param", "event_id"})

    type: str
    code: str | None = None
    message: str
    param: str | None = None
    event_id: str | None = None


class ErrorEvent(_ServerEvent):
    type: Literal["error"] = "error"
    error: ErrorDetail


class SessionCreatedEvent(_ServerEvent):
    type: Literal["session.created"] = "session.created"
    session: Session


class SessionUpdatedEvent(_ServerEvent):
    type: Literal["session.updated"] = "session.updated"
    session: Session


class InputAudioBufferSpeechStartedEvent(_ServerEvent):
    type: Literal["input_audio_buffer.speech_started"] = "input_audio_buffer.speech_started"
    audio_start_ms: Millis
    item_id: str


class InputAudioBufferSpeechStoppedEvent(_ServerEvent):
    type: Literal["input_audio_buffer.speech_stopped"] = "input_audio_buffer.speech_stopped"
    audio_end_ms: Millis
    item_id: str


class InputAudioBufferCommittedEvent(_ServerEvent):
    _keep_null = frozenset({"previous_item_id"})

    type: Literal["input_audio_buffer.committed"] = "input_audio_buffer.committed"
    item_id: str
    previous_item_id: str | None = None


class InputAudioBufferClearedEvent(_ServerEvent):
    type: Literal["input_audio_buffer.cleared"] = "input_audio_buffer.cleared"


class InputAudioBufferTimeoutTriggeredEvent(_ServerEvent):
    type: Literal["input_audio_buffer.timeout_triggered"] = "input_audio_buffer.timeout_triggered"
    audio_start_ms: Millis
    audio_end_ms: Millis
    item_id: str


class ConversationItemAddedEvent(_ServerEvent):
    _keep_null = frozenset({"previous_item_id"})

    type: Literal["conversation.item.added"] = "conversation.item.added"
    item: Item
    previous_item_id: str | None = None


class ConversationItemDoneEvent(_ServerEvent):
    _keep_null = frozenset({"previous_item_id"})

    type: Literal["conversation.item.done"] = "conversation.item.done"
    item: Item
    previous_item_id: str | None = None


class ConversationItemDeletedEvent(_ServerEvent):
    type: Literal["conversation.item.deleted"] = "conversation.item.deleted"
    item_id: str


class ConversationItemRetrievedEvent(_ServerEvent):
    type: Literal["conversation.item.retrieved"] = "conversation.item.retrieved"
    item: Item


class ConversationItemTruncatedEvent(_ServerEvent):
    type: Literal["conversation.item.truncated"] = "conversation.item.truncated"
    item_id: str
    content_index: Index
    audio_end_ms: Millis


class InputAudioTranscriptionDeltaEvent(_ServerEvent):
    type: Literal["conversation.item.input_audio_transcription.delta"] = (
        "conversation.item.input_audio_transcription.delta"
    )
    item_id: str
    content_index: Index = 0
    delta: str


class TranscriptionUsageDuration(WireModel):
    type: Literal["duration"] = "duration"
    seconds: float


class InputAudioTranscriptionCompletedEvent(_ServerEvent):
    type: Literal["conversation.item.input_audio_transcription.completed"] = (
        "conversation.item.input_audio_transcription.completed"
    )
    item_id: str
    content_index: Index = 0
    transcript: str
    usage: TranscriptionUsageDuration | None = None


class ResponseStatusError(WireModel):
    type: str | None = None
    code: str | None = None
    message: str | None = None


class ResponseStatusDetails(WireModel):
    type: Literal["completed", "cancelled", "incomplete", "failed"] | None = None
    reason: Literal["turn_detected", "client_cancelled", "max_output_tokens", "content_filter"] | None = None
    error: ResponseStatusError | None = None


class ResponseAudioOutput(WireModel):
    format: AudioFormat | None = None
    voice: str | None = None


class ResponseAudio(WireModel):
    output: ResponseAudioOutput | None = None


class Response(WireModel):
    """The ``realtime.response`` resource of ``response.created`` / ``response.done``."""

    _keep_null = frozenset({"conversation_id", "status_details", "usage"})

    object: Literal["realtime.response"] = "realtime.response"
    id: str
    status: Literal["in_progress", "completed", "cancelled", "failed", "incomplete"]
    status_details: ResponseStatusDetails | None = None
    output: list[Item] = []
    conversation_id: str | None = None
    output_modalities: OutputModalities | None = None
    max_output_tokens: MaxOutputTokens | None = None
    audio: ResponseAudio | None = None
    metadata: dict[str, str] | None = None
    usage: dict[str, Any] | None = None


class ResponseCreatedEvent(_ServerEvent):
    type: Literal["response.created"] = "response.created"
    response: Response


class ResponseDoneEvent(_ServerEvent):
    type: Literal["response.done"] = "response.done"
    response: Response


class ResponseOutputItemAddedEvent(_ServerEvent):
    type: Literal["response.output_item.added"] = "response.output_item.added"
    response_id: str
    output_index: Index
    item: Item


class ResponseOutputItemDoneEvent(_ServerEvent):
    type: Literal["response.output_item.done"] = "response.output_item.done"
    response_id: str
    output_index: Index
    item: Item


class ContentPartInfo(WireModel):
    type: Literal["text", "audio"]
    text: str | None = None
    audio: str | None = None
    transcript: str | None = None


class ResponseContentPartAddedEvent(_ServerEvent):
    type: Literal["response.content_part.added"] = "response.content_part.added"
    response_id: str
    item_id: str
    output_index: Index
    content_index: Index
    part: ContentPartInfo


class ResponseContentPartDoneEvent(_ServerEvent):
    type: Literal["response.content_part.done"] = "response.content_part.done"
    response_id: str
    item_id: str
    output_index: Index
    content_index: Index
    part: ContentPartInfo


class _PartEvent(_ServerEvent):
    response_id: str
    item_id: str
    output_index: Index
    content_index: Index


class ResponseOutputAudioDeltaEvent(_PartEvent):
    type: Literal["response.output_audio.delta"] = "response.output_audio.delta"
    delta: str


class ResponseOutputAudioDoneEvent(_PartEvent):
    type: Literal["response.output_audio.done"] = "response.output_audio.done"


class ResponseOutputAudioTranscriptDeltaEvent(_PartEvent):
    type: Literal["response.output_audio_transcript.delta"] = "response.output_audio_transcript.delta"
    delta: str


class ResponseOutputAudioTranscriptDoneEvent(_PartEvent):
    type: Literal["response.output_audio_transcript.done"] = "response.output_audio_transcript.done"
    transcript: str


class ResponseOutputTextDeltaEvent(_PartEvent):
    type: Literal["response.output_text.delta"] = "response.output_text.delta"
    delta: str


class ResponseOutputTextDoneEvent(_PartEvent):
    type: Literal["response.output_text.done"] = "response.output_text.done"
    text: str


class OutputAudioBufferStartedEvent(_ServerEvent):
    type: Literal["output_audio_buffer.started"] = "output_audio_buffer.started"
    response_id: str


class OutputAudioBufferStoppedEvent(_ServerEvent):
    type: Literal["output_audio_buffer.stopped"] = "output_audio_buffer.stopped"
    response_id: str


class OutputAudioBufferClearedEvent(_ServerEvent):
    type: Literal["output_audio_buffer.cleared"] = "output_audio_buffer.cleared"
    response_id: str


class RateLimit(WireModel):
    name: Literal["requests", "tokens"] | None = None
    limit: int | None = None
    remaining: int | None = None
    reset_seconds: float | None = None


class RateLimitsUpdatedEvent(_ServerEvent):
    type: Literal["rate_limits.updated"] = "rate_limits.updated"
    rate_limits: list[RateLimit]


ServerEvent = (
    ErrorEvent
    | SessionCreatedEvent
    | SessionUpdatedEvent
    | InputAudioBufferSpeechStartedEvent
    | InputAudioBufferSpeechStoppedEvent
    | InputAudioBufferCommittedEvent
    | InputAudioBufferClearedEvent
    | InputAudioBufferTimeoutTriggeredEvent
    | ConversationItemAddedEvent
    | ConversationItemDoneEvent
    | ConversationItemDeletedEvent
    | ConversationItemRetrievedEvent
    | ConversationItemTruncatedEvent
    | InputAudioTranscriptionDeltaEvent
    | InputAudioTranscriptionCompletedEvent
    | ResponseCreatedEvent
    | ResponseDoneEvent
    | ResponseOutputItemAddedEvent
    | ResponseOutputItemDoneEvent
    | ResponseContentPartAddedEvent
    | ResponseContentPartDoneEvent
    | ResponseOutputAudioDeltaEvent
    | ResponseOutputAudioDoneEvent
    | ResponseOutputAudioTranscriptDeltaEvent
    | ResponseOutputAudioTranscriptDoneEvent
    | ResponseOutputTextDeltaEvent
    | ResponseOutputTextDoneEvent
    | OutputAudioBufferStartedEvent
    | OutputAudioBufferStoppedEvent
    | OutputAudioBufferClearedEvent
    | RateLimitsUpdatedEvent
)

SERVER_EVENTS: dict[str, type[_ServerEvent]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        ErrorEvent,
        SessionCreatedEvent,
        SessionUpdatedEvent,
        InputAudioBufferSpeechStartedEvent,
        InputAudioBufferSpeechStoppedEvent,
        InputAudioBufferCommittedEvent,
        InputAudioBufferClearedEvent,
        InputAudioBufferTimeoutTriggeredEvent,
        ConversationItemAddedEvent,
        ConversationItemDoneEvent,
        ConversationItemDeletedEvent,
        ConversationItemRetrievedEvent,
        ConversationItemTruncatedEvent,
        InputAudioTranscriptionDeltaEvent,
        InputAudioTranscriptionCompletedEvent,
        ResponseCreatedEvent,
        ResponseDoneEvent,
        ResponseOutputItemAddedEvent,
        ResponseOutputItemDoneEvent,
        ResponseContentPartAddedEvent,
        ResponseContentPartDoneEvent,
        ResponseOutputAudioDeltaEvent,
        ResponseOutputAudioDoneEvent,
        ResponseOutputAudioTranscriptDeltaEvent,
        ResponseOutputAudioTranscriptDoneEvent,
        ResponseOutputTextDeltaEvent,
        ResponseOutputTextDoneEvent,
        OutputAudioBufferStartedEvent,
        OutputAudioBufferStoppedEvent,
        OutputAudioBufferClearedEvent,
        RateLimitsUpdatedEvent,
    )
}
