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

The models live in three modules by kind: :mod:`voxwire.realtime.items` (conversation items,
content parts and the field types events share), :mod:`voxwire.realtime.client_events` and
:mod:`voxwire.realtime.server_events`. This module parses and serializes them and is their import
surface: every model is re-exported here.

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

import json
import re
from typing import Any

from pydantic import ValidationError

from voxwire.realtime.client_events import (
    AUDIO_CLIENT_EVENTS,
    CLIENT_EVENTS,
    MAX_CLIENT_EVENT_ID,
    ClientEvent,
    ClientEventId,
    ConversationItemCreateEvent,
    ConversationItemDeleteEvent,
    ConversationItemRetrieveEvent,
    ConversationItemTruncateEvent,
    InputAudioBufferAppendEvent,
    InputAudioBufferClearEvent,
    InputAudioBufferCommitEvent,
    Metadata,
    OutputAudioBufferClearEvent,
    ResponseAudioOutputParams,
    ResponseAudioParams,
    ResponseCancelEvent,
    ResponseCreateEvent,
    ResponseCreateParams,
    SessionUpdateEvent,
)
from voxwire.realtime.items import (
    MAX_EVENT_BYTES,
    MAX_ID_LENGTH,
    Base64,
    ContentPart,
    FunctionCallItem,
    FunctionCallOutputItem,
    Id,
    Index,
    InputAudio,
    InputText,
    Item,
    ItemStatus,
    MessageItem,
    Millis,
    OutputAudio,
    OutputText,
)
from voxwire.realtime.server_events import (
    SERVER_EVENTS,
    ContentPartInfo,
    ConversationItemAddedEvent,
    ConversationItemDeletedEvent,
    ConversationItemDoneEvent,
    ConversationItemRetrievedEvent,
    ConversationItemTruncatedEvent,
    ErrorDetail,
    ErrorEvent,
    InputAudioBufferClearedEvent,
    InputAudioBufferCommittedEvent,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    InputAudioBufferTimeoutTriggeredEvent,
    InputAudioTranscriptionCompletedEvent,
    InputAudioTranscriptionDeltaEvent,
    OutputAudioBufferClearedEvent,
    OutputAudioBufferStartedEvent,
    OutputAudioBufferStoppedEvent,
    RateLimit,
    RateLimitsUpdatedEvent,
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
    ResponseStatusError,
    ServerEvent,
    SessionCreatedEvent,
    SessionUpdatedEvent,
    TranscriptionUsageDuration,
)


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
    event_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= MAX_CLIENT_EVENT_ID else None
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


__all__ = [
    "AUDIO_CLIENT_EVENTS",
    "Base64",
    "CLIENT_EVENTS",
    "ClientEvent",
    "ClientEventId",
    "ContentPart",
    "ContentPartInfo",
    "ConversationItemAddedEvent",
    "ConversationItemCreateEvent",
    "ConversationItemDeleteEvent",
    "ConversationItemDeletedEvent",
    "ConversationItemDoneEvent",
    "ConversationItemRetrieveEvent",
    "ConversationItemRetrievedEvent",
    "ConversationItemTruncateEvent",
    "ConversationItemTruncatedEvent",
    "ErrorDetail",
    "ErrorEvent",
    "EventError",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "Id",
    "Index",
    "InputAudio",
    "InputAudioBufferAppendEvent",
    "InputAudioBufferClearEvent",
    "InputAudioBufferClearedEvent",
    "InputAudioBufferCommitEvent",
    "InputAudioBufferCommittedEvent",
    "InputAudioBufferSpeechStartedEvent",
    "InputAudioBufferSpeechStoppedEvent",
    "InputAudioBufferTimeoutTriggeredEvent",
    "InputAudioTranscriptionCompletedEvent",
    "InputAudioTranscriptionDeltaEvent",
    "InputText",
    "Item",
    "ItemStatus",
    "MAX_EVENT_BYTES",
    "MAX_ID_LENGTH",
    "MessageItem",
    "Metadata",
    "Millis",
    "OutputAudio",
    "OutputAudioBufferClearEvent",
    "OutputAudioBufferClearedEvent",
    "OutputAudioBufferStartedEvent",
    "OutputAudioBufferStoppedEvent",
    "OutputText",
    "RateLimit",
    "RateLimitsUpdatedEvent",
    "Response",
    "ResponseAudio",
    "ResponseAudioOutput",
    "ResponseAudioOutputParams",
    "ResponseAudioParams",
    "ResponseCancelEvent",
    "ResponseContentPartAddedEvent",
    "ResponseContentPartDoneEvent",
    "ResponseCreateEvent",
    "ResponseCreateParams",
    "ResponseCreatedEvent",
    "ResponseDoneEvent",
    "ResponseOutputAudioDeltaEvent",
    "ResponseOutputAudioDoneEvent",
    "ResponseOutputAudioTranscriptDeltaEvent",
    "ResponseOutputAudioTranscriptDoneEvent",
    "ResponseOutputItemAddedEvent",
    "ResponseOutputItemDoneEvent",
    "ResponseOutputTextDeltaEvent",
    "ResponseOutputTextDoneEvent",
    "ResponseStatusDetails",
    "ResponseStatusError",
    "SERVER_EVENTS",
    "ServerEvent",
    "SessionCreatedEvent",
    "SessionUpdateEvent",
    "SessionUpdatedEvent",
    "TranscriptionUsageDuration",
    "parse_client_event",
    "parse_server_event",
    "serialize_client_event",
    "serialize_server_event",
]
