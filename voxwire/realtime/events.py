"""The Realtime event protocol (``oai-events`` data channel, sideband WebSocket): every client and
server event as a validated, immutable model, with one parser and one serializer per direction.

Theory of operation
-------------------
:func:`parse_client_event` is the only way client text becomes an event. It checks the size first,
decodes JSON (rejecting NaN/Infinity and lone surrogates, which no JSON peer should send), reads
``type``, picks the model from a table, and validates it strictly: no type coercion, unknown fields
rejected. Anything wrong raises :class:`EventError` with an OpenAI-style ``code``, a ``message``
naming the problem, the offending ``param`` as a dotted path (``session.audio.input.format.rate``,
``item.content[0].type``) and the client's ``event_id`` when one could be read, so the session
answers with an ``error`` server event (:meth:`EventError.to_event`) and stays up. Nothing else
escapes the parser.

:func:`serialize_server_event` writes compact JSON, leaving out ``None`` fields except those where
``null`` carries meaning (``previous_item_id``, ``turn_detection``, ``error.param`` ...).
:func:`serialize_client_event` / :func:`parse_server_event` are the other direction, for the bridge
to upstream Realtime servers; ``parse_server_event`` ignores unknown fields (servers add fields).

Limits (ours): an event is at most :data:`MAX_EVENT_BYTES` (256 KiB, the data channel's
``a=max-message-size``) of UTF-8 text, so one ``input_audio_buffer.append`` carries at most ~192 KiB
of decoded audio (about 4 s of 24 kHz PCM16). OpenAI allows up to 15 MiB per append; clients that
stream in small chunks, as OpenAI recommends, never notice. ``event_id`` and item ids are at most
:data:`MAX_ID_LENGTH` characters.

Facts relied on (OpenAI GA Realtime API reference and the generated ``openai`` Python SDK types):

* Client events: ``session.update`` {session}, ``input_audio_buffer.append`` {audio: base64},
  ``input_audio_buffer.commit``, ``input_audio_buffer.clear``, ``conversation.item.create`` {item,
  previous_item_id?: id | "root"}, ``conversation.item.delete`` / ``.retrieve`` {item_id},
  ``conversation.item.truncate`` {item_id, content_index, audio_end_ms}, ``response.create``
  {response?}, ``response.cancel`` {response_id?}, ``output_audio_buffer.clear`` (WebRTC/SIP only);
  each with an optional client ``event_id``.
* GA renamed events: ``response.output_audio.delta/done``, ``response.output_audio_transcript.delta
  /done``, ``response.output_text.delta/done``; ``conversation.item.added`` and
  ``conversation.item.done`` carry {item, previous_item_id}.
* Items: ``message`` with role ``system`` (``input_text``), ``user`` (``input_text``,
  ``input_audio``), ``assistant`` (``output_text``, ``output_audio``); ``function_call`` {name,
  arguments, call_id}; ``function_call_output`` {call_id, output}; ``object`` is
  ``realtime.item``; ``status`` is ``completed`` | ``incomplete`` | ``in_progress``.
* ``error`` is {event_id, error: {type, code, message, param, event_id}}, the inner ``event_id``
  being the client event that caused it; errors are recoverable and the session stays open.
* Response: ``object`` ``realtime.response``; status ``in_progress`` | ``completed`` | ``cancelled``
  | ``failed`` | ``incomplete``; ``status_details.reason`` ``turn_detected`` | ``client_cancelled``
  for cancelled responses; ``response.cancel`` with nothing to cancel is an error and the session is
  unaffected. ``output_audio_buffer.started/stopped/cleared`` carry {response_id}.
* ``rate_limits.updated`` {rate_limits: [{name: requests|tokens, limit, remaining, reset_seconds}]}.
* Error codes ``missing_required_parameter``, ``unknown_parameter``, ``invalid_value`` with messages
  "Missing required parameter: 'session.type'." / "Unknown parameter: '...'." come from error
  bodies of the GA endpoint quoted in public reports, as does ``response_cancel_not_active``
  ("Cancellation failed: no active response found"). The other codes are ours or follow OpenAI's
  general API style (``invalid_type``, ``integer_above_max_value``, ``string_above_max_length``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from voxwire.realtime.session import (
    AudioFormat,
    FunctionTool,
    MaxOutputTokens,
    OutputModalities,
    PromptRef,
    Session,
    SessionUpdate,
    ToolChoice,
    WireModel,
    check_modalities,
    check_tools,
)

MAX_EVENT_BYTES = 256 * 1024
MAX_ID_LENGTH = 64
_MAX_EVENT_ID = 512  # client event ids are echoed, never stored: a looser bound than item ids

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
ClientEventId = Annotated[str, Field(max_length=_MAX_EVENT_ID)]
Index = Annotated[int, Field(ge=0, le=1 << 31)]
Millis = Annotated[int, Field(ge=0, le=1 << 40)]
ItemStatus = Literal["completed", "incomplete", "in_progress"]


class EventError(Exception):
    """A client event was refused. Carries what the ``error`` server event reports."""

    def __init__(self, code: str, message: str, event_id: str | None = None, param: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.event_id = event_id
        self.param = param

    def __repr__(self) -> str:
        return (
            f"EventError({self.code!r}, {self.message!r}, event_id={self.event_id!r}, param={self.param!r})"
        )

    def to_event(self, server_event_id: str) -> ErrorEvent:
        return ErrorEvent(
            event_id=server_event_id,
            error=ErrorDetail(
                type="invalid_request_error",
                code=self.code,
                message=self.message,
                param=self.param,
                event_id=self.event_id,
            ),
        )


def _b64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError("invalid_value", "Invalid base64 audio data") from None
    return value


Base64 = Annotated[str, Field(max_length=MAX_EVENT_BYTES)]


# ---------------------------------------------------------------------------------------------------
# Conversation items


class InputText(WireModel):
    type: Literal["input_text"] = "input_text"
    text: str


class InputAudio(WireModel):
    _keep_null = frozenset({"transcript"})

    type: Literal["input_audio"] = "input_audio"
    audio: Base64 | None = None
    transcript: str | None = None

    @field_validator("audio")
    @classmethod
    def _audio(cls, v: str | None) -> str | None:
        return None if v is None else _b64(v)


class OutputText(WireModel):
    type: Literal["output_text"] = "output_text"
    text: str


class OutputAudio(WireModel):
    type: Literal["output_audio"] = "output_audio"
    audio: Base64 | None = None
    transcript: str | None = None

    @field_validator("audio")
    @classmethod
    def _audio(cls, v: str | None) -> str | None:
        return None if v is None else _b64(v)


ContentPart = Annotated[InputText | InputAudio | OutputText | OutputAudio, Field(discriminator="type")]

_PARTS_FOR_ROLE: dict[str, frozenset[str]] = {
    "system": frozenset({"input_text"}),
    "user": frozenset({"input_text", "input_audio"}),
    "assistant": frozenset({"output_text", "output_audio"}),
}


class _ItemBase(WireModel):
    id: Id | None = None
    object: Literal["realtime.item"] | None = None
    status: ItemStatus | None = None


class MessageItem(_ItemBase):
    type: Literal["message"] = "message"
    role: Literal["system", "user", "assistant"]
    content: Annotated[list[ContentPart], Field(max_length=64)]

    @field_validator("content")
    @classmethod
    def _parts_match_role(cls, content: list[ContentPart], info: ValidationInfo) -> list[ContentPart]:
        role = info.data.get("role")
        allowed = _PARTS_FOR_ROLE.get(role, frozenset()) if isinstance(role, str) else frozenset()
        for index, part in enumerate(content):
            if part.type not in allowed:
                raise PydanticCustomError(
                    "invalid_value",
                    "content[{index}] has type '{part}', which a {role} message cannot hold; allowed: {allowed}",
                    {"index": index, "part": part.type, "role": role, "allowed": ", ".join(sorted(allowed))},
                )
        return content


class FunctionCallItem(_ItemBase):
    type: Literal["function_call"] = "function_call"
    name: Annotated[str, Field(max_length=64)]
    arguments: str
    call_id: Id | None = None


class FunctionCallOutputItem(_ItemBase):
    type: Literal["function_call_output"] = "function_call_output"
    call_id: Id
    output: str


Item = Annotated[MessageItem | FunctionCallItem | FunctionCallOutputItem, Field(discriminator="type")]


# ---------------------------------------------------------------------------------------------------
# Client events


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
        return _b64(v)

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


# ---------------------------------------------------------------------------------------------------
# Server events


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


# ---------------------------------------------------------------------------------------------------
# Parsing and serialization

_LONE_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def _load_object(text: str | bytes, max_bytes: int, what: str) -> dict[str, Any]:
    if len(text) > max_bytes or (
        isinstance(text, str) and len(text.encode("utf-8", "surrogatepass")) > max_bytes
    ):
        raise EventError("event_too_large", f"{what} is larger than {max_bytes} bytes")
    try:
        raw = text.decode("utf-8") if isinstance(text, bytes) else text
        data = json.loads(raw, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise EventError("invalid_json", f"{what} is not valid JSON: {_clip(str(exc))}") from None
    if _LONE_SURROGATE_ESCAPE.search(raw):
        try:
            lone = _has_lone_surrogate(data)
        except RecursionError:
            lone = True
        if lone:
            raise EventError("invalid_json", f"{what} contains a lone UTF-16 surrogate")
    if not isinstance(data, dict):
        raise EventError("invalid_json", f"{what} must be a JSON object, got {_json_kind(data)}")
    return data


def parse_client_event(text: str | bytes, *, max_bytes: int = MAX_EVENT_BYTES) -> ClientEvent:
    """Validate one client event. Raises :class:`EventError` and nothing else."""
    data = _load_object(text, max_bytes, "Event")
    raw_id = data.get("event_id")
    event_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= _MAX_EVENT_ID else None
    kind = data.get("type")
    if kind is None:
        raise EventError(
            "missing_required_parameter", "Missing required parameter: 'type'.", event_id, "type"
        )
    if not isinstance(kind, str):
        raise EventError(
            "invalid_type",
            f"Invalid type for 'type': expected a string, but got {_json_kind(kind)} instead.",
            event_id,
            "type",
        )
    model = CLIENT_EVENTS.get(kind)
    if model is None:
        supported = ", ".join(f"'{k}'" for k in CLIENT_EVENTS)
        raise EventError(
            "invalid_value",
            f"Invalid value: {_quote(kind)}. Supported values are: {supported}.",
            event_id,
            "type",
        )
    try:
        event = model.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc, data, event_id) from None
    return event  # type: ignore[return-value]  # the table maps each type to a ClientEvent class


def parse_server_event(text: str | bytes, *, max_bytes: int = 16 * 1024 * 1024) -> ServerEvent:
    """Validate one server event (from an upstream Realtime server); unknown fields are ignored."""
    data = _load_object(text, max_bytes, "Server event")
    kind = data.get("type")
    model = SERVER_EVENTS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise EventError("invalid_value", f"Unknown server event type: {_quote(kind)}", None, "type")
    try:
        event = model.model_validate(data, context={"lenient": True})
    except ValidationError as exc:
        raise _translate(exc, data, None) from None
    return event  # type: ignore[return-value]


def serialize_server_event(event: ServerEvent) -> str:
    """Compact JSON for a server event."""
    return event.model_dump_json()


def serialize_client_event(event: ClientEvent) -> str:
    """Compact JSON for a client event, writing only the fields that were set (absent = unchanged)."""
    return event.model_dump_json(exclude_unset=True)


# ---------------------------------------------------------------------------------------------------
# Validation errors -> OpenAI-style errors

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "none_required": "null",
}
_BOUNDS = {
    "greater_than_equal": ("below_min_value", ">=", "ge"),
    "greater_than": ("below_min_value", ">", "gt"),
    "less_than_equal": ("above_max_value", "<=", "le"),
    "less_than": ("above_max_value", "<", "lt"),
}


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _clip(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return "'" + _clip(value) + "'"
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    return _json_kind(value)


def _param(loc: tuple[int | str, ...], data: Any, error_type: str) -> tuple[str, Any]:
    """Dotted path of ``loc`` over the client's own JSON, skipping union tags that Pydantic inserts,
    and the JSON value found there."""
    parts: list[str] = []
    cur: Any = data
    for i, elem in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(cur, dict) and isinstance(elem, str):
            if not last and elem in (cur.get("type"), cur.get("role")):
                continue  # the tag of a discriminated union, not a key
            if elem in cur:
                parts.append(("." if parts else "") + elem)
                cur = cur[elem]
            elif last and error_type == "missing":
                parts.append(("." if parts else "") + elem)
                cur = None
        elif isinstance(cur, list) and isinstance(elem, int) and 0 <= elem < len(cur):
            parts.append(f"[{elem}]")
            cur = cur[elem]
    return "".join(parts), cur


def _translate(exc: ValidationError, data: dict[str, Any], event_id: str | None) -> EventError:
    errors = exc.errors(include_url=False)
    # Of a union's alternatives, the error that got deepest into the client's JSON says most.
    err = max(errors, key=lambda e: len(e["loc"]))
    etype: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    param, value = _param(tuple(err["loc"]), data, etype)
    name = param or "event"

    if etype == "missing":
        return EventError(
            "missing_required_parameter", f"Missing required parameter: '{name}'.", event_id, param
        )
    if etype == "extra_forbidden":
        return EventError("unknown_parameter", f"Unknown parameter: '{name}'.", event_id, param)
    if etype in ("union_tag_invalid", "union_tag_not_found"):
        field = str(ctx.get("discriminator", "'type'")).strip("'")
        tag_param = f"{param}.{field}" if param else field
        if etype == "union_tag_not_found":
            return EventError(
                "missing_required_parameter",
                f"Missing required parameter: '{tag_param}'.",
                event_id,
                tag_param,
            )
        return EventError(
            "invalid_value",
            f"Invalid value: {_quote(ctx.get('tag'))}. Supported values are: {ctx.get('expected_tags')}.",
            event_id,
            tag_param,
        )
    if etype == "literal_error":
        return EventError(
            "invalid_value",
            f"Invalid value: {_quote(value)}. Supported values are: {ctx.get('expected')}.",
            event_id,
            param,
        )
    if etype in _EXPECTED:
        return EventError(
            "invalid_type",
            f"Invalid type for '{name}': expected {_EXPECTED[etype]}, but got {_json_kind(value)} instead.",
            event_id,
            param,
        )
    if etype in _BOUNDS:
        suffix, op, key = _BOUNDS[etype]
        kind = "integer" if isinstance(ctx.get(key), int) else "decimal"
        return EventError(
            f"{kind}_{suffix}",
            f"Invalid '{name}': {kind} {suffix.replace('_', ' ')}. Expected "
            f"a value {op} {ctx.get(key)}, but got {_quote(value)} instead.",
            event_id,
            param,
        )
    if etype in ("string_too_long", "too_long", "string_too_short", "too_short"):
        what = "string" if etype.startswith("string") else "object" if isinstance(value, dict) else "array"
        unit = "characters" if what == "string" else "entries" if what == "object" else "elements"
        if etype.endswith("long"):
            code, bound = f"{what}_above_max_length", f"at most {ctx.get('max_length')}"
        else:
            code, bound = f"{what}_below_min_length", f"at least {ctx.get('min_length')}"
        return EventError(
            code,
            f"Invalid '{name}': {what} too {etype.rsplit('_', 1)[1]}. Expected {bound} {unit}.",
            event_id,
            param,
        )
    if etype == "string_pattern_mismatch":
        return EventError(
            "invalid_value",
            f"Invalid '{name}': string does not match pattern. Expected a "
            f"string that matches the pattern '{ctx.get('pattern')}'.",
            event_id,
            param,
        )
    if etype in ("invalid_value", "unsupported_value"):  # raised by our own validators
        return EventError(etype, f"Invalid '{name}': {str(err['msg']).rstrip('.')}.", event_id, param)
    return EventError("invalid_value", f"Invalid '{name}': {_clip(err['msg'], 200)}.", event_id, param)
