"""The ``realtime-ws`` bridge against the local Realtime protocol server, over real loopback sockets.

The bridge is driven directly, as the agent runner drives it (``on_audio`` per 20 ms frame,
``respond(turn)`` iterated in a task, cancelled on barge-in), with a fake call context: no WebRTC.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import pytest

from voxwire.agent.base import AgentError, AgentOutput, AudioOut, Pcm, TextOut, Turn
from voxwire.agent.realtime_ws import (
    RealtimeBridgeAgent,
    RealtimeBridgeSession,
    RealtimeConfigError,
    from_environment,
)
from voxwire.realtime.events import InputAudioBufferSpeechStartedEvent, parse_server_event
from voxwire.testing.realtime_server import RealtimeTestServer, start_realtime_server, tone

API_KEY = "sk-test-bridge-0123456789"
RATE = 24_000
FRAME = RATE // 50


@dataclass
class FakeCall:
    call_id: str = "rtc_bridge_test"
    played: list[Pcm] = field(default_factory=list)

    def play(self, pcm: Pcm, now: float | None = None) -> None:
        self.played.append(pcm)


def run(main: Callable[[], Awaitable[None]], timeout: float = 5.0) -> None:
    asyncio.run(asyncio.wait_for(main(), timeout))


@contextlib.asynccontextmanager
async def bridge(
    key: str = API_KEY, rate: int = RATE, **options: Any
) -> AsyncIterator[tuple[RealtimeTestServer, RealtimeBridgeSession]]:
    server = await start_realtime_server(api_key=API_KEY)
    session = RealtimeBridgeAgent(server.url, key, "test-model", rate, **options).start(FakeCall())
    try:
        yield server, session
    finally:
        session.close()
        await session.wait_closed()
        await server.close()


def speech(seconds: float, hz: float = 300.0) -> Pcm:
    return np.frombuffer(tone(hz, seconds), dtype="<i2").astype(np.int16)


def feed(session: RealtimeBridgeSession, pcm: Pcm, frame: int = FRAME) -> None:
    for start in range(0, len(pcm), frame):
        session.on_audio(pcm[start : start + frame], 0.0)


async def collect(session: RealtimeBridgeSession, turn: Turn) -> list[AgentOutput]:
    return [output async for output in session.respond(turn)]


def audio_of(outputs: list[AgentOutput]) -> Pcm:
    chunks = [o.pcm for o in outputs if isinstance(o, AudioOut)]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


def text_of(outputs: list[AgentOutput]) -> str:
    return "".join(o.delta for o in outputs if isinstance(o, TextOut))


def appended(server: RealtimeTestServer) -> list[Pcm]:
    return [np.frombuffer(e.audio_bytes(), dtype="<i2") for e in server.of_type("input_audio_buffer.append")]  # type: ignore[attr-defined]


def test_a_turn_goes_up_and_the_answer_comes_back_in_order() -> None:
    async def main() -> None:
        async with bridge() as (server, session):
            user = speech(0.5)
            feed(session, user)
            outputs = await collect(session, Turn(audio=user, sample_rate=RATE, item_id="item_u1"))

            kinds = server.types()
            assert kinds[0] == "session.update"
            assert kinds[1:] == ["input_audio_buffer.append"] * 5 + [
                "input_audio_buffer.commit",
                "response.create",
            ]
            update = server.of_type("session.update")[0].session  # type: ignore[attr-defined]
            audio_in = update.audio.input
            assert "turn_detection" in audio_in.model_fields_set and audio_in.turn_detection is None
            assert audio_in.format.rate == RATE and update.audio.output.format.rate == RATE
            assert update.output_modalities == ["audio"]
            assert [len(a) for a in appended(server)] == [RATE // 10] * 5
            assert server.of_type("response.create")[0].response is None  # type: ignore[attr-defined]

            # The server played the committed turn back: the same samples, with its transcript.
            assert server.committed[0] == user.astype("<i2").tobytes()
            assert np.array_equal(audio_of(outputs), user)
            assert text_of(outputs) == "I heard 0.5 seconds of audio."
            sent = [
                "audio" if e.type == "response.output_audio.delta" else "text"
                for e in server.sent
                if e.type in ("response.output_audio.delta", "response.output_audio_transcript.delta")
            ]
            assert ["audio" if isinstance(o, AudioOut) else "text" for o in outputs] == sent

    run(main)


def test_instructions_and_voice_are_forwarded() -> None:
    async def main() -> None:
        async with bridge(instructions="Be terse.", voice="marin") as (server, session):
            user = speech(0.3)
            feed(session, user)
            await collect(
                session, Turn(audio=user, sample_rate=RATE, item_id="i1", instructions="Answer in French.")
            )
            update = server.of_type("session.update")[0].session  # type: ignore[attr-defined]
            assert update.instructions == "Be terse." and update.audio.output.voice == "marin"
            create = server.of_type("response.create")[0]
            assert create.response.instructions == "Answer in French."  # type: ignore[attr-defined]
            created = server.sent_of_type("session.updated")[0]
            assert created.session.instructions == "Be terse."  # type: ignore[attr-defined]

    run(main)


def test_turn_audio_that_did_not_stream_is_uploaded_and_a_turn_is_committed_once() -> None:
    async def main() -> None:
        async with bridge() as (server, session):
            # Audio the client appended over the data channel never passed through on_audio.
            user = speech(1.5)
            turn = Turn(audio=user, sample_rate=RATE, item_id="i1")
            outputs = await collect(session, turn)
            assert [len(a) for a in appended(server)] == [RATE, RATE // 2]
            assert np.array_equal(audio_of(outputs), user)
            # A second response to the same turn (response.create with no new input): no commit.
            await collect(session, Turn(audio=user, sample_rate=RATE, item_id="i1", instructions="Again."))
            assert server.types()[-2:] == ["response.create", "response.create"]
            assert len(server.committed) == 1

    run(main)


def test_barge_in_cancels_upstream_and_truncates_to_what_was_heard() -> None:
    async def main() -> None:
        async with bridge() as (server, session):
            server.paced, server.tone_hz, server.tone_seconds = True, 200.0, 3.0
            user = speech(0.3)
            feed(session, user)
            outputs: list[AgentOutput] = []
            three = asyncio.Event()

            async def consume() -> None:
                async for output in session.respond(Turn(audio=user, sample_rate=RATE, item_id="i1")):
                    outputs.append(output)
                    if sum(isinstance(o, AudioOut) for o in outputs) == 3:
                        three.set()

            task = asyncio.get_running_loop().create_task(consume())
            await three.wait()
            task.cancel()  # what the runner does on barge-in, while the user's new turn streams in
            barge = speech(0.4, hz=500)
            feed(session, barge)
            with pytest.raises(asyncio.CancelledError):
                await task
            await server.until(lambda: bool(server.sent_of_type("conversation.item.truncated")))
            response_id = server.sent_of_type("response.created")[0].response.id  # type: ignore[attr-defined]
            cancel = server.of_type("response.cancel")[0]
            assert cancel.response_id == response_id  # type: ignore[attr-defined]
            truncate = server.of_type("conversation.item.truncate")[0]
            item_id = server.sent_of_type("response.output_audio.delta")[0].item_id  # type: ignore[attr-defined]
            assert truncate.item_id == item_id and truncate.content_index == 0  # type: ignore[attr-defined]
            produced_ms = 1000 * len(audio_of(outputs)) / RATE
            assert 100 <= truncate.audio_end_ms <= produced_ms  # type: ignore[attr-defined]
            done = server.sent_of_type("response.done")[0].response  # type: ignore[attr-defined]
            assert done.status == "cancelled" and done.status_details.reason == "client_cancelled"
            assert len(server.sent_of_type("response.output_audio.delta")) < 30  # the stream stopped

            # The interrupt went ahead of the audio queued before it.
            kinds = server.types()
            assert kinds.index("response.cancel") < kinds.index(
                "input_audio_buffer.append", kinds.index("response.create")
            )

            # The next turn is answered, with nothing left over from the cancelled response.
            server.paced, server.tone_hz = False, None
            outputs = await collect(session, Turn(audio=barge, sample_rate=RATE, item_id="i2"))
            assert np.array_equal(audio_of(outputs), barge)

    run(main)


def test_cancelled_before_the_server_named_the_response() -> None:
    async def main() -> None:
        async with bridge() as (server, session):
            server.paced = True
            user = speech(0.3)
            feed(session, user)
            await server.until(lambda: "session.update" in server.types())
            generator = session.respond(Turn(audio=user, sample_rate=RATE, item_id="i1"))
            task = asyncio.get_running_loop().create_task(anext(generator))  # type: ignore[arg-type]
            await asyncio.sleep(0)  # one step: the response is queued, nothing has reached the server
            assert "response.create" not in server.types()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await server.until(lambda: bool(server.sent_of_type("response.done")))
            response_id = server.sent_of_type("response.created")[0].response.id  # type: ignore[attr-defined]
            assert server.of_type("response.cancel")[0].response_id == response_id  # type: ignore[attr-defined]
            assert server.sent_of_type("response.done")[0].response.status == "cancelled"  # type: ignore[attr-defined]

    run(main)


def test_a_server_error_event_becomes_an_agent_error_and_the_session_goes_on() -> None:
    async def main() -> None:
        async with bridge() as (server, session):
            server.fail_next_response("The model is overloaded; try again.")
            user = speech(0.3)
            feed(session, user)
            with pytest.raises(AgentError, match=r"^The model is overloaded; try again\.$"):
                await collect(session, Turn(audio=user, sample_rate=RATE, item_id="i1"))
            feed(session, user)
            outputs = await collect(session, Turn(audio=user, sample_rate=RATE, item_id="i2"))
            assert np.array_equal(audio_of(outputs), user)
            assert server.connections == 1

    run(main)


def test_a_dropped_websocket_becomes_an_agent_error_and_the_next_turn_reconnects() -> None:
    async def main() -> None:
        async with bridge() as (server, session):
            server.drop_next_response(after_deltas=2)
            user = speech(0.5)
            feed(session, user)
            outputs: list[AgentOutput] = []
            with pytest.raises(AgentError, match="the model server closed the connection"):
                async for output in session.respond(Turn(audio=user, sample_rate=RATE, item_id="i1")):
                    outputs.append(output)
            assert sum(isinstance(o, AudioOut) for o in outputs) == 2
            feed(session, user)
            outputs = await collect(session, Turn(audio=user, sample_rate=RATE, item_id="i2"))
            assert np.array_equal(audio_of(outputs), user)
            assert server.connections == 2
            assert server.types().count("session.update") == 2

    run(main)


def test_connection_failures_are_agent_errors_with_a_clear_message() -> None:
    async def main() -> None:
        user = speech(0.2)
        turn = Turn(audio=user, sample_rate=RATE, item_id="i1")
        async with bridge(key="sk-wrong-key-000000") as (server, session):
            feed(session, user)
            with pytest.raises(AgentError, match=r"refused the API key \(HTTP 401\)") as caught:
                await collect(session, turn)
            assert "sk-wrong" not in str(caught.value) and server.rejected >= 1 and server.connections == 0

        # Nothing listening.
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        session = RealtimeBridgeAgent(f"ws://127.0.0.1:{port}/v1/realtime", API_KEY, "m").start(FakeCall())
        with pytest.raises(AgentError, match="could not connect to the model server at ws://127.0.0.1"):
            await collect(session, turn)
        session.close()

        # Listening, never answering.
        writers: list[asyncio.StreamWriter] = []
        silent = await asyncio.start_server(lambda r, w: writers.append(w), "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        agent = RealtimeBridgeAgent(f"ws://127.0.0.1:{port}/v1/realtime", API_KEY, "m", connect_timeout=0.3)
        session = agent.start(FakeCall())
        with pytest.raises(AgentError, match="did not answer within 0.3 s"):
            await collect(session, turn)
        session.close()
        await session.wait_closed()
        for writer in writers:
            writer.close()
        silent.close()
        await silent.wait_closed()

    run(main)


def test_on_audio_batches_and_its_queue_is_bounded() -> None:
    async def main() -> None:
        async with bridge(batch_ms=40) as (server, session):
            user = speech(0.5)
            feed(session, user)  # 20 ms frames -> 40 ms appends; the last 20 ms go with the commit
            await collect(session, Turn(audio=user, sample_rate=RATE, item_id="i1"))
            assert [len(a) for a in appended(server)] == [960] * 12 + [480]

        # Ten seconds arrive before the connection is up: only the newest second is kept.
        async with bridge(max_queued_seconds=1.0) as (server, session):
            ramp = (np.arange(10 * RATE) % 30_000).astype(np.int16)
            feed(session, ramp)
            assert session.counters["input_audio_dropped_ms"] == 9000
            await collect(session, Turn(audio=ramp, sample_rate=RATE, item_id="i1"))
            assert np.array_equal(np.frombuffer(server.committed[0], dtype="<i2"), ramp[-RATE:])

    run(main)


def test_a_long_silence_restarts_the_server_buffer_with_the_newest_audio() -> None:
    async def main() -> None:
        async with bridge(max_uncommitted_seconds=1.0, keep_seconds=0.5) as (server, session):
            await server.until(lambda: "session.update" in server.types())
            ramp = (np.arange(3 * RATE) % 30_000).astype(np.int16)
            for start in range(0, len(ramp), RATE // 10):
                feed(session, ramp[start : start + RATE // 10])
                await asyncio.sleep(0)  # let the writer send as it goes
            await collect(session, Turn(audio=ramp, sample_rate=RATE, item_id="i1"))
            assert server.types().count("input_audio_buffer.clear") >= 2
            assert session.counters["input_buffer_restarts"] >= 2
            committed = np.frombuffer(server.committed[0], dtype="<i2")
            assert RATE // 2 <= len(committed) <= RATE + RATE // 10
            assert np.array_equal(committed, ramp[-len(committed) :])

    run(main)


def test_a_16_khz_agent_is_resampled_both_ways() -> None:
    async def main() -> None:
        async with bridge(rate=16_000) as (server, session):
            t = np.arange(8000) / 16_000
            user = (8000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
            feed(session, user, frame=320)
            outputs = await collect(session, Turn(audio=user, sample_rate=16_000, item_id="i1"))
            up = sum(len(a) for a in appended(server))
            assert RATE // 2 - RATE // 10 <= up <= RATE // 2  # soxr holds back a few ms
            down = audio_of(outputs)
            assert abs(len(down) - up * 2 / 3) <= 2
            assert float(np.sqrt(np.mean(down[2000:6000].astype(np.float64) ** 2))) > 4000

    run(main)


def test_server_vad_speech_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with bridge() as (server, session):
            user = speech(0.3)
            feed(session, user)
            await server.until(lambda: "session.update" in server.types())
            await server.inject(
                InputAudioBufferSpeechStartedEvent(
                    event_id="event_vad", audio_start_ms=1234, item_id="item_v"
                )
            )
            outputs = await collect(session, Turn(audio=user, sample_rate=RATE, item_id="i1"))  # after it
            assert any("1234 ms" in r.getMessage() and "VAD" in r.getMessage() for r in caplog.records)
            assert np.array_equal(audio_of(outputs), user)

    with caplog.at_level(logging.INFO, logger="voxwire.agent.realtime_ws"):
        run(main)


def test_a_barge_in_after_generation_ended_truncates_the_item_upstream() -> None:
    """The response finished generating and is still playing out when the user talks over it: the
    gateway reports what was heard, and the server's item is cut to that (no cancel: nothing runs)."""

    async def main() -> None:
        async with bridge() as (server, session):
            user = speech(1.0)
            feed(session, user)
            turn = Turn(audio=user, sample_rate=RATE, item_id="i1", response_id="resp_local1")
            outputs = await collect(session, turn)
            assert len(audio_of(outputs)) == RATE
            assert server.sent_of_type("response.done")[0].response.status == "completed"  # type: ignore[attr-defined]

            session.interrupted("resp_not_ours", 100)
            session.interrupted("resp_local1", 420)
            await server.until(lambda: bool(server.sent_of_type("conversation.item.truncated")))
            (truncate,) = server.of_type("conversation.item.truncate")
            item_id = server.sent_of_type("response.output_audio.delta")[0].item_id  # type: ignore[attr-defined]
            assert (truncate.item_id, truncate.content_index, truncate.audio_end_ms) == (item_id, 0, 420)  # type: ignore[attr-defined]
            assert "response.cancel" not in server.types()

            # Once per response; interrupts go ahead of the next turn, so by its answer any
            # duplicate would have arrived.
            session.interrupted("resp_local1", 500)
            feed(session, user)
            await collect(
                session, Turn(audio=user, sample_rate=RATE, item_id="i2", response_id="resp_local2")
            )
            assert server.types().count("conversation.item.truncate") == 1

            # Never past the audio the server produced.
            session.interrupted("resp_local2", 1020)
            await server.until(lambda: len(server.sent_of_type("conversation.item.truncated")) == 2)
            assert server.of_type("conversation.item.truncate")[1].audio_end_ms == 1000  # type: ignore[attr-defined]
            assert not server.sent_of_type("error")

    run(main)


