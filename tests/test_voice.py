"""The voice layer on virtual time: Realtime events in and out, responses run by a synchronous
driver, playback tracked from frames actually sent, barge-in truncating to what was heard."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest

from voxwire.agent.base import AudioOut, Turn
from voxwire.agent.echo import EchoAgent
from voxwire.agent.turns import SpeechStarted, SpeechStopped, TurnCommitted
from voxwire.media.pipeline import MediaConfig, OutboundAudio
from voxwire.realtime.conversation import Conversation, counter_ids
from voxwire.voice.session import CancelResponse, ResponseInterrupted, StartResponse, VoiceSession

RATE = 24_000


class Harness:
    def __init__(self, detector=None) -> None:
        self.outbound = OutboundAudio(RATE, MediaConfig(), 0)
        self.voice = VoiceSession(
            Conversation(counter_ids(), model="voxwire-echo"), self.outbound, RATE, turn_detector=detector
        )
        self.now = 100.0
        self.outbound.start(self.now)
        self.voice.open()
        self.agent = EchoAgent(RATE, stream=False).start(self)  # type: ignore[arg-type]

    def play(self, pcm, now=None) -> None:  # CallContext
        self.outbound.play(pcm)

    def send(self, **event) -> None:
        self.voice.on_client_event(json.dumps(event))

    def events(self) -> list[dict]:
        out = []
        while (text := self.voice.poll_server_event()) is not None:
            out.append(json.loads(text))
        return out

    def run_commands(self) -> list:
        done = []
        while (command := self.voice.poll_command()) is not None:
            done.append(command)
            if isinstance(command, StartResponse):
                for output in asyncio.run(collect(self.agent.respond(command.turn))):
                    self.voice.on_agent_output(command.response_id, output)
                self.voice.on_agent_done(command.response_id)
        return done

    def tick(self, seconds: float) -> int:
        """Let the pacer send for `seconds`; returns frames sent."""
        sent = 0
        end = self.now + seconds
        while (t := self.outbound.poll_timeout()) is not None and t < end - 1e-9:
            self.now = t
            for frame in self.outbound.due(self.now):
                self.voice.on_frame_sent(frame)
                sent += 1
        self.now = end
        return sent


async def collect(gen):
    return [item async for item in gen]


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (8000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


def b64(pcm: np.ndarray) -> str:
    return base64.b64encode(pcm.astype("<i2").tobytes()).decode()


def test_client_committed_turn_is_echoed_with_the_documented_events():
    h = Harness()
    assert types(h.events()) == ["session.created"]
    h.send(type="session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    assert types(h.events()) == ["session.updated"]
    audio = tone(0.5)
    h.send(type="input_audio_buffer.append", audio=b64(audio))
    h.send(type="input_audio_buffer.commit", event_id="evt_commit")
    assert types(h.events()) == ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
    h.send(type="response.create")
    assert types(h.events()) == ["response.created"]
    (command,) = h.run_commands()
    assert isinstance(command, StartResponse)
    np.testing.assert_array_equal(command.turn.audio, audio)
    events = types(h.events())
    assert events[:3] == ["response.output_item.added", "conversation.item.added", "response.content_part.added"]
    assert "response.output_audio_transcript.delta" in events and events[-1] == "response.done"
    frames = h.tick(1.0)
    assert frames == 25  # 500 ms of echo in 20 ms frames
    assert types(h.events()) == ["output_audio_buffer.started", "output_audio_buffer.stopped"]


def test_barge_in_by_response_cancel_truncates_to_what_was_heard():
    h = Harness()
    h.send(type="session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    h.send(type="input_audio_buffer.append", audio=b64(tone(2.0)))
    h.send(type="input_audio_buffer.commit")
    h.send(type="response.create")
    h.run_commands()
    h.events()
    assert h.tick(0.2) == 10
    h.events()
    h.send(type="response.cancel")
    events = h.events()
    assert types(events) == ["output_audio_buffer.cleared", "conversation.item.truncated"]
    truncated = events[1]
    assert truncated["audio_end_ms"] == 200
    assert h.tick(1.0) == 0  # nothing more leaves after a cancel
    # A second cancel has nothing to cancel: an error carrying the client's event id.
    h.send(type="response.cancel", event_id="evt_again")
    (error,) = h.events()
    assert error["type"] == "error" and error["error"]["event_id"] == "evt_again"
    assert error["error"]["code"] == "response_cancel_not_active"


def test_the_agent_hears_what_was_heard_of_a_response_cut_short_after_generating():
    h = Harness()
    h.send(type="session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    h.send(type="input_audio_buffer.append", audio=b64(tone(2.0)))
    h.send(type="input_audio_buffer.commit")
    h.send(type="response.create")
    (start,) = h.run_commands()  # the echo answers in full: generation has ended
    assert start.turn.response_id == start.response_id
    assert h.tick(0.3) == 15
    h.send(type="output_audio_buffer.clear")
    assert h.run_commands() == [ResponseInterrupted(start.response_id, 300)]  # no generator to cancel
    h.send(type="output_audio_buffer.clear")  # nothing is playing any more
    assert h.run_commands() == []


def test_the_agent_hears_of_a_barge_in_before_its_generator_is_cancelled():
    h = Harness()
    h.send(type="session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    h.send(type="input_audio_buffer.append", audio=b64(tone(0.5)))
    h.send(type="input_audio_buffer.commit")
    h.send(type="response.create")
    (start,) = [c for c in iter(h.voice.poll_command, None)]
    h.voice.on_agent_output(start.response_id, AudioOut(tone(1.0)))  # still generating
    assert h.tick(0.2) == 10
    h.send(type="response.cancel")
    assert h.run_commands() == [
        ResponseInterrupted(start.response_id, 200),
        CancelResponse(start.response_id),
    ]
    # Cut short before a frame left: the agent hears 0 ms.
    h.send(type="response.create")
    (start,) = [c for c in iter(h.voice.poll_command, None)]
    h.send(type="response.cancel")
    assert h.run_commands() == [ResponseInterrupted(start.response_id, 0), CancelResponse(start.response_id)]


def test_bad_events_get_errors_and_the_session_stays_up():
    h = Harness()
    h.events()
    h.voice.on_client_event("{not json")
    h.send(type="no.such.event", event_id="evt_1")
    h.send(type="input_audio_buffer.commit", event_id="evt_2")  # empty buffer
    errors = h.events()
    assert types(errors) == ["error", "error", "error"]
    assert errors[1]["error"]["event_id"] == "evt_1"
    assert errors[2]["error"]["code"] == "input_audio_buffer_commit_empty"
    h.send(type="session.update", session={"type": "realtime", "instructions": "hi"})
    assert types(h.events()) == ["session.updated"]


class ScriptedDetector:
    """A turn detector that replays scripted events (the VAD itself is tested on its own)."""

    def __init__(self, params, rate) -> None:
        self.script: list = []

    def feed(self, pcm):
        out, self.script = self.script, []
        return out

    def commit(self):
        return TurnCommitted(tone(0.3), 0, 300)

    def clear(self) -> None:
        pass

    def start_idle_timer(self) -> None:
        pass


def test_server_vad_turn_creates_a_response_and_speech_interrupts_it():
    detectors = []

    def make(params, rate):
        detectors.append(ScriptedDetector(params, rate))
        return detectors[-1]

    h = Harness(detector=make)
    h.events()
    detector = detectors[-1]
    detector.script = [SpeechStarted(1000), SpeechStopped(2500), TurnCommitted(tone(1.5), 1000, 2500)]
    h.voice.on_input_audio(tone(0.02))
    events = types(h.events())
    assert events == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
    ]
    h.run_commands()
    h.events()
    h.tick(0.4)
    h.events()
    # The user talks over the assistant: audio stops within the tick, the item is truncated.
    detector.script = [SpeechStarted(3200)]
    h.voice.on_input_audio(tone(0.02))
    events = h.events()
    assert types(events) == [
        "input_audio_buffer.speech_started",
        "output_audio_buffer.cleared",
        "conversation.item.truncated",
    ]
    assert events[2]["audio_end_ms"] == 400
    assert h.tick(0.5) == 0
    (command,) = h.run_commands()  # generation had finished: nothing to cancel
    assert isinstance(command, ResponseInterrupted) and command.audio_end_ms == 400


def test_turn_carries_history_and_instructions():
    h = Harness()
    h.send(type="session.update", session={"type": "realtime", "instructions": "Be brief.",
                                            "audio": {"input": {"turn_detection": None}}})
    h.send(type="conversation.item.create", item={"type": "message", "role": "user",
                                                  "content": [{"type": "input_text", "text": "hello"}]})
    h.send(type="input_audio_buffer.append", audio=b64(tone(0.2)))
    h.send(type="input_audio_buffer.commit")
    h.send(type="response.create")
    (command,) = [c for c in iter(h.voice.poll_command, None)]
    turn: Turn = command.turn
    assert turn.instructions == "Be brief."
    assert [m.text for m in turn.history] == ["hello"]


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batched"])
def test_the_real_silero_detector_drives_turns_from_speech(batched: bool):
    """server_vad with the real detector on recorded speech: two turns, each answered. Batched
    (as voxwire serve runs it), the turn events arrive when the batch runs and wake the owner."""
    import functools
    import wave
    from pathlib import Path

    from voxwire.agent.vad import VadBatch
    from voxwire.voice.session import server_vad_detector

    batch = VadBatch() if batched else None
    h = Harness(detector=functools.partial(server_vad_detector, batch=batch))
    wakes = []
    h.voice.on_wake = lambda: wakes.append(1)
    h.events()
    with wave.open(str(Path(__file__).parent / "data" / "audio" / "three_turns.wav")) as w:
        rate, pcm = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if rate != RATE:
        from voxwire.media.resample import Resampler

        pcm = Resampler(rate, RATE).process(pcm)
    for i in range(0, len(pcm), 480):  # 20 ms frames as RTP delivers them
        h.voice.on_input_audio(pcm[i : i + 480].astype(np.int16))
        if batch is not None:
            batch.run()  # the edge runs it once per loop iteration
        h.run_commands()
    h.voice.on_input_audio(np.zeros(RATE, dtype=np.int16))  # trailing silence ends the last turn
    if batch is not None:
        batch.run()
    got = types(h.events())
    assert got.count("input_audio_buffer.speech_started") >= 2
    assert got.count("input_audio_buffer.committed") == got.count("input_audio_buffer.speech_stopped")
    assert got.count("response.created") >= 1
    assert (len(wakes) >= got.count("input_audio_buffer.speech_started")) if batched else wakes == []
