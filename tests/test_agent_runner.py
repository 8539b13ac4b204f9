"""Agents answering over real loopback sockets: the asyncio runner starts a response per command,
feeds its output to the call, reports agent failures as errors, and cancels on barge-in."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import AsyncIterator

import numpy as np
import pytest

from voxwire.agent.base import AgentOutput, AudioOut, TextOut, Turn, handler_agent
from voxwire.agent.echo import EchoAgent
from voxwire.aio.agents import AgentRunner
from voxwire.proto.certificate import Certificate
from voxwire.testing.client import TestClient
from voxwire.testing.sockets import sockname, udp, until
from voxwire.transceiver.service import Transceiver, TransceiverConfig

RATE = 24_000


@pytest.fixture(scope="module")
def certs() -> tuple[Certificate, Certificate]:
    return Certificate.generate(), Certificate.generate()


@handler_agent("broken")
async def broken(turn: Turn) -> AsyncIterator[AgentOutput]:
    yield TextOut("about to fail")
    raise RuntimeError("model server went away")


@handler_agent("slow")
async def slow(turn: Turn) -> AsyncIterator[AgentOutput]:
    tone = (6000 * np.sin(2 * np.pi * 200 * np.arange(RATE // 5) / RATE)).astype(np.int16)
    for _ in range(50):  # 10 s of audio, produced in real time
        yield AudioOut(tone)
        await asyncio.sleep(0.2)


def events_of(client: TestClient, channel: int) -> list[dict]:
    return [json.loads(m) for c, m in client.channel_messages if c == channel]


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


async def realtime_call(certs, agent):
    server = Transceiver(TransceiverConfig(advertised=(("127.0.0.1", 1),)), agent, certificate=certs[0])
    shell = await udp(server.endpoint)
    runner = AgentRunner(server, shell)
    shell.after_drain = runner.after_drain
    host, port = sockname(shell)
    server.config = TransceiverConfig(advertised=((host, port),))
    client = TestClient(certs[1], shell.now(), rng=random.Random(5))
    client_shell = await udp(client)
    _, answer = server.create_call(client.offer(data_channel=True, snap=True), shell.now())
    shell.drain()
    client.answer(answer, client_shell.now())
    client_shell.drain()
    await until(lambda: client.srtp is not None)
    channel = client.open_channel("oai-events", client_shell.now())
    client_shell.drain()
    await until(lambda: bool(events_of(client, channel)))

    def send(**event) -> None:
        client.send_message(channel, json.dumps(event), client_shell.now())
        client_shell.drain()

    send(type="session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    pcm = (5000 * np.sin(2 * np.pi * 300 * np.arange(RATE // 2) / RATE)).astype("<i2")
    send(type="input_audio_buffer.append", audio=base64.b64encode(pcm.tobytes()).decode())
    send(type="input_audio_buffer.commit")
    send(type="response.create")
    return client, channel, send, runner, (shell, client_shell)


def close(*shells) -> None:
    for shell in shells:
        shell.transport.close()


def test_echo_answers_response_create_with_the_committed_turn(certs):
    async def main() -> None:
        client, channel, send, runner, shells = await realtime_call(certs, EchoAgent())
        await until(lambda: "output_audio_buffer.stopped" in types(events_of(client, channel)), timeout=5)
        got = types(events_of(client, channel))
        assert got.index("response.created") < got.index("response.done") < got.index("output_audio_buffer.stopped")
        assert "response.output_audio_transcript.delta" in got
        # Half a second of turn came back as ~25 RTP frames (plus the streamed echo: none was sent).
        assert 24 <= len(client.received) <= 27
        assert runner.running == 0
        close(*shells)

    asyncio.run(main())


def test_an_agent_failure_is_an_error_event_not_a_crash(certs):
    async def main() -> None:
        client, channel, send, runner, shells = await realtime_call(certs, broken)
        await until(lambda: "response.done" in types(events_of(client, channel)))
        events = events_of(client, channel)
        error = next(e for e in events if e["type"] == "error")
        assert "RuntimeError" in error["error"]["message"] and "went away" not in error["error"]["message"]
        done = next(e for e in events if e["type"] == "response.done")
        assert done["response"]["status"] == "failed"
        close(*shells)

    asyncio.run(main())


def test_cancel_stops_a_long_response_within_a_frame(certs):
    async def main() -> None:
        client, channel, send, runner, shells = await realtime_call(certs, slow)
        await until(lambda: "output_audio_buffer.started" in types(events_of(client, channel)))
        await asyncio.sleep(0.3)
        assert runner.running == 1
        send(type="response.cancel")
        await until(lambda: "output_audio_buffer.cleared" in types(events_of(client, channel)))
        received = len(client.received)
        await asyncio.sleep(0.3)
        assert len(client.received) <= received + 1  # at most the frame already on the wire
        assert runner.running == 0
        events = events_of(client, channel)
        truncated = next(e for e in events if e["type"] == "conversation.item.truncated")
        assert 200 <= truncated["audio_end_ms"] <= 800
        done = next(e for e in events if e["type"] == "response.done")
        assert done["response"]["status"] == "cancelled"
        close(*shells)

    asyncio.run(main())


class FirstFrameProbe:
    """Yields audio once, then looks whether the call already sent its first RTP packet."""

    name = "first-frame-probe"
    sample_rate = RATE

    def __init__(self) -> None:
        self.sent_before_resuming: list[bool] = []

    def start(self, ctx):  # type: ignore[no-untyped-def]
        probe = self

        class Session:
            def on_audio(self, pcm, now) -> None:  # type: ignore[no-untyped-def]
                pass

            async def respond(self, turn):  # type: ignore[no-untyped-def]
                yield AudioOut(np.zeros(RATE // 10, dtype=np.int16))
                probe.sent_before_resuming.append(ctx.timeline.first_audio_out is not None)

            def close(self) -> None:
                pass

        return Session()


def test_a_responses_first_frame_leaves_with_the_agents_output(certs):
    """No timer round trip between the agent's first audio and its first RTP packet."""

    async def main() -> None:
        agent = FirstFrameProbe()
        client, channel, send, runner, shells = await realtime_call(certs, agent)
        await until(lambda: "response.done" in types(events_of(client, channel)), timeout=5)
        assert agent.sent_before_resuming == [True]
        close(*shells)

    asyncio.run(main())
