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
