"""Barge-in through the whole gateway to the model server: a WebRTC test client, a real call with
its voice layer and agent runner, the ``realtime-ws`` bridge and the local Realtime protocol
server, all over loopback sockets.

What the model server's conversation keeps of an interrupted answer must be what the user heard:
the audio the call actually sent as RTP, not what the model generated.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np
import pytest

from voxwire.agent.realtime_ws import RealtimeBridgeAgent, RealtimeBridgeSession
from voxwire.aio.agents import AgentRunner
from voxwire.proto.certificate import Certificate
from voxwire.testing.client import TestClient
from voxwire.testing.realtime_server import RealtimeTestServer, start_realtime_server
from voxwire.testing.sockets import sockname, udp, until
from voxwire.transceiver.call import Call
from voxwire.transceiver.service import Transceiver, TransceiverConfig

API_KEY = "sk-test-bridge-call-0123456789"
RATE = 24_000
FRAME_MS = 20


@pytest.fixture(scope="module")
def certs() -> tuple[Certificate, Certificate]:
    return Certificate.generate(), Certificate.generate()


@dataclass
class Bridged:
    model: RealtimeTestServer
    call: Call
    client: TestClient
    runner: AgentRunner
    send: Callable[..., None]
    events: Callable[[], list[dict]]

    def types(self) -> list[str]:
        return [e["type"] for e in self.events()]

    def ask(self, seconds: float) -> None:
        """A committed turn of ``seconds`` of tone and ``response.create``."""
        pcm = (5000 * np.sin(2 * np.pi * 300 * np.arange(int(seconds * RATE)) / RATE)).astype("<i2")
        self.send(type="input_audio_buffer.append", audio=base64.b64encode(pcm.tobytes()).decode())
        self.send(type="input_audio_buffer.commit")
        self.send(type="response.create")


@contextlib.asynccontextmanager
async def bridged_call(certs: tuple[Certificate, Certificate]) -> AsyncIterator[Bridged]:
    model = await start_realtime_server(api_key=API_KEY)
    agent = RealtimeBridgeAgent(model.url, API_KEY, "test-model", RATE)
    transceiver = Transceiver(TransceiverConfig(advertised=(("127.0.0.1", 1),)), agent, certificate=certs[0])
    shell = await udp(transceiver.endpoint)
    runner = AgentRunner(transceiver, shell)
    shell.after_drain = runner.after_drain
    transceiver.config = TransceiverConfig(advertised=(sockname(shell),))
    client = TestClient(certs[1], shell.now(), rng=random.Random(11))
    client_shell = await udp(client)
    call, answer = transceiver.create_call(client.offer(data_channel=True, snap=True), shell.now())
    shell.drain()
    client.answer(answer, client_shell.now())
    client_shell.drain()
    try:
        await until(lambda: client.srtp is not None)
        channel = client.open_channel("oai-events", client_shell.now())
        client_shell.drain()

        def events() -> list[dict]:
            return [json.loads(m) for c, m in client.channel_messages if c == channel]

        def send(**event: object) -> None:
            client.send_message(channel, json.dumps(event), client_shell.now())
            client_shell.drain()

        await until(lambda: bool(events()))
        send(
            type="session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
        )
        yield Bridged(model, call, client, runner, send, events)
    finally:
        call.close(shell.now(), "test over")
        session = call.agent_session
        assert isinstance(session, RealtimeBridgeSession)
        await session.wait_closed()
        for each in (shell, client_shell):
            assert each.transport is not None
            each.transport.close()
        await model.close()


def heard_by_the_client(b: Bridged) -> int:
    (truncated,) = [e for e in b.events() if e["type"] == "conversation.item.truncated"]
    return int(truncated["audio_end_ms"])


def test_a_barge_in_after_the_answer_was_generated_truncates_it_upstream(certs) -> None:
    async def main() -> None:
        async with bridged_call(certs) as b:
            model = b.model
            model.tone_hz, model.tone_seconds = 300.0, 3.0  # generated at once, played for 3 s
            b.ask(0.5)
            await until(lambda: "response.done" in b.types() and len(b.client.received) >= 25)
            assert model.sent_of_type("response.done")[0].response.status == "completed"  # type: ignore[attr-defined]
            b.send(type="response.cancel")
            await model.until(lambda: bool(model.sent_of_type("conversation.item.truncated")))

            (truncate,) = model.of_type("conversation.item.truncate")
            item_id = model.sent_of_type("response.output_audio.delta")[0].item_id  # type: ignore[attr-defined]
            assert truncate.item_id == item_id and truncate.content_index == 0  # type: ignore[attr-defined]
            heard = heard_by_the_client(b)
            assert truncate.audio_end_ms == heard  # type: ignore[attr-defined]  # the call's own figure
            await asyncio.sleep(0.1)  # any frame still on the wire arrives
            assert abs(heard - FRAME_MS * len(b.client.received)) <= 2 * FRAME_MS
            assert 400 <= heard < 3000
            assert "response.cancel" not in model.types()  # nothing was generating any more

    asyncio.run(asyncio.wait_for(main(), 15))


def test_a_barge_in_while_generating_cancels_and_truncates_upstream_once(certs) -> None:
    async def main() -> None:
        async with bridged_call(certs) as b:
            model = b.model
            model.paced, model.tone_hz, model.tone_seconds = True, 300.0, 5.0
            b.ask(0.5)
            await until(lambda: len(b.client.received) >= 15)
            assert "response.done" not in b.types()
            b.send(type="response.cancel")
            await model.until(lambda: bool(model.sent_of_type("conversation.item.truncated")))
            await until(lambda: b.runner.running == 0)  # the generator has left

            # The next turn's events go up behind any interrupt queued before them.
            model.paced, model.tone_hz = False, None
            b.ask(0.3)
            await model.until(lambda: len(model.sent_of_type("response.done")) == 2)
            response_id = model.sent_of_type("response.created")[0].response.id  # type: ignore[attr-defined]
            assert [e.response_id for e in model.of_type("response.cancel")] == [response_id]  # type: ignore[attr-defined]
            (truncate,) = model.of_type("conversation.item.truncate")
            assert truncate.audio_end_ms == heard_by_the_client(b)  # type: ignore[attr-defined]
            assert model.sent_of_type("response.done")[0].response.status == "cancelled"  # type: ignore[attr-defined]
            assert not model.sent_of_type("error")

    asyncio.run(asyncio.wait_for(main(), 15))
