"""Realtime event models: parsing OpenAI-shaped client events, refusing bad ones with an error that
names the problem and carries the client's event_id, and round-tripping server events."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwire.realtime.events import (
    CLIENT_EVENTS,
    MAX_EVENT_BYTES,
    ContentPartInfo,
    ConversationItemAddedEvent,
    ConversationItemCreateEvent,
    ConversationItemDeletedEvent,
    ConversationItemDoneEvent,
    ConversationItemRetrievedEvent,
    ConversationItemTruncatedEvent,
    ErrorDetail,
    ErrorEvent,
    EventError,
    FunctionCallItem,
    InputAudio,
    InputAudioBufferAppendEvent,
    InputAudioBufferClearedEvent,
    InputAudioBufferCommittedEvent,
    InputAudioBufferSpeechStartedEvent,
    InputAudioBufferSpeechStoppedEvent,
    InputAudioBufferTimeoutTriggeredEvent,
    InputAudioTranscriptionCompletedEvent,
    InputAudioTranscriptionDeltaEvent,
    InputText,
    MessageItem,
    OutputAudio,
    OutputAudioBufferClearedEvent,
    OutputAudioBufferStartedEvent,
    OutputAudioBufferStoppedEvent,
    RateLimit,
    RateLimitsUpdatedEvent,
    Response,
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
    SessionCreatedEvent,
    SessionUpdatedEvent,
    SessionUpdateEvent,
    parse_client_event,
    parse_server_event,
    serialize_client_event,
    serialize_server_event,
)
from voxwire.realtime.session import PcmuFormat, ServerVad, apply_update, default_session, vad_params

PCM = base64.b64encode(b"\x00\x01" * 480).decode()

# Client events written by hand from the shapes in OpenAI's GA Realtime reference.
DOCUMENTED_CLIENT_EVENTS: list[dict[str, Any]] = [
    # The reference's own example for turning noise reduction off.
    {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {"input": {"noise_reduction": None}}},
    },
    {
        "event_id": "event_123",
        "type": "session.update",
        "session": {
            "type": "realtime",
            "model": "gpt-realtime",
            "output_modalities": ["audio"],
            "instructions": "You are a helpful assistant.",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": {"model": "whisper-1", "language": "en"},
                    "noise_reduction": {"type": "near_field"},
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 500,
                        "idle_timeout_ms": None,
                        "create_response": True,
                        "interrupt_response": True,
                    },
                },
                "output": {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1.0},
            },
            "tools": [
                {
                    "type": "function",
                    "name": "get_weather",
                    "description": "Get the weather for a location.",
                    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
                }
            ],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": "auto",
            "truncation": {"type": "retention_ratio", "retention_ratio": 0.8},
            "include": ["item.input_audio_transcription.logprobs"],
        },
    },
    {"event_id": "event_456", "type": "input_audio_buffer.append", "audio": PCM},
    {"event_id": "event_789", "type": "input_audio_buffer.commit"},
    {"event_id": "event_012", "type": "input_audio_buffer.clear"},
    {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]},
    },
    {
        "event_id": "event_345",
        "type": "conversation.item.create",
        "previous_item_id": "root",
        "item": {
            "id": "msg_001",
            "type": "message",
            "role": "system",
            "content": [{"type": "input_text", "text": "Speak slowly."}],
        },
    },
    {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_audio", "audio": PCM}]},
    },
    {
        "type": "conversation.item.create",
        "previous_item_id": "msg_001",
        "item": {
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "object": "realtime.item",
            "content": [{"type": "output_text", "text": "Sure."}],
        },
    },
    {
        "type": "conversation.item.create",
        "item": {"type": "function_call", "name": "get_weather", "call_id": "call_1", "arguments": "{}"},
    },
    {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "call_1", "output": '{"temp": 21}'},
    },
    {"event_id": "event_901", "type": "conversation.item.retrieve", "item_id": "msg_003"},
    {
        "event_id": "event_678",
        "type": "conversation.item.truncate",
        "item_id": "msg_002",
        "content_index": 0,
        "audio_end_ms": 1500,
    },
    {"event_id": "event_901", "type": "conversation.item.delete", "item_id": "msg_003"},
    {"type": "response.create"},
    {
        "event_id": "event_234",
        "type": "response.create",
        "response": {
            "conversation": "none",
            "output_modalities": ["text"],
            "instructions": "Classify the sentiment.",
            "metadata": {"topic": "classification"},
            "input": [
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "I love it"}]}
            ],
            "tools": [],
            "tool_choice": "none",
            "max_output_tokens": 200,
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "cedar"}},
        },
    },
    {"event_id": "event_567", "type": "response.cancel"},
    {"type": "response.cancel", "response_id": "resp_12345"},
    {"event_id": "optional_client_event_id", "type": "output_audio_buffer.clear"},
]


@pytest.mark.parametrize("example", DOCUMENTED_CLIENT_EVENTS, ids=lambda e: e["type"])
def test_documented_client_events_parse(example: dict[str, Any]) -> None:
    event = parse_client_event(json.dumps(example))
    assert type(event) is CLIENT_EVENTS[example["type"]]
    assert event.event_id == example.get("event_id")
    # What we write back is what the client sent (absent stays absent, null stays null).
    assert json.loads(serialize_client_event(event)) == example
    assert parse_client_event(serialize_client_event(event).encode()) == event


def test_every_client_event_type_has_a_documented_example() -> None:
    assert {e["type"] for e in DOCUMENTED_CLIENT_EVENTS} == set(CLIENT_EVENTS)


def test_append_audio_bytes() -> None:
    event = parse_client_event(json.dumps({"type": "input_audio_buffer.append", "audio": PCM}))
    assert isinstance(event, InputAudioBufferAppendEvent)
    assert event.audio_bytes() == b"\x00\x01" * 480


def test_parsed_fields_are_typed() -> None:
    event = parse_client_event(json.dumps(DOCUMENTED_CLIENT_EVENTS[1]))
    assert isinstance(event, SessionUpdateEvent)
    td = event.session.audio.input.turn_detection  # type: ignore[union-attr]
    assert isinstance(td, ServerVad) and td.silence_duration_ms == 500
    assert isinstance(event.session.audio.output.format, PcmuFormat)  # type: ignore[union-attr]
    created = parse_client_event(json.dumps(DOCUMENTED_CLIENT_EVENTS[6]))
    assert isinstance(created, ConversationItemCreateEvent) and created.previous_item_id == "root"
    assert isinstance(created.item, MessageItem) and isinstance(created.item.content[0], InputText)


# ---- refusals ---------------------------------------------------------------------------------


def refuse(event: dict[str, Any] | str | bytes) -> EventError:
    text = event if isinstance(event, str | bytes) else json.dumps(event)
    with pytest.raises(EventError) as info:
        parse_client_event(text)
    return info.value


def test_unknown_type_names_it_and_keeps_event_id() -> None:
    err = refuse({"type": "response.audio.delta", "event_id": "evt_client_1"})
    assert (err.code, err.param, err.event_id) == ("invalid_value", "type", "evt_client_1")
    assert "'response.audio.delta'" in err.message and "'session.update'" in err.message


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        (
            {"type": "conversation.item.truncate", "item_id": "i", "content_index": "0", "audio_end_ms": 5},
            "invalid_type",
            "content_index",
        ),
        (
            {"type": "conversation.item.truncate", "item_id": "i", "content_index": 0, "audio_end_ms": 1.5},
            "invalid_type",
            "audio_end_ms",
        ),
        (
            {"type": "conversation.item.truncate", "item_id": 7, "content_index": 0, "audio_end_ms": 5},
            "invalid_type",
            "item_id",
        ),
        ({"type": "conversation.item.delete", "item_id": None}, "invalid_type", "item_id"),
        ({"type": "input_audio_buffer.append", "audio": ["x"]}, "invalid_type", "audio"),
        ({"type": "response.cancel", "response_id": True}, "invalid_type", "response_id"),
        (
            {"type": "session.update", "session": {"type": "realtime", "instructions": 5}},
            "invalid_type",
            "session.instructions",
        ),
        ({"type": "session.update", "session": "realtime"}, "invalid_type", "session"),
        (
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"format": "pcm16"}}},
            },
            "invalid_type",
            "session.audio.input.format",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"turn_detection": {"type": "server_vad", "create_response": "yes"}}},
                },
            },
            "invalid_type",
            "session.audio.input.turn_detection.create_response",
        ),
        (
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": 1}]},
            },
            "invalid_type",
            "item.content[0].text",
        ),
        (
            {"type": "response.create", "response": {"metadata": {"k": 1}}},
            "invalid_type",
            "response.metadata.k",
        ),
        (
            {"type": "session.update", "event_id": 12, "session": {"type": "realtime"}},
            "invalid_type",
            "event_id",
        ),
    ],
)
def test_wrong_types_name_the_param(event: dict[str, Any], code: str, param: str) -> None:
    event.setdefault("event_id", "evt_x")
    err = refuse(event)
    assert (err.code, err.param) == (code, param), err
    assert f"'{param}'" in err.message
    if isinstance(event["event_id"], str):
        assert err.event_id == "evt_x"


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ({"type": "input_audio_buffer.append"}, "missing_required_parameter", "audio"),
        ({"type": "session.update"}, "missing_required_parameter", "session"),
        (
            {"type": "session.update", "session": {"instructions": "hi"}},
            "missing_required_parameter",
            "session.type",
        ),
        (
            {"type": "conversation.item.create", "item": {"role": "user", "content": []}},
            "missing_required_parameter",
            "item.type",
        ),
        (
            {"type": "conversation.item.create", "item": {"type": "message", "content": []}},
            "missing_required_parameter",
            "item.role",
        ),
        (
            {"type": "conversation.item.truncate", "item_id": "x", "content_index": 0},
            "missing_required_parameter",
            "audio_end_ms",
        ),
        ({"event_id": "evt_y"}, "missing_required_parameter", "type"),
        # Beta-shaped fields are unknown to GA: say so rather than ignore them.
        (
            {"type": "session.update", "session": {"type": "realtime", "input_audio_format": "pcm16"}},
            "unknown_parameter",
            "session.input_audio_format",
        ),
        (
            {"type": "session.update", "session": {"type": "realtime", "voice": "alloy"}},
            "unknown_parameter",
            "session.voice",
        ),
        ({"type": "input_audio_buffer.commit", "audio": PCM}, "unknown_parameter", "audio"),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"turn_detection": {"type": "server_vad", "eagerness": "low"}}},
                },
            },
            "unknown_parameter",
            "session.audio.input.turn_detection.eagerness",
        ),
        # Values out of range or not in the documented set.
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 1.5}}},
                },
            },
            "decimal_above_max_value",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": -1}}},
                },
            },
            "integer_below_min_value",
            "session.audio.input.turn_detection.silence_duration_ms",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 10}}},
                },
            },
            "integer_below_min_value",
            "session.audio.input.turn_detection.idle_timeout_ms",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}},
                },
            },
            "unsupported_value",
            "session.audio.input.turn_detection",
        ),
        (
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "none"}}}},
            },
            "invalid_value",
            "session.audio.input.turn_detection.type",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}},
                },
            },
            "invalid_value",
            "session.audio.input.format.rate",
        ),
        (
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"output": {"format": {"type": "g711_ulaw"}}}},
            },
            "invalid_value",
            "session.audio.output.format.type",
        ),
        (
            {"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"speed": 3}}}},
            "decimal_above_max_value",
            "session.audio.output.speed",
        ),
        (
            {
                "type": "session.update",
                "session": {"type": "realtime", "output_modalities": ["audio", "text"]},
            },
            "invalid_value",
            "session.output_modalities",
        ),
        (
            {"type": "session.update", "session": {"type": "realtime", "max_output_tokens": 0}},
            "integer_below_min_value",
            "session.max_output_tokens",
        ),
        (
            {"type": "session.update", "session": {"type": "transcription"}},
            "unsupported_value",
            "session.type",
        ),
        (
            {
                "type": "session.update",
                "session": {"type": "realtime", "tools": [{"type": "mcp", "server_label": "x"}]},
            },
            "unsupported_value",
            "session.tools",
        ),
        (
            {
                "type": "session.update",
                "session": {"type": "realtime", "tools": [{"type": "function", "name": "bad name"}]},
            },
            "invalid_value",
            "session.tools[0].name",
        ),
        (
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "output_audio", "transcript": "x"}],
                },
            },
            "invalid_value",
            "item.content",
        ),
        (
            {"type": "conversation.item.create", "item": {"type": "message", "role": "robot", "content": []}},
            "invalid_value",
            "item.role",
        ),
        (
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "data:"}],
                },
            },
            "invalid_value",
            "item.content[0].type",
        ),
        (
            {
                "type": "conversation.item.create",
                "item": {"id": "x" * 65, "type": "message", "role": "user", "content": []},
            },
            "string_above_max_length",
            "item.id",
        ),
        (
            {"type": "conversation.item.truncate", "item_id": "x", "content_index": -1, "audio_end_ms": 0},
            "integer_below_min_value",
            "content_index",
        ),
        ({"type": "input_audio_buffer.append", "audio": "not base64!"}, "invalid_value", "audio"),
        (
            {"type": "response.create", "response": {"conversation": "other"}},
            "invalid_value",
            "response.conversation",
        ),
        (
            {"type": "response.create", "response": {"metadata": {str(i): "v" for i in range(17)}}},
            "object_above_max_length",
            "response.metadata",
        ),
    ],
)
def test_invalid_events_name_the_problem(event: dict[str, Any], code: str, param: str) -> None:
    event.setdefault("event_id", "evt_y")
    err = refuse(event)
    assert (err.code, err.param) == (code, param), err
    assert err.event_id == "evt_y"
    assert err.message


def test_not_json_not_object_and_other_garbage() -> None:
    assert refuse("{").code == "invalid_json"
    assert refuse("").code == "invalid_json"
    assert refuse(b"\xff\xfe").code == "invalid_json"
    assert refuse('[{"type": "response.create"}]').code == "invalid_json"
    assert refuse('{"type": "response.create", "event_id": NaN}').code == "invalid_json"
    assert refuse('{"type": "response.create", "event_id": "\\ud800"}').code == "invalid_json"
    assert refuse("[" * 100_000).code == "invalid_json"
    err = refuse('{"type": 5, "event_id": "e"}')
    assert (err.code, err.param, err.event_id) == ("invalid_type", "type", "e")


def test_size_limit() -> None:
    audio = base64.b64encode(bytes(MAX_EVENT_BYTES)).decode()
    err = refuse({"type": "input_audio_buffer.append", "audio": audio, "event_id": "big"})
    assert err.code == "event_too_large"
    fits = base64.b64encode(bytes(190 * 1024)).decode()
    assert isinstance(
        parse_client_event(json.dumps({"type": "input_audio_buffer.append", "audio": fits})),
        InputAudioBufferAppendEvent,
    )
    # A non-ASCII event is measured in bytes, not characters.
    with pytest.raises(EventError) as info:
        parse_client_event(
            json.dumps({"type": "response.create", "event_id": "é" * 10}, ensure_ascii=False), max_bytes=40
        )
    assert info.value.code == "event_too_large"


def test_error_event_shape_matches_openai() -> None:
    err = refuse(
        {"type": "session.update", "event_id": "client_evt", "session": {"type": "realtime", "x": 1}}
    )
    wire = json.loads(serialize_server_event(err.to_event("event_srv1")))
    assert wire == {
        "type": "error",
        "event_id": "event_srv1",
        "error": {
            "type": "invalid_request_error",
            "code": "unknown_parameter",
            "message": "Unknown parameter: 'session.x'.",
            "param": "session.x",
            "event_id": "client_evt",
        },
    }
    no_id = refuse("{").to_event("event_srv2")
    assert json.loads(serialize_server_event(no_id))["error"]["event_id"] is None


# ---- server events ------------------------------------------------------------------------------

ASSISTANT = MessageItem(
    id="item_2",
    object="realtime.item",
    status="completed",
    role="assistant",
    content=[OutputAudio(transcript="Hello there.")],
)
USER = MessageItem(
    id="item_1",
    object="realtime.item",
    status="completed",
    role="user",
    content=[InputAudio(transcript=None)],
)
RESPONSE = Response(
    id="resp_1",
    status="cancelled",
    status_details=ResponseStatusDetails(type="cancelled", reason="turn_detected"),
    output=[ASSISTANT],
    conversation_id="conv_1",
    output_modalities=["audio"],
    max_output_tokens="inf",
)
PART: dict[str, Any] = {"response_id": "resp_1", "item_id": "item_2", "output_index": 0, "content_index": 0}

SERVER_EXAMPLES: list[ServerEvent] = [
    ErrorEvent(
        event_id="event_1",
        error=ErrorDetail(
            type="invalid_request_error", code="invalid_value", message="bad", param="type", event_id="c1"
        ),
    ),
    SessionCreatedEvent(event_id="event_2", session=default_session("sess_1", model="voxwire-echo")),
    SessionUpdatedEvent(event_id="event_3", session=default_session("sess_1", model="m", voice="marin")),
    InputAudioBufferSpeechStartedEvent(event_id="event_4", audio_start_ms=1000, item_id="item_1"),
    InputAudioBufferSpeechStoppedEvent(event_id="event_5", audio_end_ms=2000, item_id="item_1"),
    InputAudioBufferCommittedEvent(event_id="event_6", item_id="item_1", previous_item_id=None),
    InputAudioBufferClearedEvent(event_id="event_7"),
    InputAudioBufferTimeoutTriggeredEvent(
        event_id="event_8", audio_start_ms=0, audio_end_ms=6000, item_id="i"
    ),
    ConversationItemAddedEvent(event_id="event_9", item=USER, previous_item_id=None),
    ConversationItemDoneEvent(event_id="event_10", item=ASSISTANT, previous_item_id="item_1"),
    ConversationItemDeletedEvent(event_id="event_11", item_id="item_1"),
    ConversationItemRetrievedEvent(
        event_id="event_12", item=FunctionCallItem(id="fc", name="f", arguments="{}", call_id="c")
    ),
    ConversationItemTruncatedEvent(event_id="event_13", item_id="item_2", content_index=0, audio_end_ms=1500),
    InputAudioTranscriptionDeltaEvent(event_id="event_14", item_id="item_1", delta="Hel"),
    InputAudioTranscriptionCompletedEvent(event_id="event_15", item_id="item_1", transcript="Hello"),
    ResponseCreatedEvent(
        event_id="event_16", response=Response(id="resp_1", status="in_progress", conversation_id="conv_1")
    ),
    ResponseDoneEvent(event_id="event_17", response=RESPONSE),
    ResponseOutputItemAddedEvent(event_id="event_18", response_id="resp_1", output_index=0, item=ASSISTANT),
    ResponseOutputItemDoneEvent(event_id="event_19", response_id="resp_1", output_index=0, item=ASSISTANT),
    ResponseContentPartAddedEvent(
        event_id="event_20", part=ContentPartInfo(type="audio", transcript=""), **PART
    ),
    ResponseContentPartDoneEvent(
        event_id="event_21", part=ContentPartInfo(type="audio", transcript="Hi"), **PART
    ),
    ResponseOutputAudioDeltaEvent(event_id="event_22", delta=PCM, **PART),
    ResponseOutputAudioDoneEvent(event_id="event_23", **PART),
    ResponseOutputAudioTranscriptDeltaEvent(event_id="event_24", delta="Hel", **PART),
    ResponseOutputAudioTranscriptDoneEvent(event_id="event_25", transcript="Hello there.", **PART),
    ResponseOutputTextDeltaEvent(event_id="event_26", delta="Hel", **PART),
    ResponseOutputTextDoneEvent(event_id="event_27", text="Hello", **PART),
    OutputAudioBufferStartedEvent(event_id="event_28", response_id="resp_1"),
    OutputAudioBufferStoppedEvent(event_id="event_29", response_id="resp_1"),
    OutputAudioBufferClearedEvent(event_id="event_30", response_id="resp_1"),
    RateLimitsUpdatedEvent(
        event_id="event_31",
        rate_limits=[RateLimit(name="requests", limit=1000, remaining=999, reset_seconds=60.0)],
    ),
]


@pytest.mark.parametrize("event", SERVER_EXAMPLES, ids=lambda e: e.type)
def test_server_event_round_trip(event: ServerEvent) -> None:
    text = serialize_server_event(event)
    assert ", " not in text and ": " not in text.replace('": "', "")  # compact
    assert list(json.loads(text))[:2] == ["type", "event_id"]
    assert parse_server_event(text) == event


def test_server_event_nulls_that_mean_something_are_written() -> None:
    committed = json.loads(serialize_server_event(SERVER_EXAMPLES[5]))
    assert committed == {
        "type": "input_audio_buffer.committed",
        "event_id": "event_6",
        "item_id": "item_1",
        "previous_item_id": None,
    }
    session = json.loads(serialize_server_event(SERVER_EXAMPLES[1]))["session"]
    assert session["object"] == "realtime.session"
    assert session["audio"]["input"]["transcription"] is None
    assert session["audio"]["input"]["turn_detection"]["idle_timeout_ms"] is None
    added = json.loads(serialize_server_event(SERVER_EXAMPLES[8]))
    assert added["item"]["content"] == [{"type": "input_audio", "transcript": None}]


def test_parse_server_event_ignores_fields_it_does_not_know() -> None:
    text = json.dumps(
        {"type": "output_audio_buffer.started", "event_id": "e", "response_id": "r", "new_field": {"x": 1}}
    )
    assert parse_server_event(text) == OutputAudioBufferStartedEvent(event_id="e", response_id="r")
    with pytest.raises(EventError):
        parse_server_event(json.dumps({"type": "output_audio_buffer.started", "event_id": "e"}))


# ---- session configuration ----------------------------------------------------------------------


def test_documented_defaults() -> None:
    s = default_session("sess_1", model="m")
    assert s.output_modalities == ["audio"] and s.max_output_tokens == "inf" and s.tool_choice == "auto"
    assert s.audio_input.format is not None and s.audio_input.format.type == "audio/pcm"
    assert s.audio_output.speed == 1.0 and s.audio_input.transcription is None
    vad = vad_params(s)
    assert vad is not None
    assert (vad.threshold, vad.prefix_padding_ms, vad.silence_duration_ms) == (0.5, 300, 500)
    assert vad.create_response and vad.interrupt_response and vad.idle_timeout_ms is None


def test_sessions_share_the_default_template_and_updates_copy() -> None:
    a, b = default_session("sess_a", model="m", expires_at=5), default_session("sess_b", model="m")
    assert (a.id, a.expires_at, b.id, b.expires_at) == ("sess_a", 5, "sess_b", None)
    assert a.audio is b.audio  # one template's nested models, not ~4.5 KB per call
    json_b = b.model_dump_json()
    a2 = apply_update(a, update({"audio": {"input": {"turn_detection": None}, "output": {"voice": "cedar"}}}).session)
    assert vad_params(a2) is None and a2.voice == "cedar"
    assert b.model_dump_json() == json_b and default_session("sess_c", model="m").voice == "alloy"
    assert default_session("sess_d", model="m", voice="marin").voice == "marin"


def update(session: dict[str, Any]) -> SessionUpdateEvent:
    event = parse_client_event(
        json.dumps({"type": "session.update", "session": {"type": "realtime", **session}})
    )
    assert isinstance(event, SessionUpdateEvent)
    return event


def test_update_merges_only_present_fields() -> None:
    s0 = default_session("sess_1", model="m")
    s1 = apply_update(
        s0, update({"instructions": "Be brief.", "audio": {"output": {"voice": "cedar"}}}).session
    )
    assert s1.instructions == "Be brief." and s1.voice == "cedar"
    assert s1.audio_input == s0.audio_input and s1.audio_output.format == s0.audio_output.format
    s2 = apply_update(
        s1,
        update(
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 800}}}}
        ).session,
    )
    vad = vad_params(s2)
    assert vad is not None and (vad.threshold, vad.silence_duration_ms) == (0.5, 800)
    s3 = apply_update(
        s2, update({"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 0.7}}}}).session
    )
    vad = vad_params(s3)
    assert vad is not None and (vad.threshold, vad.silence_duration_ms) == (0.7, 800)  # same type: merged
    off = apply_update(s3, update({"audio": {"input": {"turn_detection": None}}}).session)
    assert vad_params(off) is None and off.instructions == "Be brief."
    back = apply_update(off, update({"audio": {"input": {"turn_detection": {"type": "server_vad"}}}}).session)
    assert vad_params(back) == vad_params(s0)
    cleared = apply_update(s3, update({"instructions": "", "tools": []}).session)
    assert cleared.instructions == "" and cleared.tools == []
    nulls = apply_update(s3, update({"model": None, "max_output_tokens": None}).session)
    assert nulls.model == "m" and nulls.max_output_tokens == "inf"


# ---- property: the parser only ever returns an event or raises EventError -----------------------

json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
known_keys = st.sampled_from(
    [
        "type",
        "event_id",
        "session",
        "audio",
        "item",
        "item_id",
        "content_index",
        "audio_end_ms",
        "previous_item_id",
        "response",
        "response_id",
        "role",
        "content",
        "text",
        "format",
        "turn_detection",
        "input",
        "output",
        "rate",
        "voice",
    ]
)


def with_type(value: Any, kind: str) -> Any:
    return {**value, "type": kind} if isinstance(value, dict) else value


structured = st.builds(
    with_type,
    st.dictionaries(known_keys, json_value, max_size=6),
    st.sampled_from([*CLIENT_EVENTS, "message", "realtime", "bogus"]),
)


def mutate(example: dict[str, Any], path: list[int], value: Any) -> dict[str, Any]:
    """Replace one node of a valid example (chosen by ``path``) with an arbitrary JSON value."""
    out = json.loads(json.dumps(example))
    node: Any = out
    for step in path:
        children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        if not children:
            break
        key, child = children[step % len(children)]
        if not isinstance(child, dict | list) or step % 3 == 0:
            node[key] = value
            return out  # type: ignore[no-any-return]
        node = child
    return out  # type: ignore[no-any-return]


mutated = st.builds(
    mutate, st.sampled_from(DOCUMENTED_CLIENT_EVENTS), st.lists(st.integers(0, 50), max_size=6), json_value
)


def only_event_or_error(text: str | bytes) -> None:
    try:
        event = parse_client_event(text)
    except EventError as err:
        assert isinstance(err.code, str) and err.message
        assert err.event_id is None or isinstance(err.event_id, str)
        serialize_server_event(err.to_event("event_1"))  # always writable
        return
    assert type(event) in CLIENT_EVENTS.values()
    assert parse_client_event(serialize_client_event(event)) == event


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_any_text_gives_event_or_event_error(text: str | bytes) -> None:
    only_event_or_error(text)


@settings(max_examples=400, deadline=None)
@given(structured | mutated | json_value)
def test_any_json_gives_event_or_event_error(value: Any) -> None:
    only_event_or_error(json.dumps(value))
