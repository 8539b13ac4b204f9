"""Streaming resampling: a sine survives 48k -> 24k -> 48k, and chunking does not change the output."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from voxwire.media.resample import Resampler


def sine(freq: float, rate: int, seconds: float) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return (10000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def chunked(r: Resampler, x: npt.NDArray[np.int16], n: int) -> npt.NDArray[np.int16]:
    parts = [r.process(x[i : i + n]) for i in range(0, len(x), n)]
    return np.concatenate([*parts, r.flush()])


def test_sine_survives_48k_24k_48k() -> None:
    x = sine(440, 48000, 1.0)
    down, up = Resampler(48000, 24000), Resampler(24000, 48000)
    mid = chunked(down, x, 960)
    y = chunked(up, mid, 480)
    assert abs(len(mid) - 24000) <= 2 and abs(len(y) - 48000) <= 4
    n = min(len(x), len(y))
    # soxr compensates its own delay: the output lines up with the input.
    a, b = x[1000 : n - 1000].astype(float), y[1000 : n - 1000].astype(float)
    assert np.corrcoef(a, b)[0, 1] > 0.999
    assert np.max(np.abs(a - b)) < 100


def test_chunking_does_not_change_the_output() -> None:
    x = sine(1000, 48000, 0.5) // 2 + sine(3100, 48000, 0.5) // 2
    whole = chunked(Resampler(48000, 24000), x, len(x))
    in_20ms = chunked(Resampler(48000, 24000), x, 960)
    odd = chunked(Resampler(48000, 24000), x, 337)
    assert len(whole) == len(in_20ms) == len(odd)
    # Equal up to rounding of the int16 output (a couple of LSB), never a seam.
    assert np.max(np.abs(whole.astype(int) - in_20ms)) <= 2
    assert np.max(np.abs(whole.astype(int) - odd)) <= 2


def test_flush_restarts_the_stream() -> None:
    r = Resampler(22050, 48000)
    x = sine(440, 22050, 0.2)
    first = chunked(r, x, 441)
    assert r.pending == 0.0
    second = chunked(r, x, 441)
    assert len(first) == len(second) and np.max(np.abs(first.astype(int) - second)) <= 2


def test_equal_rates_pass_through_and_bytes_are_accepted() -> None:
    r = Resampler(48000, 48000)
    x = sine(440, 48000, 0.02)
    assert r.passthrough and r.process(x) is x
    assert np.array_equal(r.process(x.tobytes()), x) and len(r.flush()) == 0
    assert len(Resampler(48000, 24000).process(x.tobytes())) <= 480


def test_stereo_and_bad_input() -> None:
    r = Resampler(48000, 24000, channels=2)
    out = np.concatenate([r.process(np.zeros(1920, dtype=np.int16)), r.flush()])
    assert out.shape == (480, 2)
    with pytest.raises(TypeError):
        Resampler(48000, 24000).process(np.zeros(960, dtype=np.float32))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Resampler(48000, 24000, quality="best")
