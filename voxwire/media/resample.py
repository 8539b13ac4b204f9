"""Streaming sample-rate conversion for one direction of one session (libsoxr via ``soxr``).

Theory of operation
-------------------
A :class:`Resampler` wraps one ``soxr.ResampleStream``: the filter state carries across calls, so a
stream cut into 20 ms chunks comes out the same as if it were converted in one block (no seams, no
clicks at chunk borders). Input and output are interleaved int16, the sample type of the rest of
the media path; equal rates pass the samples through untouched and cost nothing.

Quality: ``MQ`` by default. Measured on this project's hosts (``bench/media.py``, libsoxr 0.1.3):
``MQ`` and ``HQ`` cost the same (about 11-13 µs per 20 ms chunk), are flat to 10 kHz at a 24 kHz
output rate and reject aliases by ~82 dB; ``HQ`` only adds precision beyond 16 bits, which int16
output throws away, and holds back more audio. ``LQ`` has almost no delay but is 5 dB down at
10 kHz (24 kHz out) and 13 dB down at 7 kHz (16 kHz out); ``QQ`` does not filter at all.

Latency: soxr filters in blocks, so with ``MQ`` it holds back about 26 ms of output at 48 -> 24 kHz
and about 30 ms at 22.05 -> 48 kHz (``HQ``: 32 and 33 ms), and with real-time 20 ms input it emits
a burst every other chunk. :attr:`Resampler.pending` reports what is held back; :meth:`flush`
releases it at the end of a stream (the end of a response). Hence the media path avoids soxr
where Opus can do the job: libopus decodes straight to 8/12/16/24 kHz and encodes straight from
those rates with no added delay, so an agent at 24 kHz needs no resampler at all. Use this class
for the other rates (a TTS voice at 22.05 kHz, 44.1 kHz sources), where audio usually arrives
faster than real time and the held-back tail costs only the :meth:`flush` at the end.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

__all__ = ["EMPTY_PCM", "Resampler"]

Pcm = npt.NDArray[np.int16]

_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


def _empty(channels: int) -> Pcm:
    """A read-only zero-length block, shared: every call has two resamplers and most never run."""
    block = np.zeros((0,) if channels == 1 else (0, channels), dtype=np.int16)
    block.flags.writeable = False
    return block


#: A read-only, zero-length mono block, for anything that needs "no audio yet" without allocating.
EMPTY_PCM = _empty(1)


class Resampler:
    """Convert one stream of interleaved int16 PCM from ``in_rate`` to ``out_rate``."""

    # Two instances per call (slots: ~50 bytes less each).
    __slots__ = ("in_rate", "out_rate", "channels", "quality", "_stream", "_empty")

    def __init__(self, in_rate: int, out_rate: int, channels: int = 1, quality: str = "MQ") -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, not {in_rate} -> {out_rate}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1, not {channels}")
        if quality not in _QUALITIES:
            raise ValueError(f"quality must be one of {_QUALITIES}, not {quality!r}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.channels = channels
        self.quality = quality
        self._stream: soxr.ResampleStream | None = None
        if in_rate != out_rate:
            self._stream = soxr.ResampleStream(in_rate, out_rate, channels, dtype="int16", quality=quality)
        self._empty = EMPTY_PCM if channels == 1 else _empty(channels)

    @property
    def passthrough(self) -> bool:
        """True when the rates are equal and samples are returned untouched."""
        return self._stream is None

    @property
    def pending(self) -> float:
        """Seconds of output the filter holds back right now (its current delay)."""
        return 0.0 if self._stream is None else float(self._stream.delay()) / self.out_rate

    def _as_array(self, pcm: Pcm | bytes | bytearray | memoryview) -> Pcm:
        if isinstance(pcm, np.ndarray):
            if pcm.dtype != np.int16:
                raise TypeError(f"PCM array must be int16, not {pcm.dtype}")
            arr = pcm
        else:
            arr = np.frombuffer(pcm, dtype="<i2")
        if self.channels == 1:
            if arr.ndim != 1:
                raise ValueError(f"mono PCM must be 1-D, not shape {arr.shape}")
            return arr
        if arr.ndim == 1:
            if arr.size % self.channels:
                raise ValueError(f"{arr.size} samples do not split into {self.channels} channels")
            return arr.reshape(-1, self.channels)
        if arr.ndim != 2 or arr.shape[1] != self.channels:
            raise ValueError(f"PCM shape {arr.shape} does not match {self.channels} channels")
        return arr

    def process(self, pcm: Pcm | bytes | bytearray | memoryview) -> Pcm:
        """Convert the next chunk; returns what the filter releases (maybe nothing yet).

        Mono is 1-D; ``channels > 1`` returns shape ``(frames, channels)``. In pass-through the
        input comes back as an array view (read-only for ``bytes`` input): do not modify it.
        """
        arr = self._as_array(pcm)
        if self._stream is None:
            return arr
        if not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
        out: Pcm = self._stream.resample_chunk(arr)
        return out

    def flush(self) -> Pcm:
        """Release the held-back tail and start a fresh stream (call at the end of a stream).
        With equal rates there is no tail: a shared, read-only empty block comes back."""
        if self._stream is None:
            return self._empty
        out: Pcm = self._stream.resample_chunk(self._empty, last=True)
        self._stream.clear()
        return out

    def reset(self) -> None:
        """Drop the held-back audio and the filter history (barge-in, stream restart)."""
        if self._stream is not None:
            self._stream.clear()
