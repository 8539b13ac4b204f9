"""The sans-IO Realtime conversation: items, responses, session updates, and what it answers."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from voxwire.realtime import session as realtime_session
from voxwire.realtime.conversation import Conversation, ConversationError, counter_ids, random_ids
from voxwire.realtime.events import (
    ClientEvent,
    ConversationItemAddedEvent,
    ConversationItemDeletedEvent,
    ConversationItemRetrievedEvent,
    ConversationItemTruncatedEvent,
    ErrorEvent,
    EventError,
    InputAudio,
    MessageItem,
    OutputAudio,
    ResponseCreatedEvent,
    ResponseDoneEvent,
    ServerEvent,
    SessionCreatedEvent,
    SessionUpdatedEvent,
    parse_client_event,
    serialize_server_event,
)
from voxwire.realtime.session import vad_params


def ev(**fields: Any) -> ClientEvent:
    return parse_client_event(json.dumps(fields))


def user_text(text: str, **extra: Any) -> ClientEvent:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return ev(type="conversation.item.create", item={**item, **extra.pop("item", {})}, **extra)


def types(events: list[ServerEvent]) -> list[str]:
    return [e.type for e in events]


def only_error(events: list[ServerEvent]) -> ErrorEvent:
    assert len(events) == 1 and isinstance(events[0], ErrorEvent), events
    return events[0]


@pytest.fixture
def conv() -> Conversation:
    return Conversation(counter_ids(), model="voxwire-echo")


def test_session_created_first(conv: Conversation) -> None:
    (created,) = conv.created()
    assert isinstance(created, SessionCreatedEvent)
    assert created.session.id == "sess_1" and created.session.model == "voxwire-echo"
    assert conv.conversation_id == "conv_2"


def test_item_lifecycle(conv: Conversation) -> None:
    first = conv.handle(user_text("one", event_id="c1"))
    assert types(first) == ["conversation.item.added", "conversation.item.done"]
    added = first[0]
    assert isinstance(added, ConversationItemAddedEvent) and added.previous_item_id is None
    assert added.item.id and added.item.object == "realtime.item" and added.item.status == "completed"
    one = added.item.id

    second = conv.handle(user_text("two", item={"id": "my_item"}))
    assert isinstance(second[0], ConversationItemAddedEvent)
    assert second[0].item.id == "my_item" and second[0].previous_item_id == one

    root = conv.handle(user_text("zero", previous_item_id="root"))
    assert isinstance(root[0], ConversationItemAddedEvent) and root[0].previous_item_id is None
    middle = conv.handle(user_text("half", previous_item_id=one))
    assert isinstance(middle[0], ConversationItemAddedEvent) and middle[0].previous_item_id == one
    texts = [it.content[0].text for it in conv.items if isinstance(it, MessageItem)]  # type: ignore[union-attr]
    assert texts == ["zero", "one", "half", "two"]

    (got,) = conv.handle(ev(type="conversation.item.retrieve", item_id="my_item", event_id="c2"))
    assert isinstance(got, ConversationItemRetrievedEvent) and got.item.id == "my_item"

    (deleted,) = conv.handle(ev(type="conversation.item.delete", item_id="my_item"))
    assert isinstance(deleted, ConversationItemDeletedEvent) and deleted.item_id == "my_item"
    assert conv.item("my_item") is None and len(conv.items) == 3

    missing = only_error(conv.handle(ev(type="conversation.item.retrieve", item_id="my_item", event_id="c3")))
    assert (
        missing.error.event_id == "c3"
        and missing.error.param == "item_id"
        and "my_item" in missing.error.message
    )
    again = only_error(conv.handle(ev(type="conversation.item.delete", item_id="my_item", event_id="c4")))
    assert again.error.event_id == "c4"


def test_item_errors_leave_the_conversation_alone(conv: Conversation) -> None:
    conv.handle(user_text("a", item={"id": "a"}))
    dup = only_error(conv.handle(user_text("b", item={"id": "a"}, event_id="e1")))
    assert (dup.error.code, dup.error.param, dup.error.event_id) == ("invalid_value", "item.id", "e1")
    nowhere = only_error(conv.handle(user_text("c", previous_item_id="nope", event_id="e2")))
    assert nowhere.error.param == "previous_item_id" and nowhere.error.event_id == "e2"
    assert [it.id for it in conv.items] == ["a"]


def test_audio_bytes_are_not_stored(conv: Conversation) -> None:
    pcm = base64.b64encode(bytes(960)).decode()
    events = conv.handle(
        ev(
            type="conversation.item.create",
            item={"type": "message", "role": "user", "content": [{"type": "input_audio", "audio": pcm}]},
        )
    )
    stored = conv.items[0]
    assert isinstance(stored, MessageItem) and isinstance(stored.content[0], InputAudio)
    assert stored.content[0].audio is None
    assert pcm not in serialize_server_event(events[0])


def test_response_lifecycle_and_truncation(conv: Conversation) -> None:
    conv.handle(user_text("hi"))
    created = conv.handle(ev(type="response.create", event_id="r1"))
    assert isinstance(created[0], ResponseCreatedEvent)
    response = created[0].response
    assert response.status == "in_progress" and response.conversation_id == conv.conversation_id
    assert response.output_modalities == ["audio"] and response.id == conv.active_response_id
    rid = response.id
    assert rid is not None

    busy = only_error(conv.handle(ev(type="response.create", event_id="r2")))
    assert busy.error.code == "conversation_already_has_active_response" and busy.error.event_id == "r2"

    item_id, opened = conv.add_assistant_message(rid)
    assert types(opened) == [
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
    ]
    assert conv.add_output_audio(rid, item_id, 600.0) == []  # WebRTC: audio rides RTP
    assert types(conv.add_output_audio(rid, item_id, 400.0, delta="AAAA")) == ["response.output_audio.delta"]
    assert types(conv.add_output_text(rid, item_id, "Hello ")) == ["response.output_audio_transcript.delta"]
    conv.add_output_text(rid, item_id, "there.")
    assert types(conv.output_audio_started(rid)) == ["output_audio_buffer.started"]

    done = conv.finish_response(rid)
    assert types(done) == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    final = done[-1]
    assert isinstance(final, ResponseDoneEvent) and final.response.status == "completed"
    assert final.response.output[0].content[0] == OutputAudio(transcript="Hello there.")  # type: ignore[union-attr]
    assert conv.active_response_id is None
    assert types(conv.output_audio_stopped(rid)) == ["output_audio_buffer.stopped"]

    # Truncation: only assistant audio, never past what exists, and it drops the transcript.
    user_id = conv.items[0].id
    wrong = only_error(
        conv.handle(
            ev(
                type="conversation.item.truncate",
                item_id=user_id,
                content_index=0,
                audio_end_ms=10,
                event_id="t1",
            )
        )
    )
    assert wrong.error.param == "item_id" and wrong.error.event_id == "t1"
    too_far = only_error(
        conv.handle(
            ev(
                type="conversation.item.truncate",
                item_id=item_id,
                content_index=0,
                audio_end_ms=1001,
                event_id="t2",
            )
        )
    )
    assert too_far.error.param == "audio_end_ms"
    bad_part = only_error(
        conv.handle(ev(type="conversation.item.truncate", item_id=item_id, content_index=1, audio_end_ms=10))
    )
    assert bad_part.error.param == "content_index"
    (truncated,) = conv.handle(
        ev(type="conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=500)
    )
    assert isinstance(truncated, ConversationItemTruncatedEvent) and truncated.audio_end_ms == 500
    item = conv.item(item_id)
    assert isinstance(item, MessageItem) and item.content[0] == OutputAudio(transcript="")
    longer = only_error(
        conv.handle(ev(type="conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=600))
    )
    assert longer.error.param == "audio_end_ms"


def test_cancel(conv: Conversation) -> None:
    nothing = only_error(conv.handle(ev(type="response.cancel", event_id="x1")))
    assert (nothing.error.code, nothing.error.event_id) == ("response_cancel_not_active", "x1")

    rid, _ = conv.create_response()
    item_id, _ = conv.add_assistant_message(rid)
    conv.add_output_audio(rid, item_id, 240.0)
    conv.add_output_text(rid, item_id, "Let me")
    # Barge-in as the agent layer does it: truncate to what was heard, cancel, clear the buffer.
    conv.truncate_item(item_id, 0, 200)
    cancelled = conv.handle(ev(type="response.cancel"))
    done = cancelled[-1]
    assert isinstance(done, ResponseDoneEvent)
    assert done.response.status == "cancelled"
    assert (
        done.response.status_details is not None and done.response.status_details.reason == "client_cancelled"
    )
    item = conv.item(item_id)
    assert isinstance(item, MessageItem) and item.status == "incomplete"
    assert types(conv.output_audio_cleared(rid)) == ["output_audio_buffer.cleared"]

    rid2, _ = conv.create_response()
    wrong_id = only_error(conv.handle(ev(type="response.cancel", response_id="resp_nope", event_id="x2")))
    assert wrong_id.error.param == "response_id"
    vad_cancel = conv.cancel_response(reason="turn_detected")
    assert isinstance(vad_cancel[-1], ResponseDoneEvent) and vad_cancel[-1].response.id == rid2
    assert vad_cancel[-1].response.status_details.reason == "turn_detected"  # type: ignore[union-attr]
    with pytest.raises(EventError):
        conv.cancel_response()


def test_out_of_band_response_adds_no_items(conv: Conversation) -> None:
    rid, _ = conv.create_response()
    created = conv.handle(
        ev(
            type="response.create",
            response={
                "conversation": "none",
                "output_modalities": ["text"],
                "metadata": {"purpose": "summary"},
            },
        )
    )
    oob = created[0]
    assert isinstance(oob, ResponseCreatedEvent) and oob.response.conversation_id is None
    oob_id = oob.response.id
    assert oob_id is not None and oob.response.metadata == {"purpose": "summary"}
    params = conv.response_params(oob_id)
    assert params is not None and params.output_modalities == ["text"]
    item_id, opened = conv.add_assistant_message(oob_id)
    assert types(opened) == ["response.output_item.added", "response.content_part.added"]
    assert types(conv.add_output_text(oob_id, item_id, "Sum")) == ["response.output_text.delta"]
    done = conv.finish_response(oob_id)
    assert "conversation.item.done" not in types(done) and "response.output_text.done" in types(done)
    assert conv.items == () and conv.active_response_id == rid


def test_input_audio_turn(conv: Conversation) -> None:
    conv.handle(user_text("before"))
    item_id, started = conv.speech_started(1200)
    assert types(started) == ["input_audio_buffer.speech_started"]
    assert types(conv.speech_stopped(2500)) == ["input_audio_buffer.speech_stopped"]
    committed_id, events = conv.commit_input_audio()
    assert committed_id == item_id
    assert types(events) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert events[0].previous_item_id == conv.items[0].id  # type: ignore[union-attr]
    transcribed = conv.input_transcript(item_id, "hello there")
    assert types(transcribed) == ["conversation.item.input_audio_transcription.completed"]
    item = conv.item(item_id)
    assert isinstance(item, MessageItem) and item.content[0] == InputAudio(transcript="hello there")
    # A client commit without VAD gets a fresh id; clearing forgets a reserved one.
    other, _ = conv.commit_input_audio()
    assert other != item_id
    reserved, _ = conv.speech_started(9000)
    assert types(conv.input_audio_cleared()) == ["input_audio_buffer.cleared"]
    assert conv.commit_input_audio()[0] != reserved
    with pytest.raises(ConversationError):
        conv.speech_stopped(1)


def test_session_update_and_locks(conv: Conversation) -> None:
    (updated,) = conv.handle(
        ev(
            type="session.update",
            event_id="s1",
            session={
                "type": "realtime",
                "model": "voxwire-default",
                "audio": {"input": {"turn_detection": None}, "output": {"voice": "cedar"}},
            },
        )
    )
    assert isinstance(updated, SessionUpdatedEvent)
    assert updated.event_id != "s1"  # the client's event_id is not echoed on success
    assert updated.session.model == "voxwire-default" and updated.session.voice == "cedar"
    assert vad_params(conv.session) is None

    rid, _ = conv.create_response()
    model = only_error(
        conv.handle(ev(type="session.update", event_id="s2", session={"type": "realtime", "model": "other"}))
    )
    assert model.error.param == "session.model" and model.error.event_id == "s2"
    item_id, _ = conv.add_assistant_message(rid)
    conv.add_output_audio(rid, item_id, 20.0)
    voice = only_error(
        conv.handle(
            ev(
                type="session.update",
                event_id="s3",
                session={"type": "realtime", "audio": {"output": {"voice": "alloy"}}},
            )
        )
    )
    assert voice.error.param == "session.audio.output.voice" and voice.error.event_id == "s3"
    assert conv.session.voice == "cedar"
    same = conv.handle(
        ev(
            type="session.update",
            session={"type": "realtime", "instructions": "Hi.", "audio": {"output": {"voice": "cedar"}}},
        )
    )
    assert isinstance(same[0], SessionUpdatedEvent) and same[0].session.instructions == "Hi."


def test_items_are_bounded() -> None:
    conv = Conversation(counter_ids(), model="m", max_items=3)
    for i in range(3):
        conv.handle(user_text(str(i), item={"id": f"i{i}"}))
    events = conv.handle(user_text("3", item={"id": "i3"}))
    assert types(events) == ["conversation.item.deleted", "conversation.item.added", "conversation.item.done"]
    assert events[0].item_id == "i0"  # type: ignore[union-attr]
    assert [it.id for it in conv.items] == ["i1", "i2", "i3"]
    # An item of a response in progress is never evicted or deleted.
    rid, _ = conv.create_response()
    busy, _ = conv.add_assistant_message(rid)
    for i in range(4, 8):
        conv.handle(user_text(str(i), item={"id": f"i{i}"}))
    assert busy in [it.id for it in conv.items] and len(conv.items) == 3
    refused = only_error(conv.handle(ev(type="conversation.item.delete", item_id=busy)))
    assert refused.error.param == "item_id"


def test_local_misuse_raises(conv: Conversation) -> None:
    with pytest.raises(ConversationError):
        conv.handle(ev(type="input_audio_buffer.commit"))
    with pytest.raises(ConversationError):
        conv.add_assistant_message("resp_unknown")
    rid, _ = conv.create_response()
    conv.finish_response(rid)
    with pytest.raises(ConversationError):
        conv.finish_response(rid)


def test_every_id_comes_from_the_factory() -> None:
    issued: list[str] = []
    base = counter_ids()

    def ids(prefix: str) -> str:
        issued.append(base(prefix))
        return issued[-1]

    conv = Conversation(ids, model="m")
    events = [*conv.created(), *conv.handle(user_text("x"))]
    rid, more = conv.create_response()
    events += more
    item_id, more = conv.add_assistant_message(rid)
    events += more + conv.finish_response(rid)
    events += conv.handle(
        ev(
            type="conversation.item.create",
            item={"type": "message", "role": "user", "content": []},
            event_id="client",
        )
    )
    seen = {e.event_id for e in events}
    assert seen <= set(issued) and len(seen) == len(events)
    assert {rid, item_id, conv.session.id, conv.conversation_id} <= set(issued)


def test_random_ids_are_injected() -> None:
    stream = iter(range(1000))

    def randbytes(n: int) -> bytes:
        return bytes(next(stream) % 256 for _ in range(n))

    make = random_ids(randbytes)
    a, b = make("event"), make("item")
    assert a.startswith("event_") and b.startswith("item_") and a[6:] != b[5:]
    assert len(a) == len("event_") + 21 and a[6:].isalnum()
    again = random_ids(lambda n: bytes(range(n)))
    assert again("x") == random_ids(lambda n: bytes(range(n)))("x")


def test_conversations_configured_alike_share_their_starting_session_until_it_is_read():
    no_vad = json.dumps({"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    voice = json.dumps({"type": "realtime", "audio": {"output": {"voice": "verse"}}})
    a, b = (Conversation(counter_ids(), model="m", defaults=(no_vad, voice)) for _ in range(2))
    assert a.settings is b.settings  # one shared template, no copy per call
    assert vad_params(a.settings) is None and a.settings.voice == "verse"  # both applied
    own = a.session  # session.created needs the whole session: now a copy with a's own id
    assert own is a.session is a.settings and own.id.startswith("sess_") and own.id != b.settings.id  # placeholder
    assert own.audio == b.settings.audio and b.settings is not own


def test_an_update_to_a_shared_starting_session_changes_only_that_conversation():
    a, b = (Conversation(counter_ids(), model="m") for _ in range(2))
    [updated] = a.handle(ev(type="session.update", session={"type": "realtime", "instructions": "hi"}))
    assert updated.type == "session.updated" and a.session.instructions == "hi"
    assert b.settings.instructions == "" and b.session is not a.session


def test_a_client_s_words_or_a_large_configuration_are_not_kept_in_the_shared_cache(monkeypatch):
    def shared(config: dict[str, Any]) -> bool:
        defaults = (json.dumps({"type": "realtime", **config}),)
        a, b = (Conversation(counter_ids(), model="m", defaults=defaults) for _ in range(2))
        return a.settings is b.settings

    assert not shared({"instructions": "be brief"})  # built per call: a prompt leaves with its call
    assert not shared({"tools": []})
    voice = {"audio": {"output": {"voice": "verse"}}}
    assert shared(voice)
    monkeypatch.setattr(realtime_session, "MAX_SHARED_DEFAULTS", 20)
    assert not shared(voice)  # larger than the limit now