def test_a_barge_in_while_generating_cancels_and_truncates_once_whatever_the_order() -> None:
    async def main() -> None:
        async with bridge() as (server, session):
            server.paced, server.tone_hz, server.tone_seconds = True, 200.0, 3.0
            user = speech(0.3)

            async def start(response_id: str, item_id: str) -> asyncio.Task[None]:
                feed(session, user)
                three = asyncio.Event()

                async def consume() -> None:
                    produced = 0
                    async for output in session.respond(
                        Turn(audio=user, sample_rate=RATE, item_id=item_id, response_id=response_id)
                    ):
                        produced += isinstance(output, AudioOut)
                        if produced == 3:
                            three.set()

                task = asyncio.get_running_loop().create_task(consume())
                await three.wait()
                return task

            # The gateway's order: the hook with the audio heard, then the generator cancelled.
            task = await start("resp_a", "i1")
            session.interrupted("resp_a", 250)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await server.until(lambda: bool(server.sent_of_type("conversation.item.truncated")))
            response_a = server.sent_of_type("response.created")[0].response.id  # type: ignore[attr-defined]
            assert [e.response_id for e in server.of_type("response.cancel")] == [response_a]  # type: ignore[attr-defined]
            (truncate,) = server.of_type("conversation.item.truncate")
            assert truncate.audio_end_ms == 250  # type: ignore[attr-defined]  # the gateway's figure

            # The other order: the cancellation's estimate goes up; the late hook adds nothing.
            task = await start("resp_b", "i2")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            session.interrupted("resp_b", 250)
            await server.until(lambda: len(server.sent_of_type("conversation.item.truncated")) == 2)
            server.paced, server.tone_hz = False, None
            await collect(session, Turn(audio=user, sample_rate=RATE, item_id="i3"))  # flushes the writer
            assert server.types().count("response.cancel") == 2
            assert server.types().count("conversation.item.truncate") == 2
            assert not server.sent_of_type("error")

    run(main)


