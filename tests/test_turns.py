"""Turn detection on recorded speech with known silences, and the server_vad / null semantics.

``tests/data/audio/three_turns.wav`` (see ``make.sh`` beside it): a talker 40 dB down (Q), then two
full-level utterances (A, B) after gaps of 1.0 s and 0.7 s, 1.2 s of silence at the end, in quiet
pink noise. The truth is the file's own energy envelope: 10 ms RMS more than 20 dB above the noise
floor of the first 400 ms. Q is too quiet for that truth (only its loudest part passes), so only A
and B are timed.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voxwire.agent.turns import (
    IdleTimeout,
    ServerVad,
    SpeechStarted,
    SpeechStopped,
    TurnCommitted,
    TurnDetector,
    TurnEvent,
    parse_turn_detection,
)
from voxwire.media.resample import Resampler

Pcm = npt.NDArray[np.int16]
WAV = Path(__file__).parent / "data" / "audio" / "three_turns.wav"
WINDOW_MS = 32


def load_wav(path: Path) -> tuple[Pcm, int]:
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16), w.getframerate()


PCM16, RATE16 = load_wav(WAV)


def to_rate(pcm: Pcm, rate: int) -> Pcm:
    if rate == RATE16:
        return pcm
    r = Resampler(RATE16, rate)
    return np.concatenate([r.process(pcm), r.flush()])


PCM24 = to_rate(PCM16, 24000)


def truth_segments(pcm: Pcm, rate: int) -> list[tuple[float, float]]:
    """(start_ms, end_ms) of the runs of energy above the floor + 20 dB, gaps < 300 ms bridged."""
    x = pcm.astype(np.float64) / 32768.0
    n = rate // 100
    env = np.sqrt(np.convolve(x * x, np.ones(n) / n, mode="same"))
    db = 20 * np.log10(env + 1e-12)
    floor = np.median(db[: int(0.4 * rate)])
    on = np.flatnonzero(db > floor + 20)
    segments: list[list[float]] = []
    for i in on:
        t = i * 1000.0 / rate
        if segments and t - segments[-1][1] < 300:
            segments[-1][1] = t + 1000.0 / rate
        else:
            segments.append([t, t + 1000.0 / rate])
    return [(a, b) for a, b in segments if b - a > 100]


def run(det: TurnDetector, pcm: Pcm, chunk: int | list[int]) -> list[TurnEvent]:
    sizes = iter(chunk) if isinstance(chunk, list) else None
    i = 0
    while i < len(pcm):
        n = next(sizes, len(pcm)) if sizes is not None else chunk
        det.append(pcm[i : i + n])
        i += n
    return drain(det)


def drain(det: TurnDetector) -> list[TurnEvent]:
    out = []
    while (e := det.poll_event()) is not None:
        out.append(e)
    return out


def turns(events: list[TurnEvent]) -> list[TurnCommitted]:
    return [e for e in events if isinstance(e, TurnCommitted)]


def truth_ab() -> tuple[tuple[float, float], tuple[float, float]]:
    q, a, b = truth_segments(PCM16, RATE16)
    return a, b


def test_the_recording_has_the_documented_layout() -> None:
    q, a, b = truth_segments(PCM16, RATE16)
    assert q[0] >= 500 and a[0] - q[1] > 1000 and 650 < b[0] - a[1] < 760
    assert len(PCM16) / RATE16 * 1000 - b[1] > 1150


@pytest.mark.parametrize("rate", [16000, 24000])
def test_start_and_stop_within_one_window_of_the_truth(rate: int) -> None:
    cfg = ServerVad()
    (a0, a1), (b0, b1) = truth_ab()
    events = run(TurnDetector(cfg, rate), to_rate(PCM16, rate), rate // 50)
    kinds = [type(e) for e in events]
    assert kinds == [SpeechStarted, SpeechStopped, TurnCommitted] * 3, events
    q, a, b = turns(events)
    assert q.audio_end_ms < a.audio_start_ms
    # OpenAI's meaning: audio_start_ms includes the prefix padding, audio_end_ms the silence.
    assert abs(a.audio_start_ms - (a0 - cfg.prefix_padding_ms)) <= WINDOW_MS
    assert abs(a.audio_end_ms - (a1 + cfg.silence_duration_ms)) <= WINDOW_MS
    assert abs(b.audio_end_ms - (b1 + cfg.silence_duration_ms)) <= WINDOW_MS
    # B's padding would reach back into A's turn: it starts where A's committed audio ended.
    assert b.audio_start_ms == a.audio_end_ms
    # The events carry the same times as the commits, and the audio is exactly that span.
    starts = [e.audio_start_ms for e in events if isinstance(e, SpeechStarted)]
    stops = [e.audio_end_ms for e in events if isinstance(e, SpeechStopped)]
    assert starts == [t.audio_start_ms for t in (q, a, b)]
    assert stops == [t.audio_end_ms for t in (q, a, b)]
    for t in (q, a, b):
        assert abs(len(t.audio) - (t.audio_end_ms - t.audio_start_ms) * rate / 1000) <= rate / 1000


def test_onsets_without_padding() -> None:
    (a0, _), (b0, _) = truth_ab()
    _, a, b = turns(run(TurnDetector(ServerVad(prefix_padding_ms=0), 24000), PCM24, 480))
    assert abs(a.audio_start_ms - a0) <= WINDOW_MS
    assert abs(b.audio_start_ms - b0) <= WINDOW_MS  # a soft /s/ onset ("Six spoons")


def test_prefix_padding_is_in_the_committed_audio() -> None:
    padded = turns(run(TurnDetector(ServerVad(prefix_padding_ms=300), 24000), PCM24, 480))[1]
    bare = turns(run(TurnDetector(ServerVad(prefix_padding_ms=0), 24000), PCM24, 480))[1]
    assert padded.audio_start_ms == bare.audio_start_ms - 300
    assert padded.audio_end_ms == bare.audio_end_ms
    assert len(padded.audio) == len(bare.audio) + 300 * 24
    assert np.array_equal(padded.audio[300 * 24 :], bare.audio)  # same samples, 300 ms earlier start
    # The padding is the quiet before the onset, the onset follows it.
    lead = padded.audio[: 250 * 24].astype(float)
    assert np.sqrt(np.mean(lead**2)) < 30
    assert np.abs(padded.audio[300 * 24 : 400 * 24]).max() > 3000
    # The committed audio is the recording itself.
    i = padded.audio_start_ms * 24
    assert np.array_equal(padded.audio, PCM24[i : i + len(padded.audio)])


def test_longer_silence_duration_merges_the_utterances() -> None:
    (a0, _), (_, b1) = truth_ab()
    events = run(TurnDetector(ServerVad(silence_duration_ms=800), 24000), PCM24, 480)
    q, ab = turns(events)  # the 0.7 s gap no longer ends a turn, the ~0.9 s after Q still does
    assert ab.audio_start_ms == q.audio_end_ms  # A's padding reaches back into Q's silence tail
    assert abs(ab.audio_end_ms - (b1 + 800)) <= WINDOW_MS
    assert len([e for e in events if isinstance(e, SpeechStarted)]) == 2
    assert a0 - 300 < q.audio_end_ms  # (which is why A starts at Q's end)


def test_a_higher_threshold_ignores_the_distant_talker() -> None:
    low = turns(run(TurnDetector(ServerVad(threshold=0.5), 24000), PCM24, 480))
    high = turns(run(TurnDetector(ServerVad(threshold=0.99), 24000), PCM24, 480))
    assert len(low) == 3 and len(high) == 2
    assert [t.audio_end_ms for t in high] == [t.audio_end_ms for t in low[1:]]
    with pytest.raises(ValueError):
        ServerVad(threshold=1.5)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=60))
def test_events_do_not_depend_on_how_the_audio_is_chunked(sizes: list[int]) -> None:
    ref = run(TurnDetector(ServerVad(), 24000), PCM24, 480)
    got = run(TurnDetector(ServerVad(), 24000), PCM24, sizes)
    assert got == ref
    for x, y in zip(turns(got), turns(ref), strict=True):
        assert np.array_equal(x.audio, y.audio)


def test_feed_is_append_then_drain() -> None:
    det = TurnDetector(ServerVad(), 24000)
    fed = [e for i in range(0, len(PCM24), 480) for e in det.feed(PCM24[i : i + 480])]
    assert fed == run(TurnDetector(ServerVad(), 24000), PCM24, 480) and det.poll_event() is None


def test_null_mode_emits_nothing_and_the_client_commits() -> None:
    det = TurnDetector(None, 24000)
    assert run(det, PCM24[: 24000 * 3], 480) == []
    t = det.commit()
    assert t is not None and (t.audio_start_ms, t.audio_end_ms) == (0, 3000)
    assert np.array_equal(t.audio, PCM24[: 24000 * 3])
    assert det.commit() is None  # nothing new
    det.append(PCM24[24000 * 3 : 24000 * 4])
    det.clear()
    assert det.commit() is None
    det.append(PCM24[24000 * 4 : 24000 * 5])
    t = det.commit()
    assert t is not None and (t.audio_start_ms, t.audio_end_ms) == (4000, 5000)


def test_null_mode_buffer_is_bounded() -> None:
    det = TurnDetector(None, 24000, max_turn_ms=2000)
    events = run(det, PCM24[: 24000 * 5], 480)
    assert [(t.audio_start_ms, t.audio_end_ms) for t in turns(events)] == [(0, 2000), (2000, 4000)]
    assert all(isinstance(e, TurnCommitted) for e in events)
    t = det.commit()
    assert t is not None and (t.audio_start_ms, t.audio_end_ms) == (4000, 5000)


def test_a_turn_longer_than_the_bound_is_committed_in_pieces() -> None:
    events = run(TurnDetector(ServerVad(), 24000, max_turn_ms=1000), PCM24, 480)
    pieces = turns(events)
    assert all(t.audio_end_ms - t.audio_start_ms <= 1000 for t in pieces)
    forced = [
        i
        for i, e in enumerate(events)
        if isinstance(e, TurnCommitted) and e.audio_end_ms - e.audio_start_ms == 1000
    ]
    assert len(forced) >= 3  # A alone is ~2.9 s
    for i in forced:
        cut = events[i]
        assert isinstance(cut, TurnCommitted)
        # Speech did not stop: the next talkspurt starts exactly at the cut.
        assert events[i - 1] == SpeechStopped(cut.audio_end_ms)
        assert events[i + 1] == SpeechStarted(cut.audio_end_ms)
    # Nothing is lost or doubled: consecutive pieces of a talkspurt are contiguous.
    ends = {t.audio_end_ms for t in pieces}
    assert sum(1 for t in pieces if t.audio_start_ms in ends) >= len(forced)


def test_manual_commit_and_clear_during_speech() -> None:
    det = TurnDetector(ServerVad(), 24000)
    (a0, _), _ = truth_ab()
    mid = int(a0 + 1000) * 24
    run(det, PCM24[:mid], 480)
    assert det.speaking
    t = det.commit()
    assert t is not None and t.audio_end_ms == mid // 24
    assert abs(t.audio_start_ms - (a0 - 300)) <= WINDOW_MS
    # The talker goes on: a new talkspurt starts after the commit, not before it.
    events = run(det, PCM24[mid : mid + 24000], 480)
    started = [e for e in events if isinstance(e, SpeechStarted)]
    assert len(started) == 1 and started[0].audio_start_ms >= t.audio_end_ms
    det.clear()
    assert not det.speaking
    events = run(det, PCM24[mid + 24000 :], 480)
    first = events[0]
    assert isinstance(first, SpeechStarted) and first.audio_start_ms >= (mid + 24000) // 24


def test_commit_while_idle_returns_the_padding_only() -> None:
    det = TurnDetector(ServerVad(), 24000)
    run(det, PCM24[: 24000 * 2], 480)  # Q is speaking at 2 s
    det.clear()
    run(det, np.zeros(24000, dtype=np.int16), 480)
    t = det.commit()
    assert t is not None and t.audio_end_ms - t.audio_start_ms == 300


def test_idle_timeout_counts_silence_after_the_timer_starts() -> None:
    det = TurnDetector(ServerVad(idle_timeout_ms=1000), 24000)
    silence = np.zeros(24000 * 3, dtype=np.int16)
    run(det, silence[:12000], 480)
    det.start_idle_timer()
    assert run(det, silence[12000 : 12000 + 900 * 24], 480) == []
    events = run(det, silence[12000 + 900 * 24 :], 480)
    assert events == [IdleTimeout(500, 1500)]
    # Speech cancels the timer.
    det = TurnDetector(ServerVad(idle_timeout_ms=1000), 24000)
    events = run(det, PCM24[: 2600 * 24], 480)  # Q's turn is over, A starts at ~2.8 s
    assert not det.speaking and isinstance(events[-1], TurnCommitted)
    det.start_idle_timer()
    events = run(det, PCM24[2600 * 24 :], 480)
    assert isinstance(events[0], SpeechStarted)
    assert not any(isinstance(e, IdleTimeout) for e in events)
    # Without idle_timeout_ms the timer does nothing.
    det = TurnDetector(ServerVad(), 24000)
    det.start_idle_timer()
    assert run(det, silence, 480) == []


class ScriptedVad:
    """Hands out a fixed probability per window (the audio only feeds the energy placement)."""

    window_samples = 512

    def __init__(self, probs: list[float]) -> None:
        self.probs = probs
        self.i = 0

    def process(self, pcm: Pcm) -> list[float]:
        assert len(pcm) == 512
        p = self.probs[self.i] if self.i < len(self.probs) else 0.0
        self.i += 1
        return [p]

    def reset(self) -> None:
        self.i = 0


def scripted(loud: list[bool]) -> Pcm:
    t = np.arange(512) / 16000
    tone = (8000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    return np.concatenate([tone if x else np.zeros(512, dtype=np.int16) for x in loud])


def test_hysteresis_and_exact_times_with_a_scripted_vad() -> None:
    # windows: 10 silent, 10 speech, 2 hesitant (0.4: above threshold - 0.15), then silence.
    probs = [0.0] * 10 + [0.9] * 10 + [0.4] * 2 + [0.1] * 20
    loud = [False] * 10 + [True] * 12 + [False] * 20
    cfg = ServerVad(prefix_padding_ms=64, silence_duration_ms=100)
    det = TurnDetector(cfg, 16000, vad=ScriptedVad(probs))
    events = run(det, scripted(loud), 512)
    assert events[:2] == [SpeechStarted(320 - 64), SpeechStopped(22 * 32 + 100)]
    # A dip below threshold - 0.15 that recovers before silence_duration_ms does not end the turn.
    probs = [0.0] * 10 + [0.9] * 5 + [0.2] * 2 + [0.9] * 5 + [0.1] * 20
    loud = [False] * 10 + [True] * 5 + [False] * 2 + [True] * 5 + [False] * 20
    events = run(TurnDetector(cfg, 16000, vad=ScriptedVad(probs)), scripted(loud), 512)
    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped, TurnCommitted]
    assert events[1] == SpeechStopped(22 * 32 + 100)


def test_reconfiguring_mid_session() -> None:
    det = TurnDetector(None, 24000)
    run(det, PCM24[: 24000 * 2], 480)
    det.configure(ServerVad())
    events = run(det, PCM24[24000 * 2 :], 480)
    ends = [t.audio_end_ms for t in turns(events)]
    ref = [t.audio_end_ms for t in turns(run(TurnDetector(ServerVad(), 24000), PCM24, 480))]
    assert ends == ref[1:]  # A and B, on the session's time line
    det.configure(None)
    assert run(det, PCM24[:24000], 480) == []
    # New parameters in the middle of a talkspurt apply to it; the talkspurt goes on.
    (a0, a1), _ = truth_ab()
    det = TurnDetector(ServerVad(), 24000)
    run(det, PCM24[: int(a0 + 500) * 24], 480)
    assert det.speaking
    det.configure(ServerVad(silence_duration_ms=600))
    a, _ = turns(run(det, PCM24[int(a0 + 500) * 24 :], 480))  # Q was committed before
    assert abs(a.audio_start_ms - (a0 - 300)) <= WINDOW_MS
    assert abs(a.audio_end_ms - (a1 + 600)) <= WINDOW_MS


def test_parse_turn_detection() -> None:
    assert parse_turn_detection(None) is None
    assert parse_turn_detection({"type": "server_vad"}) == ServerVad()
    cfg = parse_turn_detection(
        {"type": "server_vad", "threshold": 1, "silence_duration_ms": 800, "idle_timeout_ms": 6000}
    )
    assert cfg == ServerVad(threshold=1.0, silence_duration_ms=800, idle_timeout_ms=6000)
    assert parse_turn_detection(cfg.to_json()) == cfg
    for bad in (
        {"type": "semantic_vad"},
        {"threshold": 0.5},
        {"type": "server_vad", "eagerness": "low"},
        {"type": "server_vad", "silence_duration_ms": -1},
        {"type": "server_vad", "prefix_padding_ms": 1.5},
        {"type": "server_vad", "idle_timeout_ms": 0},
        {"type": "server_vad", "create_response": "yes"},
        "server_vad",
    ):
        with pytest.raises(ValueError):
            parse_turn_detection(bad)


def test_bad_input() -> None:
    det = TurnDetector(ServerVad(), 24000)
    with pytest.raises(TypeError):
        det.append(np.zeros(480, dtype=np.float32))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TurnDetector(ServerVad(), 24000, max_turn_ms=10)


def test_a_batched_detector_decides_exactly_as_an_unbatched_one() -> None:
    from voxwire.agent.vad import VadBatch

    batch = VadBatch()
    det = TurnDetector(ServerVad(), 24000, batch=batch)
    late: list[TurnEvent] = []
    det.on_events = lambda: late.extend(drain(det))
    for i in range(0, len(PCM24), 480):  # the batch runs after every few frames, as a loop would
        assert det.feed(PCM24[i : i + 480]) == []  # nothing is decided inside feed()
        if (i // 480) % 3 == 2:
            batch.run()
    batch.run()
    ref = run(TurnDetector(ServerVad(), 24000), PCM24, 480)
    assert [(type(e).__name__, getattr(e, "audio_start_ms", None), getattr(e, "audio_end_ms", None)) for e in late] == [
        (type(e).__name__, getattr(e, "audio_start_ms", None), getattr(e, "audio_end_ms", None)) for e in ref
    ]
    assert len(turns(late)) == 3


def test_windows_queued_before_a_reconfiguration_are_dropped() -> None:
    from voxwire.agent.vad import VadBatch

    batch = VadBatch()
    det = TurnDetector(ServerVad(), 24000, batch=batch)
    det.append(PCM24[: 24000 * 2])
    assert batch.pending > 0
    det.configure(None)  # turn_detection: null while windows wait
    det.configure(ServerVad())
    assert batch.pending == 0 and drain(det) == []
    batch.run()
    assert drain(det) == []
