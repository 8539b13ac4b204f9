"""Outbound audio: a live stream's backlog stays bounded; a response's audio is never trimmed."""

from __future__ import annotations

import numpy as np
import pytest

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
    for k in range(10):  # arrivals resume one per tick; what leaves is at most 3 frames old
        t = now + k * FRAME_SECONDS
        out.play_encoded(frame(15 + k))
        sent += [int.from_bytes(f.payload, "big") for f in out.due(t)]
    # Each new arrival pushes out the oldest: the frame sent is never more than 2 behind the newest.
    assert sent == list(range(13, 23))
    assert len(out.pacer) == 2 and out.stream_trimmed == 8


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
