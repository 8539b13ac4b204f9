"""A transceiver's calls share one VAD batch: a turn decided when the batch runs reaches the
agent runner at once (Transceiver.wake), not with the call's next datagram."""

from __future__ import annotations

import functools
import wave
from pathlib import Path

import numpy as np

from voxwire.agent.echo import EchoAgent
from voxwire.agent.vad import VadBatch
from voxwire.media.resample import Resampler
from voxwire.proto.certificate import Certificate
from voxwire.testing.client import TestClient
from voxwire.transceiver.service import Transceiver, TransceiverConfig
from voxwire.voice.session import StartResponse, server_vad_detector

RATE = 24_000
WAV = Path(__file__).parent / "data" / "audio" / "three_turns.wav"


def speech() -> np.ndarray:
    with wave.open(str(WAV)) as w:
        rate, pcm = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    pcm = pcm.astype(np.int16)
    return pcm if rate == RATE else Resampler(rate, RATE).process(pcm)


def test_turns_decided_by_the_batch_wake_their_calls_every_time() -> None:
    batch = VadBatch()
    transceiver = Transceiver(TransceiverConfig(advertised=(("127.0.0.1", 9),)), EchoAgent(stream=False))
    transceiver.turn_detector = functools.partial(server_vad_detector, batch=batch)
    vad = {"audio": {"input": {"turn_detection": {"type": "server_vad"}}}}
    calls = []
    for _ in range(2):
        client = TestClient(Certificate.generate(), 0.0)
        call, _ = transceiver.create_call(client.offer(), 0.0, session=vad)
        calls.append(call)
    pcm = speech()
    starts: dict[str, int] = {}
    now = 0.0
    for i in range(0, len(pcm) + RATE, 480):
        frame = pcm[i : i + 480] if i < len(pcm) else np.zeros(480, dtype=np.int16)
        for call in calls:
            call.voice.on_input_audio(frame)
            assert call.poll_command() is None  # nothing is decided before the batch runs
        batch.run()
        woken = transceiver.wake(now)
        for call in transceiver.take_pending():  # what AgentRunner.after_drain does next
            assert call in woken
            while (command := call.poll_command()) is not None:
                if isinstance(command, StartResponse):
                    starts[call.call_id] = starts.get(call.call_id, 0) + 1
                    call.voice.on_agent_done(command.response_id)
        now += 0.02
    # Both callers said three things; each turn reached the runner when its batch ran.
    assert starts == {call.call_id: 3 for call in calls}
    assert batch.runs < batch.windows  # the two calls' windows shared runs


def test_the_gateway_scores_on_a_worker_thread_and_wakes_the_calls() -> None:
    import asyncio
    import threading

    from voxwire.aio.udp import open_udp
    from voxwire.aio.vad import attach_vad_batch

    async def main() -> tuple[int, set[str]]:
        transceiver = Transceiver(TransceiverConfig(advertised=(("127.0.0.1", 9),)), EchoAgent(stream=False))
        shell = await open_udp(transceiver.endpoint, "127.0.0.1", 0)
        threads: set[str] = set()
        batch = attach_vad_batch(transceiver, shell)
        score = batch.score

        def traced(round_):  # type: ignore[no-untyped-def]
            threads.add(threading.current_thread().name)
            score(round_)

        batch.score = traced  # type: ignore[method-assign]
        vad = {"audio": {"input": {"turn_detection": {"type": "server_vad"}}}}
        client = TestClient(Certificate.generate(), 0.0)
        call, _ = transceiver.create_call(client.offer(), shell.now(), session=vad)
        starts = 0
        pcm = speech()
        for i in range(0, len(pcm) + RATE, 480):
            frame = pcm[i : i + 480] if i < len(pcm) else np.zeros(480, dtype=np.int16)
            call.voice.on_input_audio(frame)
            await asyncio.sleep(0.002)  # the loop runs the round and its hand-back
            for pending in transceiver.take_pending():
                while (command := pending.poll_command()) is not None:
                    if isinstance(command, StartResponse):
                        starts += 1
                        pending.voice.on_agent_done(command.response_id)
        await asyncio.sleep(0.05)
        shell.transport.close()  # type: ignore[union-attr]
        return starts, threads

    starts, threads = asyncio.run(main())
    assert starts == 3
    assert threads and all(name.startswith("voxwire-vad") for name in threads)