def test_no_truncation_goes_to_a_connection_that_never_saw_the_response() -> None:
    async def main() -> None:
        async with bridge() as (server, session):
            user = speech(0.5)
            feed(session, user)
            await collect(session, Turn(audio=user, sample_rate=RATE, item_id="i1", response_id="resp_1"))
            server.drop_next_response(after_deltas=2)
            feed(session, user)
            with pytest.raises(AgentError, match="closed the connection"):
                await collect(session, Turn(audio=user, sample_rate=RATE, item_id="i2", response_id="resp_2"))
            feed(session, user)
            await collect(session, Turn(audio=user, sample_rate=RATE, item_id="i3", response_id="resp_3"))
            assert server.connections == 2
            # Their WebSocket is gone, and the new server session never saw them: nothing to tell.
            session.interrupted("resp_1", 300)
            session.interrupted("resp_2", 100)
            feed(session, user)
            await collect(session, Turn(audio=user, sample_rate=RATE, item_id="i4"))  # flushes the writer
            assert "conversation.item.truncate" not in server.types()
            assert "response.cancel" not in server.types()

    run(main)


def test_from_environment() -> None:
    with pytest.raises(RealtimeConfigError, match="VOXWIRE_REALTIME_URL is not set"):
        from_environment({})
    agent = from_environment(
        {"VOXWIRE_REALTIME_URL": "wss://models.example/v1/realtime", "VOXWIRE_REALTIME_API_KEY": "sk-env-key"}
    )
    assert agent.name == "realtime-ws" and agent.sample_rate == RATE
    assert str(agent.config.endpoint) == "wss://models.example/v1/realtime?model=gpt-realtime"
    assert "sk-env-key" not in repr(agent.config)
    agent = from_environment(
        {"VOXWIRE_REALTIME_URL": "ws://h:1/rt?model=mine", "VOXWIRE_REALTIME_MODEL": "other"}
    )
    assert str(agent.config.endpoint) == "ws://h:1/rt?model=mine"
    with pytest.raises(RealtimeConfigError, match="ws:// or wss://"):
        RealtimeBridgeAgent("ftp://h/rt", "", "m")


