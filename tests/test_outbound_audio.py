"""Outbound audio: a live stream's backlog stays bounded; a response's audio is never trimmed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxwire.media.pipeline import FRAME_SECONDS, MediaConfig, OutboundAudio

RATE = 24_000


def frame(i: int) -> bytes:
    return i.to_bytes(4, "big")  # an "Opus payload" we can recognise (play_encoded sends it as is)


def test_a_stream_that_fell_behind_skips_ahead_instead_of_staying_late() -> None:
    out = OutboundAudio(RATE, MediaConfig(max_stream_backlog=0.06), initial_timestamp=0)
    out.start(0.0)
    # Steady state: one frame arrives per tick and leaves at once.
    sent = []
    for i in range(5):
        now = i * FRAME_SECONDS
        out.play_encoded(frame(i))
        sent += [(now, f.payload) for f in out.due(now)]
    assert [p for _, p in sent] == [frame(i) for i in range(5)]
    # The process stalls for 200 ms: ten frames arrive at once.
    now = 0.3
    for i in range(5, 15):
        out.play_encoded(frame(i))
    assert out.stream_trimmed == 7 and len(out.pacer) == 3  # 60 ms kept: frames 12, 13, 14
    sent = []
    for k in range(10):  # arrivals resume one per tick
        t = now + k * FRAME_SECONDS
        out.play_encoded(frame(15 + k))
        sent.append([int.from_bytes(f.payload, "big") for f in out.due(t)])
    # The newest 60 ms leave at once (15 pushed 12 out), then each frame as it arrives: no
    # standing queue keeps the stall's delay.
    assert sent == [[13, 14, 15]] + [[16 + k] for k in range(9)]
    assert len(out.pacer) == 0 and out.stream_trimmed == 8


def test_frames_of_a_live_stream_queued_together_leave_together() -> None:
    out = OutboundAudio(RATE, MediaConfig(), initial_timestamp=0)
    out.start(0.0)
    for i in range(3):  # steady state: each frame leaves as it arrives
        out.play_encoded(frame(i))
        assert [f.payload for f in out.due(i * FRAME_SECONDS)] == [frame(i)]
    # A late work visit decoded two packets at once: both frames are queued before anything is
    # sent. The second used to wait for the next tick, and each later arrival behind it: the
    # stream kept a frame of delay for good.
    now = 0.065
    out.play_encoded(frame(3))
    out.play_encoded(frame(4))
    out.catch_up(now)
    sent = out.due(now)
    assert [f.payload for f in sent] == [frame(3), frame(4)]
    assert [f.timestamp for f in sent] == [3 * 960, 4 * 960] and not any(f.marker for f in sent)
    assert len(out.pacer) == 0 and out.poll_timeout() is None
    out.play_encoded(frame(5))  # the next arrival leaves at once too
    out.catch_up(now + FRAME_SECONDS)
    assert [f.payload for f in out.due(now + FRAME_SECONDS)] == [frame(5)]


def test_response_audio_is_never_trimmed() -> None:
    out = OutboundAudio(RATE, MediaConfig(max_stream_backlog=0.06), initial_timestamp=0)
    pcm = np.zeros(RATE * 2, dtype=np.int16)  # two seconds of a response, queued at once
    out.play(pcm, "resp_1")
    assert len(out.pacer) == 100 and out.stream_trimmed == 0
    for i in range(10):  # streamed frames behind it wait; the response's head is not touched
        out.play_encoded(frame(i))
    assert out.stream_trimmed == 0 and len(out.pacer) == 110
    assert out.queued("resp_1")


def test_backlog_limit_is_validated() -> None:
    with pytest.raises(ValueError, match="max_stream_backlog"):
        MediaConfig(max_stream_backlog=0.0)
    with pytest.raises(ValueError, match="max_stream_backlog"):
        MediaConfig(max_queued=1.0, max_stream_backlog=2.0)


def toc_configs(mode: str) -> list[int]:
    """The Opus TOC configuration (RFC 6716 §3.1) of each frame OutboundAudio encodes from speech-like PCM."""
    out = OutboundAudio(RATE, MediaConfig(opus_mode=mode), initial_timestamp=0)
    out.start(0.0)
    t = np.arange(RATE) / RATE
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 2.3 * t)) / RATE  # a gliding voiced pitch
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    out.play((voiced / np.abs(voiced).max() * 12000).astype(np.int16), "resp_1")
    return [f.payload[0] >> 3 for k in range(50) for f in out.due(k * FRAME_SECONDS)]


def test_opus_modes_voip_speech_modes_with_fec_and_lowdelay_celt_only() -> None:
    voip, lowdelay = toc_configs("voip"), toc_configs("lowdelay")
    assert len(voip) == len(lowdelay) == 50
    assert all(c < 16 for c in voip[5:])  # SILK (0-11) or hybrid (12-15): the modes that carry LBRR
    assert all(c >= 16 for c in lowdelay)  # CELT only (16-31)
    out = OutboundAudio(RATE, MediaConfig(opus_mode="lowdelay"), initial_timestamp=0)
    assert out.encoder.lookahead < OutboundAudio(RATE, MediaConfig(), initial_timestamp=0).encoder.lookahead
    assert not out.encoder.inband_fec
    with pytest.raises(ValueError, match="opus_mode"):
        MediaConfig(opus_mode="celt")


def delays_of_a_live_stream(arrivals: list[float], *, catch_up: bool) -> list[float]:
    """Each frame's wait between its arrival and its send, driving OutboundAudio as a call does:
    queue on arrival (then send what is due), and send at every pacer deadline."""
    out = OutboundAudio(RATE, MediaConfig(), initial_timestamp=0)
    out.start(0.0)
    arrived_at: dict[bytes, float] = {}
    waits: list[float] = []

    def send_due(now: float) -> None:
        if catch_up:
            out.catch_up(now)
        deadline = out.poll_timeout()
        if deadline is not None and now >= deadline:
            waits.extend(now - arrived_at.pop(f.payload) for f in out.due(now))

    for i, at in enumerate(arrivals):
        while (deadline := out.poll_timeout()) is not None and deadline < at:
            send_due(deadline)  # the pacer's timer
        arrived_at[frame(i)] = at
        out.play_encoded(frame(i))
        send_due(at)
    while (deadline := out.poll_timeout()) is not None:
        send_due(deadline)
    return waits


def test_a_live_stream_does_not_keep_the_delay_of_a_stall() -> None:
    # An echo's frames arrive every 20 ms, 3 ms after the grid's phase; twice the process
    # stalls and two frames arrive together 27 ms late (as after a busy loop).
    arrivals = [0.003 + 0.02 * i for i in range(100)]
    for stall in (30, 60):
        arrivals[stall] += 0.027
        arrivals[stall + 1] += 0.007
    slow = delays_of_a_live_stream(arrivals, catch_up=False)
    fast = delays_of_a_live_stream(arrivals, catch_up=True)
    assert len(slow) == len(fast) == 100  # nothing dropped either way
    # Without catching up the stall's phase stays: every later frame waits for its tick.
    assert min(slow[70:]) > 0.005
    # With it, every frame leaves as it arrives, the stall's too.
    assert max(fast) < 1e-9


def test_a_live_stream_with_jitter_leaves_as_it_arrives() -> None:
    # Frames every 20 ms with up to 2 ms of jitter either way. The talkspurt's grid is anchored
    # on its first frame, which came 1.5 ms late: no later frame waits for a tick of that phase
    # (a timer, and delay; with a 5 ms allowance, most of these did).
    jitter = [0.0015, -0.002, 0.001, -0.0005, 0.0019, -0.0015, 0.0003, -0.001, 0.002, -0.0018] * 10
    arrivals = [0.1 + 0.02 * i + j for i, j in enumerate(jitter)]
    waits = delays_of_a_live_stream(arrivals, catch_up=True)
    assert len(waits) == 100 and max(waits) < 1e-9


def test_a_response_keeps_its_grid() -> None:
    out = OutboundAudio(RATE, MediaConfig(), initial_timestamp=0)
    out.start(0.0)
    out.play(np.zeros(RATE // 10, dtype=np.int16), "resp_1")  # five frames queued at once
    assert [f.timestamp for f in out.due(0.0)] == [0]
    assert not out.catch_up(0.001)  # the next frame waits for its tick, 19 ms away
    assert out.poll_timeout() == pytest.approx(FRAME_SECONDS)


def speech(frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(frames * 480) * 3000).astype(np.int16)  # 20 ms frames at 24 kHz


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 0.06), st.sampled_from([1, 1, 1, 2, 0])), min_size=1, max_size=40))
def test_release_now_sends_a_live_frame_as_the_queue_would(steps: list[tuple[float, int]]) -> None:
    """The echo's fast path (one whole frame, nothing waiting: encode and send at once) sends the
    same frames -- Opus bytes, timestamps, markers, in order -- as play() and the pacer would,
    whatever the arrival times; two-frame chunks take the queue on both sides (0: a timer turn)."""
    fast, queued = (OutboundAudio(RATE, MediaConfig(), initial_timestamp=7) for _ in range(2))
    sent: tuple[list[tuple[bytes, int, bool]], list[tuple[bytes, int, bool]]] = ([], [])
    now = 0.0
    for out in (fast, queued):
        out.start(now)

    def send_due(out: OutboundAudio, into: list[tuple[bytes, int, bool]], at: float) -> None:
        out.catch_up(at)
        deadline = out.poll_timeout()
        if deadline is not None and at >= deadline - 1e-9:
            into.extend((f.payload, f.timestamp, f.marker) for f in out.due(at))

    for k, (gap, frames) in enumerate(steps):
        now += gap
        pcm = speech(frames, k)
        for out, into, shortcut in ((fast, sent[0], True), (queued, sent[1], False)):
            if frames:
                frame = out.release_now(pcm, now) if shortcut else None
                if frame is not None:
                    into.append((frame.payload, frame.timestamp, frame.marker))
                    continue
                out.play(pcm)
            send_due(out, into, now)
        assert sent[0] == sent[1], f"step {k}"
    assert len(fast.pacer) == len(queued.pacer)


def test_release_now_declines_what_play_must_frame() -> None:
    out = OutboundAudio(RATE, MediaConfig(), initial_timestamp=0)
    out.start(0.0)
    assert out.release_now(speech(2, 0), 0.0) is None  # 40 ms: framed by play()
    out.play(np.zeros(100, dtype=np.int16))  # a partial frame waits
    assert out.release_now(speech(1, 1), 0.0) is None  # it goes first, joined with this one
    out.play(speech(1, 1))  # one whole frame queued, 100 samples still partial
    assert out.release_now(b"\x08\x00", 0.0) is None  # an Opus payload waits behind it too
    assert [len(f.payload) > 2 for f in out.due(0.0)] == [True]
