"""Silero VAD on onnxruntime: probabilities per 32 ms window, chunk-independent, one shared session."""

from __future__ import annotations

import sys
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from voxwire.agent.vad import WINDOW_SAMPLES, SileroVad, frame_db, load_session
from voxwire.media.resample import Resampler

WAV = Path(__file__).parent / "data" / "audio" / "three_turns.wav"


def load() -> np.ndarray:
    with wave.open(str(WAV)) as w:
        assert w.getframerate() == 16000
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


PCM = load()


def ms(t: float) -> int:
    return int(t / 32)


def test_speech_and_silence() -> None:
    p = np.array(SileroVad().process(PCM))
    assert len(p) == len(PCM) // 512
    assert np.all((p >= 0) & (p <= 1))
    assert p[: ms(450)].max() < 0.1  # leading noise
    assert np.median(p[ms(2900) : ms(5600)]) > 0.95  # utterance A
    assert p[ms(9000) :].max() < 0.1  # trailing noise


def test_windows_are_buffered_and_chunking_does_not_matter() -> None:
    whole = SileroVad().process(PCM)
    vad = SileroVad()
    assert vad.process(PCM[:511]) == []
    assert len(vad.process(PCM[511:512])) == 1
    rng = np.random.default_rng(7)
    vad.reset()
    got: list[float] = []
    i = 0
    while i < len(PCM):
        n = int(rng.integers(1, 3000))
        got += vad.process(PCM[i : i + n])
        i += n
    assert got == whole and vad.windows == len(whole)
    vad.reset()
    assert vad.process(PCM) == whole  # reset forgets the recurrent state


def test_one_session_per_process_on_one_thread() -> None:
    assert load_session() is load_session()
    opts = load_session().get_session_options()
    assert opts.intra_op_num_threads == 1
    a, b = SileroVad(), SileroVad()
    a.process(PCM[: 16000 * 3])  # b's state is its own
    assert b.process(PCM) == SileroVad().process(PCM)
    assert "torch" not in sys.modules


def test_8khz() -> None:
    r = Resampler(16000, 8000)
    pcm8 = np.concatenate([r.process(PCM), r.flush()])
    vad = SileroVad(8000)
    assert vad.window_samples == WINDOW_SAMPLES[8000] == 256 and vad.window_ms == 32
    p = np.array(vad.process(pcm8))
    assert np.median(p[ms(2900) : ms(5600)]) > 0.9 and p[: ms(450)].max() < 0.2


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        SileroVad(24000)
    with pytest.raises(TypeError):
        SileroVad().process(PCM.astype(np.float32))  # type: ignore[arg-type]


# -- one onnxruntime run for many streams ------------------------------------------------------------


def test_a_batch_scores_every_stream_as_if_alone() -> None:
    from voxwire.agent.vad import VadBatch

    n = WINDOW_SAMPLES[16000]
    offsets = [0, 7 * n, 23 * n]  # three streams at different points of the recording
    alone = [SileroVad().process(PCM[o : o + 40 * n]) for o in offsets]
    batch = VadBatch(max_batch=2)  # three streams: two rounds per window step
    woken: list[int] = []
    batch.on_pending = lambda: woken.append(batch.pending)
    streams = [SileroVad() for _ in offsets]
    got: list[list[float]] = [[] for _ in offsets]
    levels: list[list[list[float]]] = [[] for _ in offsets]

    def deliver(out: list[float], out_db: list[list[float]]) -> Callable[[float, list[float]], None]:
        return lambda p, db: (out.append(p), out_db.append(db))

    for k in range(40):
        for vad, o, out, out_db in zip(streams, offsets, got, levels, strict=True):
            batch.submit(vad, PCM[o + k * n : o + (k + 1) * n], deliver(out, out_db))
        if k % 5 == 4:  # a burst of windows per stream: each stream's still scored in order
            assert batch.run() == 15
    assert batch.pending == 0
    assert np.allclose(np.array(got), np.array(alone), atol=1e-5)
    # The round measures each window's frame levels exactly as one window alone would.
    for o, out_db in zip(offsets, levels, strict=True):
        windows = PCM[o : o + 40 * n].astype(np.float32).reshape(40, n) * (1.0 / 32768.0)
        assert out_db == [frame_db(w.reshape(1, n))[0] for w in windows]
    assert woken == [1] * 8  # on_pending once per empty -> non-empty
    assert batch.windows == 120 and batch.runs == 80  # ceil(3 / 2) runs per window step
    assert all(v.windows == 40 for v in streams)


def test_a_discarded_stream_is_not_scored() -> None:
    from voxwire.agent.vad import VadBatch

    n = WINDOW_SAMPLES[16000]
    batch = VadBatch()
    kept, dropped = SileroVad(), SileroVad()
    got: list[float] = []
    batch.submit(kept, PCM[:n], lambda p, db: got.append(p))
    batch.submit(dropped, PCM[:n], lambda p, db: pytest.fail("scored a discarded stream"))
    batch.discard(dropped)
    assert batch.run() == 1 and len(got) == 1
    with pytest.raises(ValueError):
        batch.submit(SileroVad(8000), PCM[:256], lambda p, db: got.append(p))
    with pytest.raises(ValueError):
        VadBatch(max_batch=0)


def test_rounds_in_flight_keep_each_stream_in_order_and_honour_resets() -> None:
    from voxwire.agent.vad import VadBatch

    n = WINDOW_SAMPLES[16000]
    alone = SileroVad().process(PCM[: 6 * n])
    batch = VadBatch()
    a, b = SileroVad(), SileroVad()
    got_a: list[float] = []
    got_b: list[float] = []
    batch.submit(a, PCM[:n], lambda p, db: got_a.append(p))
    batch.submit(b, PCM[:n], lambda p, db: got_b.append(p))
    first = batch.take_round()
    assert first is not None and len(first.streams) == 2
    with pytest.raises(RuntimeError):
        batch.take_round()  # one round in flight at a time
    batch.submit(a, PCM[n : 2 * n], lambda p, db: got_a.append(p))  # queued while the first round is scored
    batch.score(first)  # (on a worker thread in the gateway)
    batch.discard(b)  # b's detector was reset meanwhile: its in-flight window must not land
    b.reset()
    assert batch.finish(first) == 2
    assert got_b == [] and b.windows == 0 and np.all(b._state == 0)
    batch.run()
    for k in range(2, 6):
        batch.submit(a, PCM[k * n : (k + 1) * n], lambda p, db: got_a.append(p))
    failed = batch.take_round()
    assert failed is not None
    batch.abandon(failed)  # inference raised: that window is dropped, the batch goes on
    batch.run()
    assert np.allclose(got_a[:2], alone[:2], atol=1e-5) and len(got_a) == 5