def test_the_test_server_follows_the_protocol() -> None:
    """The server itself, with a raw WebSocket client: what a bridge may rely on."""

    async def main() -> None:
        server = await start_realtime_server(api_key=API_KEY)
        auth = {"Authorization": f"Bearer {API_KEY}"}
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(server.url + "?model=m")
            assert refused.value.status == 401
            ws = await http.ws_connect(server.url + "?model=m", headers=auth)

            async def until(kind: str) -> list[str]:
                seen = []
                while True:
                    event = parse_server_event((await ws.receive()).data)  # every event validates
                    seen.append(event.type)
                    if event.type == kind:
                        return seen

            async def send(**event: Any) -> None:
                await ws.send_str(json.dumps(event))

            created = parse_server_event((await ws.receive()).data)
            assert created.type == "session.created"
            assert created.session.audio.input.turn_detection is None  # type: ignore[attr-defined]
            await send(type="input_audio_buffer.commit", event_id="c0")
            err = parse_server_event((await ws.receive()).data)
            assert err.error.code == "input_audio_buffer_commit_empty" and err.error.event_id == "c0"  # type: ignore[attr-defined]
            await send(type="input_audio_buffer.append", audio=base64.b64encode(tone(300, 0.25)).decode())
            await send(type="input_audio_buffer.commit")
            await send(type="response.create")
            seen = await until("response.done")
            deltas = [t for t in seen if t.endswith(".delta")]
            assert seen[:7] == [
                "input_audio_buffer.committed",
                "conversation.item.added",
                "conversation.item.done",
                "response.created",
                "response.output_item.added",
                "conversation.item.added",
                "response.content_part.added",
            ]
            assert deltas.count("response.output_audio.delta") == 3
            assert seen[7 + len(deltas) :] == [
                "response.output_audio.done",
                "response.output_audio_transcript.done",
                "response.content_part.done",
                "response.output_item.done",
                "conversation.item.done",
                "response.done",
            ]
            await send(type="response.cancel", event_id="x1")
            err = parse_server_event((await ws.receive()).data)
            assert err.error.code == "response_cancel_not_active"  # type: ignore[attr-defined]

            # With server_vad on, the energy gate finds the turn and answers it.
            await send(
                type="session.update",
                session={"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad"}}}},
            )
            await until("session.updated")
            audio = tone(300, 0.4) + bytes(2 * RATE)  # 0.4 s of tone, 1 s of silence
            await send(type="input_audio_buffer.append", audio=base64.b64encode(audio).decode())
            seen = await until("response.done")
            assert seen[:3] == [
                "input_audio_buffer.speech_started",
                "input_audio_buffer.speech_stopped",
                "input_audio_buffer.committed",
            ]
            stopped = server.sent_of_type("input_audio_buffer.speech_stopped")[0]
            assert 400 <= stopped.audio_end_ms <= 1500  # type: ignore[attr-defined]
            await ws.close()
        await server.close()

    run(main)
